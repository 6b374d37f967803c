package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/notify"
	"github.com/gigbus/gigbus/ticketing/sqlite"
)

// demo is the seed's main as a real run: a concert, one purchase, the
// notifications it causes, and the seats left; on a temporary database, and
// waiting for the events with Settle (the bus's Flush and the relay's),
// never with a sleep.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("ticketd demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ticketd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Notifications are the demo's output; the services only log trouble.
	notes := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{ReplaceAttr: dropTime}))
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	store, err := sqlite.Open(ctx, filepath.Join(dir, "ticketd.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	bus := eventbus.New(eventbus.WithLogger(logger))
	defer bus.Close(context.WithoutCancel(ctx))
	sys, err := ticketing.Start(ticketing.Config{Store: store, Bus: bus, Sender: notify.Log(notes), Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := sys.Close(context.WithoutCancel(ctx)); err == nil {
			err = cerr
		}
	}()

	concert, err := sys.Concerts.AddConcert(ctx, ticketing.NewConcert{
		Name:             "Rock Festival",
		Venue:            "Central Park",
		Date:             time.Now().AddDate(0, 1, 0),
		TotalTickets:     1000,
		TicketPriceCents: 9999,
		Currency:         "USD",
	})
	if err != nil {
		return fmt.Errorf("add concert: %w", err)
	}
	if err := sys.Settle(ctx); err != nil { // the announcement first, as in the seed
		return err
	}
	ticket, err := sys.Tickets.PurchaseTicket(ctx, concert.ID, ticketing.NewTicket{
		CustomerName:  "John Doe",
		CustomerEmail: "john@example.com",
	})
	if err != nil {
		return fmt.Errorf("purchase ticket: %w", err)
	}
	if err := sys.Settle(ctx); err != nil {
		return err
	}
	ticket, err = sys.Tickets.GetTicket(ctx, ticket.ID)
	if err != nil {
		return err
	}
	concert, err = sys.Concerts.GetConcert(ctx, concert.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Ticket %s for %s is %s\n", ticket.ID, ticket.CustomerName, ticket.Status)
	fmt.Fprintf(stdout, "Concert %s has %d tickets remaining\n", concert.ID, concert.AvailableTickets)
	return nil
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
