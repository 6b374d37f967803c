package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
	"go.uber.org/goleak"
	_ "modernc.org/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// openDB opens (or reopens) a SQLite file the way the ticketing store does:
// one writer connection.
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if err := outbox.Migrate(t.Context(), db, outbox.SQLite); err != nil {
		t.Fatal(err)
	}
	return db
}

func newOutbox(t *testing.T, db *sql.DB, opts ...outbox.Option) *outbox.Outbox {
	t.Helper()
	o, err := outbox.New(t.Context(), outbox.SQLite, db, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func startRelay(t *testing.T, o *outbox.Outbox, bus outbox.Publisher, opts ...outbox.RelayOption) *outbox.Relay {
	t.Helper()
	r, err := o.StartRelay(bus, append([]outbox.RelayOption{outbox.RelayLogger(nil)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func newBus(t *testing.T) *eventbus.MemoryBus {
	t.Helper()
	b := eventbus.New(eventbus.WithLogger(nil))
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

// appendTx commits events in one transaction.
func appendTx(t *testing.T, db *sql.DB, o *outbox.Outbox, events ...eventbus.Event) {
	t.Helper()
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Append(t.Context(), tx, events...); err != nil {
		tx.Rollback()
		t.Fatalf("Append: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// recorder collects the events a subscription receives.
type recorder struct {
	mu     sync.Mutex
	events []eventbus.Event
}

func (r *recorder) handle(_ context.Context, e eventbus.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, len(r.events))
	for i, e := range r.events {
		ids[i] = e.ID
	}
	return ids
}

func subscribe(t *testing.T, bus eventbus.Bus, h eventbus.Handler) {
	t.Helper()
	if _, err := bus.Subscribe("*", h, eventbus.Concurrency(1)); err != nil {
		t.Fatal(err)
	}
}

func settle(t *testing.T, r *outbox.Relay, bus eventbus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := r.Flush(ctx); err != nil {
		t.Fatalf("relay Flush: %v", err)
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatalf("bus Flush: %v", err)
	}
}

func TestRelayPublishesInCommitOrder(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db)
	bus := newBus(t)
	var rec recorder
	subscribe(t, bus, rec.handle)
	r := startRelay(t, o, bus, outbox.BatchSize(7))

	var want []string
	for i := range 50 {
		e1 := eventbus.Event{ID: fmt.Sprintf("e%03d", i), Type: "T", Subject: "s", Data: map[string]int{"i": i}}
		e2 := eventbus.Event{ID: e1.ID + "-2", Type: "T", Subject: "s", Meta: map[string]string{"correlationid": "c"}}
		appendTx(t, db, o, e1, e2)
		want = append(want, e1.ID, e2.ID)
		if i%10 == 0 {
			r.Notify()
		}
	}
	settle(t, r, bus)
	got := rec.ids()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: got %s, want %s (commit order)", i, got[i], want[i])
		}
	}
	e := rec.events[1]
	if e.Source != "gigbus" || e.Time.IsZero() || e.Meta["correlationid"] != "c" {
		t.Errorf("filled event = %+v, want Source gigbus, a Time and the Meta", e)
	}
	d, err := eventbus.Decode[map[string]int](rec.events[0])
	if err != nil || d["i"] != 0 {
		t.Errorf("Decode = %v, %v; want map[i:0]", d, err)
	}
	if n, _ := o.Pending(t.Context()); n != 0 {
		t.Errorf("Pending = %d after flush, want 0", n)
	}
	if p := r.Published(); p != 100 {
		t.Errorf("Published = %d, want 100", p)
	}
}

func TestRelayWakesOnNotifyWithoutPolling(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db)
	bus := newBus(t)
	got := make(chan eventbus.Event, 1)
	subscribe(t, bus, func(_ context.Context, e eventbus.Event) error { got <- e; return nil })
	r := startRelay(t, o, bus, outbox.PollInterval(time.Hour))
	appendTx(t, db, o, eventbus.Event{Type: "T"})
	r.Notify()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no event 10s after Notify (poll interval 1h)")
	}
}

func TestCrashBetweenCommitAndPublishIsRecovered(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "o.db")

	// "Process 1" commits and dies before any relay publishes.
	db1 := openDB(t, path)
	o1 := newOutbox(t, db1)
	appendTx(t, db1, o1, eventbus.Event{ID: "e1", Type: "T"}, eventbus.Event{ID: "e2", Type: "T"})
	o1.Close()
	db1.Close()

	// "Process 2" opens the same file: its relay publishes what was left.
	db2 := openDB(t, path)
	o2 := newOutbox(t, db2)
	bus := newBus(t)
	var rec recorder
	subscribe(t, bus, rec.handle)
	r := startRelay(t, o2, bus)
	settle(t, r, bus)
	if got := rec.ids(); len(got) != 2 || got[0] != "e1" || got[1] != "e2" {
		t.Fatalf("after restart got %v, want [e1 e2]", got)
	}
}

func TestPublishFailureKeepsEventsForTheNextRelay(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db)
	dead := eventbus.New(eventbus.WithLogger(nil))
	if err := dead.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	r1 := startRelay(t, o, dead)
	appendTx(t, db, o, eventbus.Event{ID: "e1", Type: "T"})
	if _, err := r1.Flush(t.Context()); !errors.Is(err, eventbus.ErrClosed) {
		t.Fatalf("Flush on a closed bus: got %v, want ErrClosed", err)
	}
	if err := r1.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, _ := o.Pending(t.Context()); n != 1 {
		t.Fatalf("Pending = %d, want 1", n)
	}

	bus := newBus(t)
	var rec recorder
	subscribe(t, bus, rec.handle)
	r2 := startRelay(t, o, bus)
	settle(t, r2, bus)
	if got := rec.ids(); len(got) != 1 || got[0] != "e1" {
		t.Fatalf("got %v, want [e1]", got)
	}
}

// A consumer that records each event in the inbox in the same transaction
// as its effect applies a redelivered event once.
func TestRedeliveredEventIsAppliedOnce(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db)
	if _, err := db.Exec(`CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	bus := newBus(t)
	handler := func(ctx context.Context, e eventbus.Event) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		first, err := o.MarkProcessed(ctx, tx, "counter", e.ID)
		if err != nil || !first {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE counter SET n = n + 1`); err != nil {
			return err
		}
		return tx.Commit()
	}
	if _, err := bus.Subscribe("T", handler, eventbus.Durable("counter")); err != nil {
		t.Fatal(err)
	}
	e := eventbus.Event{ID: "same-id", Type: "T"}
	for range 3 {
		if err := bus.Publish(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("counter = %d after 3 deliveries of one event, want 1", n)
	}
	if ok, err := o.Processed(t.Context(), nil, "counter", "same-id"); !ok || err != nil {
		t.Errorf("Processed = %v, %v; want true", ok, err)
	}
	if ok, _ := o.Processed(t.Context(), nil, "other", "same-id"); ok {
		t.Error("Processed for another subscription = true, want false")
	}
}

func TestMarkProcessedRolledBackIsForgotten(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db)
	tx, _ := db.Begin()
	if first, err := o.MarkProcessed(t.Context(), tx, "s", "e"); !first || err != nil {
		t.Fatalf("MarkProcessed = %v, %v; want true", first, err)
	}
	tx.Rollback()
	tx, _ = db.Begin()
	defer tx.Rollback()
	if first, err := o.MarkProcessed(t.Context(), tx, "s", "e"); !first || err != nil {
		t.Fatalf("MarkProcessed after rollback = %v, %v; want true", first, err)
	}
	if first, _ := o.MarkProcessed(t.Context(), tx, "s", "e"); first {
		t.Fatal("second MarkProcessed = true, want false")
	}
}

func TestAppendRejectsInvalidEventsAndStoresNothing(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db)
	for _, bad := range []eventbus.Event{
		{Type: ""},
		{Type: "has space"},
		{Type: "T", Data: []byte("{not json")},
		{Type: "T", Data: func() {}},
	} {
		tx, _ := db.Begin()
		err := o.Append(t.Context(), tx, eventbus.Event{Type: "Good"}, bad)
		tx.Rollback()
		if !errors.Is(err, eventbus.ErrInvalidEvent) {
			t.Errorf("Append(%+v) = %v, want ErrInvalidEvent", bad, err)
		}
	}
	if n, _ := o.Pending(t.Context()); n != 0 {
		t.Errorf("Pending = %d, want 0", n)
	}
}

func TestPruneDeletesOldSentRowsAndInboxRecords(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db, outbox.WithClock(clock))
	bus := newBus(t)
	r := startRelay(t, o, bus, outbox.PruneInterval(0))
	appendTx(t, db, o, eventbus.Event{Type: "T"}, eventbus.Event{Type: "T"})
	settle(t, r, bus)
	appendTx(t, db, o, eventbus.Event{Type: "T"}) // unsent: never pruned
	tx, _ := db.Begin()
	o.MarkProcessed(t.Context(), tx, "s", "old")
	tx.Commit()

	mu.Lock()
	now = now.Add(48 * time.Hour)
	mu.Unlock()
	tx, _ = db.Begin()
	o.MarkProcessed(t.Context(), tx, "s", "new")
	tx.Commit()

	ob, in, err := o.Prune(t.Context(), clock().Add(-24*time.Hour), clock().Add(-24*time.Hour))
	if err != nil || ob != 2 || in != 1 {
		t.Fatalf("Prune = %d, %d, %v; want 2, 1", ob, in, err)
	}
	if n, _ := o.Pending(t.Context()); n != 1 {
		t.Errorf("Pending = %d, want 1 (unsent rows are kept)", n)
	}
	if ok, _ := o.Processed(t.Context(), nil, "s", "new"); !ok {
		t.Error("recent inbox record was pruned")
	}
}

func TestCloseStopsTheRelay(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db)
	bus := newBus(t)
	r := startRelay(t, o, bus)
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Flush(t.Context()); !errors.Is(err, outbox.ErrRelayClosed) {
		t.Fatalf("Flush after Close = %v, want ErrRelayClosed", err)
	}
	r.Notify() // must not block or panic
}

// The in-memory bus loses what it accepted when the process dies: a relay
// started with Redeliver publishes the last events again, and a consumer
// with an inbox applies them once.
func TestRedeliverReplaysWhatABusLostInACrash(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "o.db")
	db := openDB(t, path)
	o := newOutbox(t, db)

	// Process 1: the relay publishes, the bus accepts, the process dies
	// before any handler ran (its handler blocks until then).
	bus1 := eventbus.New(eventbus.WithLogger(nil))
	block := make(chan struct{})
	started := make(chan struct{}, 10)
	bus1.Subscribe("T", func(ctx context.Context, e eventbus.Event) error {
		started <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done():
		}
		return ctx.Err()
	}, eventbus.MaxAttempts(1))
	r1 := startRelay(t, o, bus1)
	appendTx(t, db, o, eventbus.Event{ID: "old", Type: "T"})
	if _, err := r1.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-started
	r1.Close(t.Context())
	crashed, cancel := context.WithCancel(context.Background())
	cancel()
	bus1.Close(crashed) // gives up at once: the event is lost
	close(block)
	if n, _ := o.Pending(t.Context()); n != 0 {
		t.Fatalf("Pending = %d, want 0 (the lost event was marked sent)", n)
	}

	// Process 2 redelivers it.
	bus2 := newBus(t)
	var rec recorder
	subscribe(t, bus2, rec.handle)
	r2 := startRelay(t, o, bus2, outbox.Redeliver(time.Minute))
	settle(t, r2, bus2)
	if got := rec.ids(); len(got) != 1 || got[0] != "old" {
		t.Fatalf("after restart got %v, want [old]", got)
	}
}

func TestRedeliverWindowEndsAtTheNewestSentEvent(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db, outbox.WithClock(clock))
	bus := newBus(t)
	r := startRelay(t, o, bus)
	appendTx(t, db, o, eventbus.Event{ID: "early", Type: "T"})
	settle(t, r, bus)
	advance(time.Hour)
	appendTx(t, db, o, eventbus.Event{ID: "late", Type: "T"})
	settle(t, r, bus)
	r.Close(t.Context())
	advance(24 * time.Hour) // a long downtime does not matter

	bus2 := newBus(t)
	var rec recorder
	subscribe(t, bus2, rec.handle)
	r2 := startRelay(t, o, bus2, outbox.Redeliver(time.Minute))
	settle(t, r2, bus2)
	if got := rec.ids(); len(got) != 1 || got[0] != "late" {
		t.Fatalf("redelivered %v, want [late]", got)
	}
}

// Pruning everything old keeps the newest row, so SQLite's next seq stays
// above the last one the running relay published, and the relay sees it.
func TestRelayPublishesAfterPruningEverything(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db, outbox.WithClock(clock))
	bus := newBus(t)
	var rec recorder
	subscribe(t, bus, rec.handle)
	r := startRelay(t, o, bus, outbox.PruneInterval(0))
	appendTx(t, db, o, eventbus.Event{ID: "a", Type: "T"}, eventbus.Event{ID: "b", Type: "T"})
	settle(t, r, bus)
	mu.Lock()
	now = now.Add(48 * time.Hour)
	mu.Unlock()
	if n, _, err := o.Prune(t.Context(), clock(), clock()); n != 1 || err != nil {
		t.Fatalf("Prune = %d, %v; want 1 (the newest row is kept)", n, err)
	}
	appendTx(t, db, o, eventbus.Event{ID: "c", Type: "T"})
	r.Notify()
	settle(t, r, bus)
	if got := rec.ids(); len(got) != 3 || got[2] != "c" {
		t.Fatalf("published %v, want [a b c]", got)
	}
}

type traceKey struct{}

// An append hook sees the appender's context: what it writes into Meta
// reaches the handler, although the relay publishes with its own context.
func TestAppendHookCarriesContextThroughTheOutbox(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db, outbox.WithAppendHook(func(ctx context.Context, e *eventbus.Event) {
		if v, ok := ctx.Value(traceKey{}).(string); ok {
			meta := map[string]string{"traceparent": v}
			for k, v := range e.Meta {
				meta[k] = v
			}
			e.Meta = meta
		}
	}))
	bus := newBus(t)
	var rec recorder
	subscribe(t, bus, rec.handle)
	r := startRelay(t, o, bus)
	ctx := context.WithValue(t.Context(), traceKey{}, "00-trace-span-01")
	tx, _ := db.BeginTx(ctx, nil)
	if err := o.Append(ctx, tx, eventbus.Event{Type: "T", Meta: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	settle(t, r, bus)
	if len(rec.events) != 1 || rec.events[0].Meta["traceparent"] != "00-trace-span-01" || rec.events[0].Meta["k"] != "v" {
		t.Fatalf("handled %+v, want Meta with the appender's traceparent and k=v", rec.events)
	}
}
