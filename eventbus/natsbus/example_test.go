package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/natsbus"
)

// embeddedNATS starts a JetStream server inside the process, for the
// examples; a real deployment connects to its NATS cluster with
// nats.Connect(url, nats.MaxReconnects(-1)).
func embeddedNATS() (nc *nats.Conn, stop func()) {
	dir, err := os.MkdirTemp("", "natsbus-example-")
	if err != nil {
		log.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true, NoSigs: true, NoLog: true})
	if err != nil {
		log.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats server not ready")
	}
	nc, err = nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		log.Fatal(err)
	}
	return nc, func() {
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
		os.RemoveAll(dir)
	}
}

type TicketPurchased struct {
	TicketID string `json:"ticket_id"`
	Email    string `json:"email"`
}

// A durable group handles each event once, however many instances of the
// service run; the handler is the same one the in-memory bus runs.
func Example() {
	nc, stop := embeddedNATS()
	defer stop()
	ctx := context.Background()

	bus, err := natsbus.New(ctx, nc, "TICKETS", eventbus.WithSource("ticket-service"))
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)

	_, err = eventbus.On(bus, "TicketPurchased", func(ctx context.Context, e eventbus.Event, p TicketPurchased) error {
		fmt.Printf("send confirmation of %s to %s (concert %s, from %s)\n", p.TicketID, p.Email, e.Subject, e.Source)
		return nil
	}, eventbus.Durable("notifications"))
	if err != nil {
		log.Fatal(err)
	}
	err = bus.Publish(ctx, eventbus.Event{Type: "TicketPurchased", Subject: "concert-1",
		Data: TicketPurchased{TicketID: "t-1", Email: "ada@example.com"}})
	if err != nil {
		log.Fatal(err)
	}
	if err := bus.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: send confirmation of t-1 to ada@example.com (concert concert-1, from ticket-service)
}

// An event whose handler keeps failing is retried, then stored in the
// dead-letter stream TICKETS_DLQ (for an operator to inspect and replay) and
// handed to the dead-letter callback once.
func Example_deadLetter() {
	nc, stop := embeddedNATS()
	defer stop()
	ctx := context.Background()

	bus, err := natsbus.New(ctx, nc, "TICKETS", eventbus.WithDeadLetter(func(_ context.Context, dl eventbus.DeadLetter) {
		fmt.Printf("dead letter: %s for %s after %d attempts: %v\n", dl.Event.Type, dl.Subscription, dl.Attempts, dl.Err)
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)

	_, err = bus.Subscribe("TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
		d, _ := eventbus.DeliveryFrom(ctx)
		fmt.Printf("attempt %d of %d\n", d.Attempt, d.MaxAttempts)
		return errors.New("smtp: connection refused")
	}, eventbus.Durable("mailer"), eventbus.MaxAttempts(2), eventbus.Backoff(time.Millisecond, time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	if err := bus.Publish(ctx, eventbus.Event{Type: "TicketPurchased", Data: TicketPurchased{TicketID: "t-2"}}); err != nil {
		log.Fatal(err)
	}
	if err := bus.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// attempt 1 of 2
	// attempt 2 of 2
	// dead letter: TicketPurchased for mailer after 2 attempts: smtp: connection refused
}
