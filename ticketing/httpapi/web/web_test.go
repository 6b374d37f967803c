package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/httpapi/web"
	"github.com/gigbus/gigbus/ticketing/sqlite"
)

// system is the real ticketing system on a temporary SQLite file and the
// in-memory bus, with the web handler in front of it.
type system struct {
	*ticketing.System
	bus *eventbus.MemoryBus
	srv *httptest.Server
}

func newSystem(t *testing.T) *system {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ticketd.db"))
	if err != nil {
		t.Fatal(err)
	}
	bus := eventbus.New()
	sys, err := ticketing.Start(ticketing.Config{Store: store, Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.New(web.Config{Concerts: sys.Concerts, Tickets: sys.Tickets, Topology: bus.Topology}))
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sys.Close(ctx); err != nil {
			t.Errorf("System.Close: %v", err)
		}
		if err := bus.Close(ctx); err != nil {
			t.Errorf("bus.Close: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("store.Close: %v", err)
		}
	})
	return &system{System: sys, bus: bus, srv: srv}
}

func (s *system) addConcert(t *testing.T, name string, total int) ticketing.Concert {
	t.Helper()
	c, err := s.Concerts.AddConcert(context.Background(), ticketing.NewConcert{
		Name: name, Venue: "Paradiso", Date: time.Now().Add(30 * 24 * time.Hour),
		TotalTickets: total, TicketPriceCents: 4950, Currency: "EUR",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// get fetches path and returns the response and its body.
func (s *system) get(t *testing.T, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func wantStatus(t *testing.T, res *http.Response, want int) {
	t.Helper()
	if res.StatusCode != want {
		t.Fatalf("GET %s: status %d, want %d", res.Request.URL.Path, res.StatusCode, want)
	}
}

func TestIndexListsConcerts(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.addConcert(t, "The Go Gophers", 120)

	res, body := s.get(t, "/")
	wantStatus(t, res, http.StatusOK)
	if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q, want text/html; charset=utf-8", got)
	}
	for _, want := range []string{
		`id="concert-` + c.ID + `"`,
		"The Go Gophers",
		"Paradiso",
		"49.50 EUR", // the server's rendering; the script re-renders it in the viewer's locale
		`data-price-cents="4950"`,
		`<strong class="remaining">120</strong> of <span class="total">120</span>`,
		`datetime="` + c.Date.UTC().Format(time.RFC3339) + `"`,
		`<label for="buy-` + c.ID + `-customer_email">Email</label>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The card rendered for the concert is not sold out.
	card := cardHTML(t, body, c.ID)
	if !strings.Contains(card, `<p class="badge badge-soldout" hidden>Sold out</p>`) {
		t.Errorf("card of an available concert shows Sold out:\n%s", card)
	}
}

func TestIndexShowsSoldOut(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.addConcert(t, "Nobody gets in", 0)

	res, body := s.get(t, "/")
	wantStatus(t, res, http.StatusOK)
	card := cardHTML(t, body, c.ID)
	for _, want := range []string{
		`class="concert is-sold-out"`,
		`<p class="badge badge-soldout">Sold out</p>`,
		`disabled>Sold out</button>`,
	} {
		if !strings.Contains(card, want) {
			t.Errorf("sold-out card lacks %q:\n%s", want, card)
		}
	}
}

func TestIndexEscapesUserInput(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.addConcert(t, `<script>alert("x")</script>`, 1)

	_, body := s.get(t, "/")
	if strings.Contains(body, `<script>alert(`) {
		t.Fatal("the concert name reached the page unescaped")
	}
	if !strings.Contains(body, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`) {
		t.Error("the escaped concert name is not on the page")
	}
}

func TestIndexEmpty(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	res, body := s.get(t, "/")
	wantStatus(t, res, http.StatusOK)
	if !strings.Contains(body, `<p class="empty" id="concerts-empty">No concerts yet.`) {
		t.Error("an empty list does not say so")
	}
	// The placeholder card for the script is there, inside a <template>.
	if !strings.Contains(body, `<template id="concert-template">`) || !strings.Contains(body, `id="concert-__ID__"`) {
		t.Error("the concert template is missing")
	}
}

func TestTicketPage(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.addConcert(t, "Ticketed", 5)
	ctx := context.Background()
	tk, err := s.Tickets.PurchaseTicket(ctx, c.ID, ticketing.NewTicket{CustomerName: `Ada <b>Lovelace</b>`, CustomerEmail: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if tk, err = s.Tickets.AwaitOutcome(ctx, tk.ID); err != nil || tk.Status != ticketing.StatusConfirmed {
		t.Fatalf("AwaitOutcome: %v, %v; want confirmed", tk.Status, err)
	}

	res, body := s.get(t, "/tickets/"+tk.ID)
	wantStatus(t, res, http.StatusOK)
	for _, want := range []string{
		`<code id="ticket-id">` + tk.ID + `</code>`,
		`id="ticket-status">confirmed</p>`,
		`<a href="/#concert-` + c.ID + `">Ticketed</a>`,
		`Ada &lt;b&gt;Lovelace&lt;/b&gt;`,
		`<button type="submit" class="button danger" id="cancel-button">Cancel ticket</button>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("ticket page lacks %q", want)
		}
	}
	if strings.Contains(body, "<b>Lovelace") {
		t.Error("the customer name reached the page unescaped")
	}

	if _, err := s.Tickets.CancelTicket(context.Background(), tk.ID); err != nil {
		t.Fatal(err)
	}
	_, body = s.get(t, "/tickets/"+tk.ID)
	if !strings.Contains(body, `id="ticket-status">cancelled</p>`) || !strings.Contains(body, `id="cancel-button" disabled>`) {
		t.Error("a cancelled ticket's page does not show it cancelled with the button disabled")
	}
}

func TestTicketPageRejected(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.addConcert(t, "Full house", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tk, err := s.Tickets.PurchaseTicket(ctx, c.ID, ticketing.NewTicket{CustomerName: "Late", CustomerEmail: "late@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Tickets.AwaitOutcome(ctx, tk.ID); got.Status != ticketing.StatusRejected {
		t.Fatalf("AwaitOutcome: %q, %v; want rejected", got.Status, err)
	}
	res, body := s.get(t, "/tickets/"+tk.ID)
	wantStatus(t, res, http.StatusOK)
	for _, want := range []string{
		`id="ticket-status">rejected</p>`,
		"This ticket was not issued: the concert sold out.",
		`id="cancel-button" disabled>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("rejected ticket's page lacks %q", want)
		}
	}
}

func TestTicketPageUnknown(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	for _, id := range []string{"no-such-ticket", "0195f3a2-0000-7000-8000-000000000000", "%3Cscript%3E"} {
		res, body := s.get(t, "/tickets/"+id)
		wantStatus(t, res, http.StatusNotFound)
		if !strings.Contains(body, "There is no ticket with this id.") {
			t.Errorf("404 page for %q lacks its message", id)
		}
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/static/nope.js", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/tickets/x", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, s.srv.URL+tt.path, nil)
		res, err := s.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Type, Title, Detail string
			Status              int
		}
		err = json.NewDecoder(res.Body).Decode(&p)
		res.Body.Close()
		if res.StatusCode != tt.want || p.Status != tt.want || err != nil {
			t.Errorf("%s %s: status %d, problem status %d (%v); want %d", tt.method, tt.path, res.StatusCode, p.Status, err, tt.want)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: Content-Type %q, want application/problem+json", tt.method, tt.path, ct)
		}
	}
}

func TestAssets(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	_, page := s.get(t, "/")
	for _, name := range []string{"style.css", "common.js", "concerts.js", "mermaid.min.js", "favicon.svg"} {
		m := regexp.MustCompile(`/static/` + regexp.QuoteMeta(name) + `\?v=[0-9a-f]+`).FindString(page)
		if m == "" {
			t.Errorf("page does not link %s with a version", name)
			continue
		}
		res, body := s.get(t, m)
		wantStatus(t, res, http.StatusOK)
		if len(body) == 0 {
			t.Errorf("%s is empty", name)
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("%s: Cache-Control %q, want immutable for a versioned URL", name, cc)
		}
		res, _ = s.get(t, "/static/"+name, "If-None-Match", res.Header.Get("ETag"))
		wantStatus(t, res, http.StatusNotModified)
	}
	res, _ := s.get(t, "/static/concerts.js")
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("concerts.js: Content-Type %q, want text/javascript", ct)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q does not restrict scripts", csp)
	}
}

func TestTopology(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.addConcert(t, "Topology", 1)
	if err := s.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, body := s.get(t, "/topology")
	wantStatus(t, res, http.StatusOK)
	var got struct {
		Mermaid   string
		Available bool
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Available {
		t.Error("available is false with a Topology func")
	}
	for _, want := range []string{"graph TD", `"ConcertAdded"`, `"concert-service"`, "publishes"} {
		if !strings.Contains(got.Mermaid, want) {
			t.Errorf("topology lacks %q:\n%s", want, got.Mermaid)
		}
	}
	// The page carries the same source for readers without JavaScript.
	_, page := s.get(t, "/")
	if !strings.Contains(page, "graph TD") {
		t.Error("the page lacks the topology's Mermaid source")
	}

	// A bus without a topology (Config.Topology nil) says so.
	h := web.New(web.Config{Concerts: s.Concerts, Tickets: s.Tickets})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/topology", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"available":false`) {
		t.Errorf("without Topology: %d %s, want 200 with available false", rec.Code, rec.Body.String())
	}
}

// cardHTML returns the <article> of concert id in page.
func cardHTML(t *testing.T, page, id string) string {
	t.Helper()
	start := strings.Index(page, `<article class="concert`)
	for start >= 0 {
		end := strings.Index(page[start:], "</article>")
		if end < 0 {
			break
		}
		card := page[start : start+end]
		if strings.Contains(card, `id="concert-`+id+`"`) {
			return card
		}
		next := strings.Index(page[start+end:], `<article class="concert`)
		if next < 0 {
			break
		}
		start += end + next
	}
	t.Fatalf("no card for concert %s", id)
	return ""
}
