// Package storetest is the conformance suite of ticketing.Store: every store
// (SQLite, PostgreSQL) runs it from its own tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) ticketing.Store { return openTestStore(t) })
//	}
//
// It checks the repository primitives, the inbox and the outbox, the
// idempotency keys (when the store is also a ticketing.IdempotencyStore),
// and the services running on the store with a real eventbus.New() bus and
// the store's relay: the saga, cancellation, redelivery, and the concurrent
// last-seat race.
package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
)

// NewStore returns a new, empty store for one test, closed by t.Cleanup.
type NewStore func(t *testing.T) ticketing.Store

// Run runs the suite. Each test gets a store of its own and may run in parallel.
func Run(t *testing.T, newStore NewStore) {
	t.Run("Repository", func(t *testing.T) { testRepository(t, newStore) })
	t.Run("Inbox", func(t *testing.T) { testInbox(t, newStore) })
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, newStore) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, newStore) })
	t.Run("Services", func(t *testing.T) { testServices(t, newStore) })
}

// Future is a time far enough ahead for any concert date.
var Future = time.Now().AddDate(1, 0, 0).UTC().Truncate(time.Second)

// Recorder is a ticketing.Sender that keeps what it was given.
type Recorder struct {
	mu   sync.Mutex
	sent []ticketing.Notification
}

// Send records n.
func (r *Recorder) Send(_ context.Context, n ticketing.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, n)
	return nil
}

// Sent returns what was sent so far.
func (r *Recorder) Sent() []ticketing.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

// StartSystem starts the services on store with a new eventbus.New() bus and
// sender; t.Cleanup closes the system, then the bus.
func StartSystem(t *testing.T, store ticketing.Store, sender ticketing.Sender) *ticketing.System {
	t.Helper()
	bus := eventbus.New(eventbus.WithLogger(nil))
	t.Cleanup(func() { bus.Close(context.Background()) })
	sys, err := ticketing.Start(ticketing.Config{Store: store, Bus: bus, Sender: sender})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sys.Close(ctx); err != nil {
			t.Errorf("System.Close: %v", err)
		}
	})
	return sys
}

// Settle waits (at most 10s) until sys is quiet.
func Settle(t *testing.T, sys *ticketing.System) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := sys.Settle(ctx); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

func update(t *testing.T, s ticketing.Store, fn func(tx ticketing.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := ticketing.ErrorCode(err); got != code {
		t.Fatalf("%s: got error %v (code %q), want code %q", what, err, got, code)
	}
}

func testConcert(id string, seats int) ticketing.Concert {
	return ticketing.Concert{
		ID: id, Name: "Rock Festival", Venue: "Central Park", Date: Future,
		TotalTickets: seats, AvailableTickets: seats, TicketPriceCents: 9999, Currency: "EUR",
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
}

func testTicket(id, concertID string) ticketing.Ticket {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return ticketing.Ticket{
		ID: id, ConcertID: concertID, CustomerName: "Ada", CustomerEmail: "ada@example.com",
		Status: ticketing.StatusPending, PurchasedAt: now, UpdatedAt: now,
	}
}

func concertOf(t *testing.T, s ticketing.Store, id string) ticketing.Concert {
	t.Helper()
	var c ticketing.Concert
	err := s.View(t.Context(), func(tx ticketing.ReadTx) (err error) {
		c, err = tx.Concert(t.Context(), id)
		return err
	})
	if err != nil {
		t.Fatalf("Concert(%s): %v", id, err)
	}
	return c
}

func ticketOf(t *testing.T, s ticketing.Store, id string) ticketing.Ticket {
	t.Helper()
	var tk ticketing.Ticket
	err := s.View(t.Context(), func(tx ticketing.ReadTx) (err error) {
		tk, err = tx.Ticket(t.Context(), id)
		return err
	})
	if err != nil {
		t.Fatalf("Ticket(%s): %v", id, err)
	}
	return tk
}

var errRollback = errors.New("roll back")
