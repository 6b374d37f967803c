package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/gigbus/gigbus/eventbus"
)

func Example() {
	ctx := context.Background()
	bus := eventbus.New(eventbus.WithSource("ticket-service"))
	defer bus.Close(ctx)

	bus.Subscribe("TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
		fmt.Printf("%s from %s about %s\n", e.Type, e.Source, e.Subject)
		return nil
	})
	bus.Publish(ctx, eventbus.Event{Type: "TicketPurchased", Subject: "concert-1"})
	bus.Flush(ctx) // wait until every handler has run
	// Output: TicketPurchased from ticket-service about concert-1
}

type TicketPurchased struct {
	TicketID string `json:"ticket_id"`
	Email    string `json:"email"`
}

func ExampleOn() {
	ctx := context.Background()
	bus := eventbus.New()
	defer bus.Close(ctx)

	// The handler gets the payload as a TicketPurchased, whether Data holds
	// one (in-process) or its JSON (after a wire).
	eventbus.On(bus, "TicketPurchased", func(ctx context.Context, e eventbus.Event, p TicketPurchased) error {
		fmt.Println("send confirmation to", p.Email)
		return nil
	})
	bus.Publish(ctx, eventbus.Event{Type: "TicketPurchased", Data: TicketPurchased{TicketID: "t-1", Email: "ann@example.com"}})
	bus.Publish(ctx, eventbus.Event{Type: "TicketPurchased", Data: []byte(`{"ticket_id":"t-2","email":"bob@example.com"}`)})
	bus.Flush(ctx)
	// Output:
	// send confirmation to ann@example.com
	// send confirmation to bob@example.com
}

func ExampleDurable() {
	ctx := context.Background()
	bus := eventbus.New()
	defer bus.Close(ctx)

	// Two members of the group "mailer": each event reaches one of them.
	var mu sync.Mutex
	handled := map[string]int{}
	for range 2 {
		bus.Subscribe("TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
			mu.Lock()
			handled[e.ID]++
			mu.Unlock()
			return nil
		}, eventbus.Durable("mailer"))
	}
	for i := range 100 {
		bus.Publish(ctx, eventbus.Event{Type: "TicketPurchased", ID: fmt.Sprint(i)})
	}
	bus.Flush(ctx)
	twice := 0
	for _, n := range handled {
		if n > 1 {
			twice++
		}
	}
	fmt.Println(len(handled), "events handled,", twice, "of them twice")
	// Output: 100 events handled, 0 of them twice
}

func ExampleWithDeadLetter() {
	ctx := context.Background()
	bus := eventbus.New(eventbus.WithDeadLetter(func(ctx context.Context, dl eventbus.DeadLetter) {
		fmt.Printf("dead letter: %s at %s after %d attempts: %v\n", dl.Event.ID, dl.Subscription, dl.Attempts, dl.Err)
	}))
	defer bus.Close(ctx)

	fail := true
	bus.Subscribe("Charge", func(ctx context.Context, e eventbus.Event) error {
		if fail {
			return errors.New("card declined")
		}
		fmt.Println("charged", e.ID)
		return nil
	}, eventbus.Durable("payments"), eventbus.MaxAttempts(2), eventbus.Backoff(0, 0))

	bus.Publish(ctx, eventbus.Event{Type: "Charge", ID: "order-7"})
	bus.Flush(ctx)

	// Dead letters stay inspectable; replay one once the cause is fixed.
	fail = false
	for _, dl := range bus.DeadLetters() {
		bus.Replay(ctx, dl)
	}
	bus.Flush(ctx)
	fmt.Println(len(bus.DeadLetters()), "dead letters left")
	// Output:
	// dead letter: order-7 at payments after 2 attempts: card declined
	// charged order-7
	// 0 dead letters left
}

func ExampleMemoryBus_Topology() {
	ctx := context.Background()
	bus := eventbus.New()
	defer bus.Close(ctx)

	bus.Subscribe("TicketRequested", func(context.Context, eventbus.Event) error { return nil }, eventbus.Durable("concert-service.reserve"))
	bus.Subscribe("TicketPurchased", func(context.Context, eventbus.Event) error { return nil }, eventbus.Durable("notification-service.confirm"))
	bus.Publish(ctx, eventbus.Event{Type: "TicketRequested", Source: "ticket-service"})
	bus.Publish(ctx, eventbus.Event{Type: "TicketPurchased", Source: "concert-service"})
	bus.Flush(ctx)

	var lines []string
	for _, f := range bus.Topology().Types {
		for _, s := range f.Subscriptions {
			lines = append(lines, fmt.Sprintf("%v -> %s -> %s", f.Publishers, f.Type, s.Name))
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Print(bus.Topology().Mermaid())
	// Output:
	// [concert-service] -> TicketPurchased -> notification-service.confirm
	// [ticket-service] -> TicketRequested -> concert-service.reserve
	// graph TD
	//     subgraph Publishers
	//         P0(["concert-service"])
	//         P1(["ticket-service"])
	//     end
	//     subgraph Events
	//         T0{{"TicketPurchased"}}
	//         T1{{"TicketRequested"}}
	//     end
	//     subgraph Handlers
	//         S0["notification-service.confirm"]
	//         S1["concert-service.reserve"]
	//     end
	//     P0 -->|publishes| T0
	//     T0 -->|notifies| S0
	//     P1 -->|publishes| T1
	//     T1 -->|notifies| S1
}
