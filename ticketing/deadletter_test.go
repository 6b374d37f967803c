package ticketing_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/sqlite"
)

// clock is a time a test moves by hand, safe for concurrent use.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

// logBuffer collects log output, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// flakyStore is the real store whose Update fails, like a busy database,
// the next failures times it runs in a handler of subscription sub.
type flakyStore struct {
	ticketing.Store
	sub      string
	failures atomic.Int32
}

func (s *flakyStore) Update(ctx context.Context, fn func(tx ticketing.Tx) error) error {
	if d, ok := eventbus.DeliveryFrom(ctx); ok && d.Subscription == s.sub {
		for n := s.failures.Load(); n > 0; n = s.failures.Load() {
			if s.failures.CompareAndSwap(n, n-1) {
				return errors.New("flaky: database is locked")
			}
		}
	}
	return s.Store.Update(ctx, fn)
}

// startFlaky starts a system on a SQLite store with clk as the outbox's
// clock, handlers trying 3 times, and the System's dead-letter callback
// bound to the bus late, as ticketd may.
func startFlaky(t *testing.T, clk *clock, logs *logBuffer) (*ticketing.System, *sqlite.Store, *flakyStore) {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "t.db"), sqlite.WithNow(clk.now),
		sqlite.WithRelayOptions(outbox.RelayLogger(nil), outbox.PruneInterval(0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	flaky := &flakyStore{Store: store, sub: ticketing.SubConcertTicketRequested}
	var sysp atomic.Pointer[ticketing.System]
	bus := eventbus.New(eventbus.WithLogger(nil), eventbus.WithDeadLetter(func(ctx context.Context, dl eventbus.DeadLetter) {
		if sys := sysp.Load(); sys != nil {
			sys.DeadLetter(ctx, dl)
			return
		}
		t.Errorf("dead letter before the System started: %+v", dl)
	}))
	t.Cleanup(func() { bus.Close(context.Background()) })
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError}))
	sys, err := ticketing.Start(ticketing.Config{Store: flaky, Bus: bus, Logger: logger,
		HandlerMaxAttempts: 3, HandlerBackoff: time.Millisecond, HandlerBackoffMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sysp.Store(sys)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sys.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return sys, store, flaky
}

// A TicketRequested whose handler fails more than MaxAttempts times is
// requeued in the outbox, published again when due, and once the handler
// recovers the ticket is confirmed with one seat taken.
func TestDeadLetteredSagaStepIsRequeuedUntilItSucceeds(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var logs logBuffer
	sys, store, flaky := startFlaky(t, clk, &logs)
	c := addConcert(t, sys, 10)
	settle(t, sys)

	flaky.failures.Store(3 + 3 + 1) // two rounds of MaxAttempts, then one more failure
	tk, err := sys.Tickets.PurchaseTicket(t.Context(), c.ID, buyer)
	if err != nil {
		t.Fatal(err)
	}
	state := func() (ticketing.TicketStatus, int) {
		t.Helper()
		tk, err := sys.Tickets.GetTicket(t.Context(), tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		c, err := sys.Concerts.GetConcert(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return tk.Status, c.AvailableTickets
	}
	for round, delay := range []time.Duration{outbox.DefaultRequeueDelay, 2 * outbox.DefaultRequeueDelay} {
		settle(t, sys)
		if st, avail := state(); st != ticketing.StatusPending || avail != 10 {
			t.Fatalf("round %d: ticket %s, %d seats left; want pending, 10", round, st, avail)
		}
		if n, _ := store.Outbox().Pending(t.Context()); n != 1 {
			t.Fatalf("round %d: %d events pending in the outbox, want the requeued one", round, n)
		}
		if want := "requeues=" + string(rune('1'+round)); !strings.Contains(logs.String(), want) {
			t.Fatalf("round %d: log lacks %s:\n%s", round, want, logs.String())
		}
		clk.add(delay - time.Millisecond)
		settle(t, sys)
		if n, _ := store.Outbox().Pending(t.Context()); n != 1 {
			t.Fatalf("round %d: published before its time", round)
		}
		clk.add(time.Millisecond)
	}
	settle(t, sys)
	if st, avail := state(); st != ticketing.StatusConfirmed || avail != 9 {
		t.Fatalf("after recovery: ticket %s, %d seats left; want confirmed, 9", st, avail)
	}
	if got := logs.String(); strings.Count(got, "dead letter requeued") != 2 || !strings.Contains(got, "subscription="+ticketing.SubConcertTicketRequested) ||
		!strings.Contains(got, "event_type=TicketRequested") || !strings.Contains(got, "database is locked") {
		t.Fatalf("logs:\n%s", got)
	}

	// Requeued once more (as when a second subscriber dead-letters it): the
	// inbox skips it, the seat stays counted once.
	w, _ := store.DB()
	var id string
	if err := w.QueryRowContext(t.Context(), `SELECT id FROM outbox WHERE type = 'TicketRequested'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	n, at, err := store.Requeue(t.Context(), id)
	if err != nil || n != 3 || at.Sub(clk.now()) != 4*outbox.DefaultRequeueDelay {
		t.Fatalf("Requeue = %d, %v, %v; want 3 in %v", n, at.Sub(clk.now()), err, 4*outbox.DefaultRequeueDelay)
	}
	clk.add(4 * outbox.DefaultRequeueDelay)
	settle(t, sys)
	if n, _ := store.Outbox().Pending(t.Context()); n != 0 {
		t.Fatalf("%d events pending, want 0", n)
	}
	if st, avail := state(); st != ticketing.StatusConfirmed || avail != 9 {
		t.Fatalf("after a redelivery: ticket %s, %d seats left; want confirmed, 9", st, avail)
	}
}

func TestDeadLetterNotFromTheOutboxIsLogged(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	sys, _, _ := startFlaky(t, newClock(), &logs)
	sys.DeadLetter(t.Context(), eventbus.DeadLetter{Event: eventbus.Event{ID: "direct-1", Type: "X"}, Subscription: "s", Err: errors.New("boom"), Attempts: 3})
	if got := logs.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "not in the outbox") || !strings.Contains(got, "event_id=direct-1") {
		t.Fatalf("logs:\n%s", got)
	}
}

func TestDeadLetterThatCannotBeRequeuedIsLogged(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	store.Close() // every Requeue fails
	var logs logBuffer
	requeue := ticketing.RequeueDeadLetters(store, slog.New(slog.NewTextHandler(&logs, nil)))
	requeue(t.Context(), eventbus.DeadLetter{Event: eventbus.Event{ID: "e-1", Type: "TicketRequested"}, Subscription: "s", Err: errors.New("boom"), Attempts: 10})
	if got := logs.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "could not be requeued") ||
		!strings.Contains(got, "event_id=e-1") || !strings.Contains(got, "requeue_err=") {
		t.Fatalf("logs:\n%s", got)
	}
}
