package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
)

// fakeClock is a clock a test moves by hand, safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) add(d time.Duration)     { c.ns.Add(int64(d)) }
func (c *fakeClock) until(t time.Time) int64 { return t.UnixNano() - c.ns.Load() }

// requeuer is a dead-letter callback that requeues in the outbox, as
// ticketing does, and records what it did.
type requeuer struct {
	o    *outbox.Outbox
	mu   sync.Mutex
	got  []outbox.Requeued
	errs []error
}

func (q *requeuer) deadLetter(ctx context.Context, dl eventbus.DeadLetter) {
	rq, err := q.o.Requeue(context.WithoutCancel(ctx), dl.Event.ID)
	q.mu.Lock()
	defer q.mu.Unlock()
	if err != nil {
		q.errs = append(q.errs, err)
		return
	}
	q.got = append(q.got, rq)
}

func (q *requeuer) requeued() ([]outbox.Requeued, []error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.got), slices.Clone(q.errs)
}

func TestPoisonEventIsRequeuedWithGrowingDelayAndNeverLost(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	clock := newFakeClock()
	o := newOutbox(t, db, outbox.WithClock(clock.now), outbox.WithRequeueBackoff(5*time.Second, 20*time.Second))
	q := &requeuer{o: o}
	bus := eventbus.New(eventbus.WithLogger(nil), eventbus.WithDeadLetter(q.deadLetter))
	t.Cleanup(func() { bus.Close(context.Background()) })
	var seen recorder
	subscribe(t, bus, seen.handle)
	poison := func(_ context.Context, e eventbus.Event) error {
		if e.ID == "poison" {
			return errors.New("cannot handle this one")
		}
		return nil
	}
	if _, err := bus.Subscribe("T", poison, eventbus.Durable("poisoned"), eventbus.MaxAttempts(2), eventbus.Backoff(time.Millisecond, time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	r := startRelay(t, o, bus, outbox.PruneInterval(0))

	appendTx(t, db, o, eventbus.Event{ID: "poison", Type: "T", Subject: "s"})
	settle(t, r, bus)
	wantDelays := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 20 * time.Second}
	for i, want := range wantDelays {
		got, errs := q.requeued()
		if len(errs) > 0 || len(got) != i+1 {
			t.Fatalf("round %d: requeued %+v, errors %v; want %d requeues", i, got, errs, i+1)
		}
		if rq := got[i]; rq.Requeues != i+1 || time.Duration(clock.until(rq.NotBefore)) != want {
			t.Fatalf("round %d: Requeue = %+v (in %v), want requeue %d in %v", i, rq, time.Duration(clock.until(rq.NotBefore)), i+1, want)
		}
		if n, err := o.Pending(t.Context()); n != 1 || err != nil {
			t.Fatalf("round %d: Pending = %d, %v; want the requeued event", i, n, err)
		}
		// Not due yet: flushing publishes nothing, and other events flow.
		other := fmt.Sprintf("other%d", i)
		appendTx(t, db, o, eventbus.Event{ID: other, Type: "T", Subject: "s"})
		r.Notify()
		clock.add(want - time.Nanosecond)
		settle(t, r, bus)
		if ids := seen.ids(); ids[len(ids)-1] != other || count(ids, "poison") != i+1 {
			t.Fatalf("round %d: before its time: delivered %v", i, ids)
		}
		// Due: published again, to every subscriber, and dead-lettered again.
		clock.add(time.Nanosecond)
		settle(t, r, bus)
		if ids := seen.ids(); count(ids, "poison") != i+2 {
			t.Fatalf("round %d: when due: delivered %v, want poison %d times", i, ids, i+2)
		}
	}
	if n, _ := o.Pending(t.Context()); n != 1 {
		t.Fatalf("Pending = %d, want the poison event still kept", n)
	}
}

func count(ids []string, id string) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

func TestRequeueUnknownEvent(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db)
	if _, err := o.Requeue(t.Context(), "never-appended"); !errors.Is(err, outbox.ErrUnknownEvent) {
		t.Fatalf("Requeue of an unknown id = %v, want ErrUnknownEvent", err)
	}
}

// The serial fast path reads after the last seq it published; a requeued
// older row must still be published, and the rest keep commit order.
func TestFastPathKeepsCommitOrderAndPublishesRequeuedRows(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db, outbox.WithRequeueBackoff(0, 0))
	bus := newBus(t)
	var rec recorder
	subscribe(t, bus, rec.handle)
	r := startRelay(t, o, bus, outbox.BatchSize(4), outbox.PruneInterval(0))

	var want []string
	add := func(from, to int) {
		for i := from; i < to; i++ {
			e := eventbus.Event{ID: fmt.Sprintf("e%02d", i), Type: "T", Subject: "s"}
			appendTx(t, db, o, e)
			want = append(want, e.ID)
			r.Notify()
		}
	}
	add(0, 10)
	settle(t, r, bus)
	for _, id := range []string{"e03", "e07"} {
		rq, err := o.Requeue(t.Context(), id)
		if err != nil || rq.Requeues != 1 {
			t.Fatalf("Requeue(%s) = %+v, %v", id, rq, err)
		}
	}
	add(10, 20)
	settle(t, r, bus)

	got := rec.ids()
	if count(got, "e03") != 2 || count(got, "e07") != 2 || len(got) != 22 {
		t.Fatalf("delivered %v: want e03 and e07 twice, 22 in all", got)
	}
	// Without the requeued copies, commit order.
	var firsts []string
	seen := map[string]bool{}
	for _, id := range got {
		if !seen[id] {
			firsts = append(firsts, id)
			seen[id] = true
		}
	}
	if !slices.Equal(firsts, want) {
		t.Fatalf("first deliveries %v, want commit order %v", firsts, want)
	}
	if n, _ := o.Pending(t.Context()); n != 0 {
		t.Fatalf("Pending = %d, want 0 (requeued rows marked sent once published)", n)
	}
}

// A table made before Requeue existed gains its columns in Migrate.
func TestMigrateUpgradesAnOlderOutboxTable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT NOT NULL,
	time_ns BIGINT NOT NULL, data BLOB, meta TEXT, created_at BIGINT NOT NULL, published_at BIGINT)`,
		`INSERT INTO outbox (id, type, source, subject, time_ns, created_at, published_at) VALUES ('old', 'T', 'src', 's', 1, 1, 2)`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	db := openDB(t, path) // migrates
	if err := outbox.Migrate(t.Context(), db, outbox.SQLite); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	o := newOutbox(t, db)
	if rq, err := o.Requeue(t.Context(), "old"); err != nil || rq.Requeues != 1 {
		t.Fatalf("Requeue after the upgrade = %+v, %v", rq, err)
	}
	bus := newBus(t)
	var rec recorder
	subscribe(t, bus, rec.handle)
	// The requeue waits DefaultRequeueDelay of the real clock: nothing yet.
	r := startRelay(t, o, bus, outbox.PruneInterval(0))
	settle(t, r, bus)
	if n, _ := o.Pending(t.Context()); n != 1 || len(rec.ids()) != 0 {
		t.Fatalf("Pending = %d, delivered %v; want the row waiting for its time", n, rec.ids())
	}
}

// An event requeued after the relay published it but before the relay
// marked it sent stays unsent: the mark must not swallow the requeue.
func TestRequeueBeforeTheMarkIsNotMarkedSent(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	clock := newFakeClock()
	gate := make(chan struct{})
	openGate := sync.OnceFunc(func() { close(gate) })
	var first atomic.Bool
	marking := make(chan struct{})
	// The relay's first write is its mark of the published batch: hold it
	// until the event was dead-lettered and requeued.
	writer := func(ctx context.Context, fn func(tx *sql.Tx) error) error {
		if first.CompareAndSwap(false, true) {
			close(marking)
			<-gate
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := fn(tx); err != nil {
			return err
		}
		return tx.Commit()
	}
	o := newOutbox(t, db, outbox.WithClock(clock.now), outbox.WithWriter(writer))
	q := &requeuer{o: o}
	bus := eventbus.New(eventbus.WithLogger(nil), eventbus.WithDeadLetter(func(ctx context.Context, dl eventbus.DeadLetter) {
		q.deadLetter(ctx, dl)
		openGate()
	}))
	t.Cleanup(func() { bus.Close(context.Background()) })
	var seen atomic.Int32
	fail := func(ctx context.Context, _ eventbus.Event) error {
		if seen.Add(1) == 1 {
			select { // fail once the relay is about to mark the event sent
			case <-marking:
			case <-time.After(10 * time.Second):
				t.Error("the relay did not mark the published event")
			}
		}
		return eventbus.Permanent(errors.New("no"))
	}
	if _, err := bus.Subscribe("T", fail, eventbus.Durable("failing")); err != nil {
		t.Fatal(err)
	}
	r := startRelay(t, o, bus, outbox.PruneInterval(0))
	appendTx(t, db, o, eventbus.Event{ID: "e1", Type: "T", Subject: "s"})
	r.Notify()
	settle(t, r, bus)
	if got, errs := q.requeued(); len(got) != 1 || len(errs) != 0 {
		t.Fatalf("requeued %+v, %v", got, errs)
	}
	if n, _ := o.Pending(t.Context()); n != 1 {
		t.Fatalf("Pending = %d, want 1: the requeued event was marked sent", n)
	}
	clock.add(outbox.DefaultRequeueDelay)
	settle(t, r, bus)
	if n := seen.Load(); n != 2 {
		t.Fatalf("delivered %d times, want 2", n)
	}
}

// An event being requeued reaches every subscriber again, so the inbox must
// keep recognising it however old its records are, and each redelivery must
// say so (eventbus.MetaRedelivery) for transports that drop repeated IDs.
func TestRequeuedEventKeepsItsInboxRecordsAndIsMarkedAsRedelivery(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db, outbox.WithClock(clock.now))
	bus := newBus(t)
	var mu sync.Mutex
	var seen []eventbus.Event
	bus.Subscribe("R", func(_ context.Context, e eventbus.Event) error {
		mu.Lock()
		seen = append(seen, e)
		mu.Unlock()
		return nil
	})
	r := startRelay(t, o, bus, outbox.PruneInterval(0))
	appendTx(t, db, o, eventbus.Event{Type: "R", ID: "kept"}, eventbus.Event{Type: "R", ID: "plain"})
	settle(t, r, bus)
	for _, id := range []string{"kept", "plain"} {
		tx, _ := db.Begin()
		o.MarkProcessed(t.Context(), tx, "s", id)
		tx.Commit()
	}
	if _, err := o.Requeue(t.Context(), "kept"); err != nil {
		t.Fatal(err)
	}
	clock.add(48 * time.Hour)
	r.Notify()
	settle(t, r, bus)

	if _, in, err := o.Prune(t.Context(), clock.now().Add(-24*time.Hour), clock.now().Add(-24*time.Hour)); err != nil || in != 1 {
		t.Fatalf("Prune deleted %d inbox records (err %v), want 1: only the event that is not requeued", in, err)
	}
	if ok, _ := o.Processed(t.Context(), nil, "s", "kept"); !ok {
		t.Error("the inbox record of a requeued event was pruned: its next redelivery would be applied twice")
	}
	mu.Lock()
	defer mu.Unlock()
	var marks []string
	for _, e := range seen {
		if e.ID == "kept" {
			marks = append(marks, e.Meta[eventbus.MetaRedelivery])
		}
	}
	if !slices.Equal(marks, []string{"", "1"}) {
		t.Errorf("deliveries of the requeued event carried %s %q, want [\"\" \"1\"]", eventbus.MetaRedelivery, marks)
	}
}

// A handler that copies a redelivered event's Meta (its trace context) into
// the events it appends must not make those look like redeliveries.
func TestAppendDropsTheRedeliveryMark(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "o.db"))
	o := newOutbox(t, db)
	bus := newBus(t)
	got := make(chan map[string]string, 1)
	bus.Subscribe("Next", func(_ context.Context, e eventbus.Event) error { got <- e.Meta; return nil })
	r := startRelay(t, o, bus)
	carried := map[string]string{eventbus.MetaRedelivery: "3", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	appendTx(t, db, o, eventbus.Event{Type: "Next", Meta: carried})
	settle(t, r, bus)
	meta := <-got
	if _, ok := meta[eventbus.MetaRedelivery]; ok || meta["traceparent"] != carried["traceparent"] {
		t.Errorf("published Meta = %v, want the traceparent and no %s", meta, eventbus.MetaRedelivery)
	}
	if carried[eventbus.MetaRedelivery] != "3" {
		t.Error("Append changed the caller's Meta map")
	}
}
