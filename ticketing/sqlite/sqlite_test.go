package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/sqlite"
	"github.com/gigbus/gigbus/ticketing/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, path string, opts ...sqlite.Option) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, append([]sqlite.Option{sqlite.WithRelayOptions(outbox.RelayLogger(nil))}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ticketing.Store {
		return open(t, filepath.Join(t.TempDir(), "ticketd.db"))
	})
}

func TestOpenCreatesTheDirectoryAndMigratesOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "dir", "t.db")
	s1, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s1.Close()
	s2 := open(t, path) // the recorded migrations are not applied again
	w, _ := s2.DB()
	var n int
	if err := w.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("schema_migrations rows = %d, %v; want 1", n, err)
	}
	var mode string
	if err := w.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestOpenRejectsURIs(t *testing.T) {
	t.Parallel()
	for _, p := range []string{":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := sqlite.Open(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", p)
		}
	}
}

// A process commits a concert and dies before its relay publishes; the next
// process's relay publishes the ConcertAdded it left, and the saga goes on.
func TestRestartPublishesWhatACrashLeft(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	s1, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ticketing.NewConcertService(s1).AddConcert(t.Context(), ticketing.NewConcert{
		Name: "Rock Festival", Venue: "Central Park", Date: time.Now().AddDate(0, 1, 0), TotalTickets: 3, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil { // no relay ran: the event is only in the outbox
		t.Fatal(err)
	}

	s2 := open(t, path)
	var sent storetest.Recorder
	sys := storetest.StartSystem(t, s2, &sent)
	storetest.Settle(t, sys)
	got := sent.Sent()
	if len(got) != 1 || got[0].ConcertID != c.ID {
		t.Fatalf("after restart sent %+v, want the announcement of %s", got, c.ID)
	}
}

func TestIdempotencyLeaseExpires(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := open(t, filepath.Join(t.TempDir(), "t.db"), sqlite.WithNow(func() time.Time { return now }), sqlite.WithIdempotencyLease(time.Minute))
	ctx := context.Background()
	if r, err := s.Reserve(ctx, "s", "k", "fp1"); r != nil || err != nil {
		t.Fatal(r, err)
	}
	now = now.Add(30 * time.Second)
	if r, _ := s.Reserve(ctx, "s", "k", "fp2"); r == nil || r.Fingerprint != "fp1" {
		t.Fatalf("Reserve within the lease = %+v, want the running record", r)
	}
	now = now.Add(time.Minute)
	if r, err := s.Reserve(ctx, "s", "k", "fp2"); r != nil || err != nil {
		t.Fatalf("Reserve after the lease = %+v, %v; want nil, nil (taken over)", r, err)
	}
	if err := s.Complete(ctx, "s", "k", 201, nil, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if r, _ := s.Reserve(ctx, "s", "k", "fp2"); r == nil || !r.Done || r.Fingerprint != "fp2" {
		t.Fatalf("completed record = %+v, want done with fp2 (a completed key never expires by lease)", r)
	}
}

// A process commits a purchase, its relay hands TicketRequested to the
// in-memory bus, and the process dies before any handler ran. The next
// start redelivers it (sqlite.DefaultRedeliver) and the saga completes.
func TestRestartRedeliversWhatTheBusLost(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	s1, err := sqlite.Open(t.Context(), path, sqlite.WithRelayOptions(outbox.RelayLogger(nil)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ticketing.NewConcertService(s1).AddConcert(t.Context(), ticketing.NewConcert{
		Name: "Rock Festival", Venue: "Central Park", Date: time.Now().AddDate(0, 1, 0), TotalTickets: 3, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := ticketing.NewTicketService(s1).PurchaseTicket(t.Context(), c.ID, ticketing.NewTicket{CustomerName: "Ada", CustomerEmail: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	lost := eventbus.New(eventbus.WithLogger(nil)) // no handlers yet: what it accepts dies with it
	relay, err := s1.StartRelay(lost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relay.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	relay.Close(t.Context())
	lost.Close(t.Context())
	s1.Close()

	s2 := open(t, path)
	sys := storetest.StartSystem(t, s2, nil)
	storetest.Settle(t, sys)
	got, err := sys.Tickets.GetTicket(t.Context(), tk.ID)
	if err != nil || got.Status != ticketing.StatusConfirmed {
		t.Fatalf("ticket after restart = %+v, %v; want confirmed", got, err)
	}
	if c, _ := sys.Concerts.GetConcert(t.Context(), c.ID); c.AvailableTickets != 2 {
		t.Fatalf("available = %d, want 2", c.AvailableTickets)
	}
}

// Checkpoints run beside the writer, not inside its commits.
func TestBackgroundCheckpoint(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "t.db"))
	cs := ticketing.NewConcertService(s)
	for range 50 {
		if _, err := cs.AddConcert(t.Context(), ticketing.NewConcert{
			Name: "Gig", Venue: "Hall", Date: time.Now().AddDate(0, 1, 0), TotalTickets: 1, Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Checkpoints == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no background checkpoint within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not waiting for an event
	}
	if st := s.Stats(); st.Transactions != 50 || st.Commits == 0 {
		t.Fatalf("Stats = %+v, want 50 transactions", st)
	}
}
