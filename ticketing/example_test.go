package ticketing_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/sqlite"
)

// The seed's main, made correct: add a concert, buy a ticket, wait for the
// saga with Settle instead of sleeping, and shut down in order.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ticketing-example")
	defer os.RemoveAll(dir)

	store, err := sqlite.Open(ctx, filepath.Join(dir, "ticketd.db"), sqlite.WithRelayOptions(outbox.RelayLogger(nil)))
	if err != nil {
		panic(err)
	}
	defer store.Close()
	bus := eventbus.New(eventbus.WithLogger(nil))
	sender := ticketing.SenderFunc(func(_ context.Context, n ticketing.Notification) error {
		fmt.Println("notify:", n.Subject)
		return nil
	})
	sys, err := ticketing.Start(ticketing.Config{Store: store, Bus: bus, Sender: sender})
	if err != nil {
		panic(err)
	}

	concert, err := sys.Concerts.AddConcert(ctx, ticketing.NewConcert{
		Name: "Rock Festival", Venue: "Central Park", Date: time.Now().AddDate(0, 1, 0),
		TotalTickets: 1000, TicketPriceCents: 9999, Currency: "USD",
	})
	if err != nil {
		panic(err)
	}
	_ = sys.Settle(ctx) // the announcement first, as in the seed

	ticket, err := sys.Tickets.PurchaseTicket(ctx, concert.ID, ticketing.NewTicket{CustomerName: "John Doe", CustomerEmail: "john@example.com"})
	if err != nil {
		panic(err)
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	ticket, _ = sys.Tickets.AwaitOutcome(wait, ticket.ID) // what an HTTP handler does
	cancel()
	_ = sys.Settle(ctx) // and the confirmation is sent
	fmt.Println("ticket:", ticket.Status)
	concert, _ = sys.Concerts.GetConcert(ctx, concert.ID)
	fmt.Println("remaining:", concert.AvailableTickets)

	// Shut down: (HTTP first,) then the system, then the bus, then the store.
	_ = sys.Close(ctx)
	_ = bus.Close(ctx)
	// Output:
	// notify: New concert: Rock Festival
	// notify: Your ticket for Rock Festival
	// ticket: confirmed
	// remaining: 999
}
