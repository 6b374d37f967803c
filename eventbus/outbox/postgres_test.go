// The PostgreSQL dialect, against the database GIGBUS_POSTGRES_URL names
// (.ci/run sets it to the machine's PostgreSQL; unset, these tests skip):
//
//	GIGBUS_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go test ./eventbus/outbox

package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
	_ "github.com/jackc/pgx/v5/stdlib"
)

var pgSchemas atomic.Int64

// openPostgres opens a fresh schema of the database GIGBUS_POSTGRES_URL
// names (a postgres:// URL), or skips the test.
func openPostgres(t *testing.T) *sql.DB {
	t.Helper()
	dsn := os.Getenv("GIGBUS_POSTGRES_URL")
	if dsn == "" {
		t.Skip("GIGBUS_POSTGRES_URL is not set: skipping the PostgreSQL dialect tests (.ci/run sets it)")
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	schema := fmt.Sprintf("outbox_test_%d_%d", os.Getpid(), pgSchemas.Add(1))
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a, _ := sql.Open("pgx", dsn)
		a.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		a.Close()
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	db, err := sql.Open("pgx", dsn+sep+"search_path="+schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := outbox.Migrate(t.Context(), db, outbox.PostgreSQL); err != nil {
		t.Fatal(err)
	}
	if err := outbox.Migrate(t.Context(), db, outbox.PostgreSQL); err != nil {
		t.Fatalf("Migrate twice: %v", err)
	}
	return db
}

func TestPostgresDialect(t *testing.T) {
	t.Parallel()
	db := openPostgres(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	o, err := outbox.New(t.Context(), outbox.PostgreSQL, db, outbox.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })

	bus := newBus(t)
	var rec recorder
	subscribe(t, bus, rec.handle)
	var want []string
	for i := range 20 {
		e := eventbus.Event{ID: fmt.Sprintf("e%02d", i), Type: "T", Subject: "s", Data: map[string]int{"i": i}, Meta: map[string]string{"k": "v"}}
		appendTx(t, db, o, e)
		want = append(want, e.ID)
	}
	r := startRelay(t, o, bus, outbox.BatchSize(6), outbox.PruneInterval(0))
	settle(t, r, bus)
	if got := rec.ids(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("published %v, want %v", got, want)
	}
	if d, err := eventbus.Decode[map[string]int](rec.events[3]); err != nil || d["i"] != 3 || rec.events[3].Meta["k"] != "v" {
		t.Fatalf("event 3 = %+v (%v, %v)", rec.events[3], d, err)
	}
	if n, _ := o.Pending(t.Context()); n != 0 {
		t.Fatalf("Pending = %d, want 0", n)
	}

	tx, _ := db.Begin()
	first, err := o.MarkProcessed(t.Context(), tx, "s", "e00")
	again, _ := o.MarkProcessed(t.Context(), tx, "s", "e00")
	inTx, _ := o.Processed(t.Context(), tx, "s", "e00")
	tx.Commit()
	if !first || again || !inTx || err != nil {
		t.Fatalf("MarkProcessed = %v then %v, Processed = %v, err %v; want true, false, true", first, again, inTx, err)
	}
	if ok, _ := o.Processed(t.Context(), nil, "s", "e00"); !ok {
		t.Fatal("Processed after commit = false")
	}
	r.Close(t.Context())

	// Redeliver on restart, then prune everything old.
	bus2 := newBus(t)
	var rec2 recorder
	subscribe(t, bus2, rec2.handle)
	r2 := startRelay(t, o, bus2, outbox.Redeliver(time.Minute), outbox.PruneInterval(0))
	settle(t, r2, bus2)
	if got := len(rec2.ids()); got != 20 {
		t.Fatalf("redelivered %d events, want 20 (all sent within the window)", got)
	}
	ob, in, err := o.Prune(context.Background(), now.Add(time.Hour), now.Add(time.Hour))
	if err != nil || ob != 19 || in != 1 { // the newest row is kept
		t.Fatalf("Prune = %d, %d, %v; want 19, 1", ob, in, err)
	}
}

func TestPostgresRequeue(t *testing.T) {
	t.Parallel()
	db := openPostgres(t)
	// A table from before Requeue: Migrate adds its columns.
	if _, err := db.Exec(`ALTER TABLE outbox DROP COLUMN available_at, DROP COLUMN requeues`); err != nil {
		t.Fatal(err)
	}
	if err := outbox.Migrate(t.Context(), db, outbox.PostgreSQL); err != nil {
		t.Fatalf("Migrate an older table: %v", err)
	}
	clock := newFakeClock()
	o, err := outbox.New(t.Context(), outbox.PostgreSQL, db, outbox.WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	bus := newBus(t)
	var rec recorder
	subscribe(t, bus, rec.handle)
	r := startRelay(t, o, bus, outbox.BatchSize(3), outbox.PruneInterval(0))
	for i := range 5 {
		appendTx(t, db, o, eventbus.Event{ID: fmt.Sprintf("e%d", i), Type: "T", Subject: "s"})
	}
	settle(t, r, bus)
	if _, err := o.Requeue(t.Context(), "nope"); !errors.Is(err, outbox.ErrUnknownEvent) {
		t.Fatalf("Requeue(unknown) = %v, want ErrUnknownEvent", err)
	}
	for n, want := range []time.Duration{outbox.DefaultRequeueDelay, 2 * outbox.DefaultRequeueDelay} {
		rq, err := o.Requeue(t.Context(), "e1")
		if err != nil || rq.Requeues != n+1 || rq.NotBefore.Sub(clock.now()) != want {
			t.Fatalf("Requeue = %+v, %v; want requeue %d in %v", rq, err, n+1, want)
		}
	}
	appendTx(t, db, o, eventbus.Event{ID: "e5", Type: "T", Subject: "s"})
	settle(t, r, bus)
	if got := strings.Join(rec.ids(), ","); got != "e0,e1,e2,e3,e4,e5" {
		t.Fatalf("before its time: published %s", got)
	}
	clock.add(2 * outbox.DefaultRequeueDelay)
	settle(t, r, bus)
	if got := strings.Join(rec.ids(), ","); got != "e0,e1,e2,e3,e4,e5,e1" {
		t.Fatalf("when due: published %s", got)
	}
	if n, _ := o.Pending(t.Context()); n != 0 {
		t.Fatalf("Pending = %d, want 0", n)
	}
}
