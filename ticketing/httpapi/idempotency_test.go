package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/sqlite"
)

// TestIdempotencyKeyStates drives a key through the store directly: held by
// a request still running (409), then completed (replayed as stored).
func TestIdempotencyKeyStates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	concerts := ticketing.NewConcertService(store)
	c, err := concerts.AddConcert(ctx, ticketing.NewConcert{Name: "N", Venue: "V", Date: time.Now().AddDate(0, 1, 0), TotalTickets: 1, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(Config{Concerts: concerts, Tickets: ticketing.NewTicketService(store), Idempotency: store,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/concerts/" + c.ID + "/tickets"
	body := `{"customer_name":"John","customer_email":"john@example.com"}`
	send := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Idempotency-Key", "k")
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		return w
	}
	scope := "purchase:" + c.ID
	fp, err := purchaseFingerprint(c.ID, ticketing.NewTicket{CustomerName: "John", CustomerEmail: "john@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := store.Reserve(ctx, scope, "k", fp); err != nil || rec != nil {
		t.Fatalf("Reserve: got %v, %v", rec, err)
	}
	if w := send(); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "idempotency-key-in-use") {
		t.Fatalf("while the first runs: got %d %s, want 409 idempotency-key-in-use", w.Code, w.Body)
	}
	stored := `{"id":"t1","status":"confirmed"}` + "\n"
	if err := store.Complete(ctx, scope, "k", http.StatusCreated, map[string]string{"Content-Type": "application/json", "Location": "/api/tickets/t1"}, []byte(stored)); err != nil {
		t.Fatal(err)
	}
	w := send()
	if w.Code != http.StatusCreated || w.Body.String() != stored || w.Header().Get("Location") != "/api/tickets/t1" {
		t.Errorf("after completion: got %d %s %v, want the stored 201", w.Code, w.Body, w.Header())
	}
}
