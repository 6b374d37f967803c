package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/httpapi"
	"github.com/gigbus/gigbus/ticketing/sqlite"
)

// stalled is an API whose purchases never settle: the services run on a
// real store, but no handler answers TicketRequested (nothing is
// registered and no relay publishes), so every ticket stays pending.
type stalled struct {
	url     string
	store   *sqlite.Store
	concert ticketing.Concert
}

func newStalled(t *testing.T, wait time.Duration) *stalled {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	concerts := ticketing.NewConcertService(store)
	api, err := httpapi.New(httpapi.Config{
		Concerts:     concerts,
		Tickets:      ticketing.NewTicketService(store),
		Idempotency:  store,
		AdminToken:   "admin",
		PurchaseWait: wait,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	c, err := concerts.AddConcert(ctx, ticketing.NewConcert{Name: "N", Venue: "V", Date: time.Now().AddDate(0, 1, 0), TotalTickets: 3, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	return &stalled{url: srv.URL, store: store, concert: c}
}

func post(t *testing.T, ctx context.Context, url, body string, headers ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

const buyer = `{"customer_name":"John","customer_email":"john@example.com"}`

func TestPurchaseStillPendingIs202(t *testing.T) {
	t.Parallel()
	s := newStalled(t, 10*time.Millisecond)
	url := s.url + "/api/concerts/" + s.concert.ID + "/tickets"
	resp, body, err := post(t, context.Background(), url, buyer, "Idempotency-Key", "k")
	if err != nil {
		t.Fatal(err)
	}
	var tk struct{ ID, Status string }
	json.Unmarshal(body, &tk)
	if resp.StatusCode != http.StatusAccepted || tk.Status != "pending" || resp.Header.Get("Location") != "/api/tickets/"+tk.ID {
		t.Fatalf("got %d %s Location %q, want 202 pending with Location", resp.StatusCode, body, resp.Header.Get("Location"))
	}

	// A replayed 202 reports the ticket's outcome as it is now.
	err = s.store.Update(context.Background(), func(tx ticketing.Tx) error {
		_, err := tx.SetTicketStatus(context.Background(), tk.ID, ticketing.StatusPending, ticketing.StatusConfirmed, "", time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, body, err = post(t, context.Background(), url, buyer, "Idempotency-Key", "k")
	if err != nil {
		t.Fatal(err)
	}
	var again struct{ ID, Status string }
	json.Unmarshal(body, &again)
	if resp.StatusCode != http.StatusCreated || again.ID != tk.ID || again.Status != "confirmed" {
		t.Errorf("replay after the outcome: got %d %s, want 201 confirmed for %s", resp.StatusCode, body, tk.ID)
	}
}

func TestEventStreamHeartbeatAndClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	bus := eventbus.New()
	defer bus.Close(ctx)
	api, err := httpapi.New(httpapi.Config{
		Concerts:  ticketing.NewConcertService(store),
		Tickets:   ticketing.NewTicketService(store),
		Bus:       bus,
		Heartbeat: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control: got %q, want no-cache", got)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != ": heartbeat" {
	}
	if err := bus.Publish(ctx, eventbus.Event{Type: "Hello", Subject: "s", Data: map[string]string{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() && sc.Text() != "event: Hello" {
	}
	if err := api.Close(); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // the server ends the stream
	}
	if r, err := http.Get(srv.URL + "/api/events"); err != nil || r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: got %v %v, want 503", r.StatusCode, err)
	}
}

func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "httpapi-example-")
	defer os.RemoveAll(dir)
	store, _ := sqlite.Open(ctx, filepath.Join(dir, "ticketd.db"))
	defer store.Close()
	bus := eventbus.New()
	defer bus.Close(ctx)
	sys, _ := ticketing.Start(ticketing.Config{Store: store, Bus: bus})
	defer sys.Close(ctx)
	api, _ := httpapi.New(httpapi.Config{Concerts: sys.Concerts, Tickets: sys.Tickets, Idempotency: store, Bus: bus, AdminToken: "secret"})
	defer api.Close()

	srv := httptest.NewServer(api)
	defer srv.Close()
	resp, _ := http.Get(srv.URL + "/api/concerts/nope")
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	fmt.Print(string(body))
	// Output:
	// 404 application/problem+json
	// {"type":"https://gigbus.dev/problems/not-found","title":"Not found","status":404,"detail":"concert \"nope\" not found"}
}

// TestEventStreamOutlivesServerTimeouts: the server's read and write
// timeouts are for ordinary requests; a stream extends its deadline per write.
func TestEventStreamOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	bus := eventbus.New()
	defer bus.Close(ctx)
	api, err := httpapi.New(httpapi.Config{
		Concerts:  ticketing.NewConcertService(store),
		Tickets:   ticketing.NewTicketService(store),
		Bus:       bus,
		Heartbeat: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	srv := httptest.NewUnstartedServer(api)
	srv.Config.ReadTimeout = 50 * time.Millisecond
	srv.Config.WriteTimeout = 50 * time.Millisecond
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	start := time.Now()
	for time.Since(start) < 300*time.Millisecond {
		if !sc.Scan() {
			t.Fatalf("stream ended after %v (%v), want it to outlive the 50ms server timeouts", time.Since(start), sc.Err())
		}
	}
}
