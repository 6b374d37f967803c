package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/httpapi"
	"github.com/gigbus/gigbus/ticketing/httpapi/web"
	"github.com/gigbus/gigbus/ticketing/sqlite"
)

// fullAPI is the API as ticketd mounts it: the services on a real store,
// the in-memory bus for the event stream, and the web page.
func fullAPI(t *testing.T, cfg httpapi.Config) (*httpapi.Server, *eventbus.MemoryBus, ticketing.Concert) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	bus := eventbus.New()
	t.Cleanup(func() { bus.Close(context.Background()) })
	concerts, tickets := ticketing.NewConcertService(store), ticketing.NewTicketService(store)
	cfg.Concerts, cfg.Tickets, cfg.Idempotency, cfg.Bus = concerts, tickets, store, bus
	cfg.AdminToken = "admin"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Page = web.New(web.Config{Concerts: concerts, Tickets: tickets, Logger: cfg.Logger})
	api, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	c, err := concerts.AddConcert(ctx, ticketing.NewConcert{Name: "N", Venue: "V", Date: time.Now().AddDate(0, 1, 0), TotalTickets: 3, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	return api, bus, c
}

// TestBodyMustBeAnObject: a body that is valid JSON of another type than
// an object (null too) is a 400, not a 422 about empty fields.
func TestBodyMustBeAnObject(t *testing.T) {
	t.Parallel()
	api, _, c := fullAPI(t, httpapi.Config{})
	for _, path := range []string{"/api/concerts", "/api/concerts/" + c.ID + "/tickets"} {
		for _, body := range []string{`null`, " null\n", `[]`, `"x"`, `1`, `true`} {
			r := httptest.NewRequest("POST", path, strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer admin")
			w := httptest.NewRecorder()
			api.ServeHTTP(w, r)
			var p struct{ Type, Detail string }
			json.Unmarshal(w.Body.Bytes(), &p)
			if w.Code != http.StatusBadRequest || p.Type != httpapi.ProblemMalformed || !strings.Contains(p.Detail, "must be a JSON object") {
				t.Errorf("POST %s %q: got %d %s, want 400 \"must be a JSON object\"", path, body, w.Code, w.Body)
			}
		}
	}
}
