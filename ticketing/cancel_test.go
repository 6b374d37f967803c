package ticketing_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/sqlite"
)

func settle(t *testing.T, sys *ticketing.System) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := sys.Settle(ctx); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

func addConcert(t *testing.T, sys *ticketing.System, seats int) ticketing.Concert {
	t.Helper()
	c, err := sys.Concerts.AddConcert(t.Context(), ticketing.NewConcert{Name: "Rock Festival", Venue: "Central Park",
		Date: time.Now().AddDate(1, 0, 0), TotalTickets: seats, TicketPriceCents: 9999, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var buyer = ticketing.NewTicket{CustomerName: "John Doe", CustomerEmail: "john@example.com"}

// racingStore is the real store with a second writer that cancels ticket
// id (appending its TicketCancelled) just before CancelTicket's own
// conditional update, as can happen on a store with concurrent writers.
type racingStore struct {
	ticketing.Store
	id string
}

func (s *racingStore) Update(ctx context.Context, fn func(tx ticketing.Tx) error) error {
	return s.Store.Update(ctx, func(tx ticketing.Tx) error { return fn(&racingTx{Tx: tx, id: s.id}) })
}

type racingTx struct {
	ticketing.Tx
	id string
}

func (tx *racingTx) SetTicketStatus(ctx context.Context, id string, from, to ticketing.TicketStatus, reason string, at time.Time) (bool, error) {
	if id == tx.id && to == ticketing.StatusCancelled {
		t, err := tx.Ticket(ctx, id)
		if err != nil {
			return false, err
		}
		if ok, err := tx.Tx.SetTicketStatus(ctx, id, from, to, reason, at); err != nil || !ok {
			return ok, err
		}
		if err := tx.Append(ctx, eventbus.Event{Type: ticketing.EventTicketCancelled, Subject: id,
			Data: ticketing.TicketCancelled{TicketID: id, ConcertID: t.ConcertID}}); err != nil {
			return false, err
		}
	}
	return tx.Tx.SetTicketStatus(ctx, id, from, to, reason, at)
}

func TestCancelThatLosesARaceReturnsTheSeatOnce(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "t.db"), sqlite.WithRelayOptions(outbox.RelayLogger(nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	racing := &racingStore{Store: store}
	bus := eventbus.New(eventbus.WithLogger(nil))
	t.Cleanup(func() { bus.Close(context.Background()) })
	sys, err := ticketing.Start(ticketing.Config{Store: racing, Bus: bus, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close(context.Background()) })

	c := addConcert(t, sys, 2)
	var ids []string
	for range 2 {
		tk, err := sys.Tickets.PurchaseTicket(t.Context(), c.ID, buyer)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tk.ID)
	}
	settle(t, sys)
	racing.id = ids[0] // set while quiet: read only by Updates that follow
	got, err := sys.Tickets.CancelTicket(t.Context(), ids[0])
	if err != nil || got.Status != ticketing.StatusCancelled || got.ID != ids[0] {
		t.Fatalf("CancelTicket = %+v, %v; want the cancelled ticket", got, err)
	}
	settle(t, sys)
	if c, _ := sys.Concerts.GetConcert(t.Context(), c.ID); c.AvailableTickets != 1 {
		t.Fatalf("%d seats available, want 1 (one cancelled ticket returns one seat)", c.AvailableTickets)
	}
	w, _ := store.DB()
	var n int
	if err := w.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM outbox WHERE type = 'TicketCancelled'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d TicketCancelled events (%v), want 1", n, err)
	}
}
