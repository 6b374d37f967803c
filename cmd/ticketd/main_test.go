package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run the real program (run, as main does) on 127.0.0.1:0
// with a temporary database, and talk to it over HTTP.

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	TicketID string `json:"ticket_id"`
	Errors   []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

type concert struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Venue            string `json:"venue"`
	Date             string `json:"date"`
	TotalTickets     int    `json:"total_tickets"`
	AvailableTickets int    `json:"available_tickets"`
	TicketPriceCents int64  `json:"ticket_price_cents"`
	Currency         string `json:"currency"`
}

type ticket struct {
	ID            string `json:"id"`
	ConcertID     string `json:"concert_id"`
	CustomerName  string `json:"customer_name"`
	CustomerEmail string `json:"customer_email"`
	Status        string `json:"status"`
	PurchasedAt   string `json:"purchased_at"`
}

// do sends a request; headers are name, value pairs.
func do(t testing.TB, method, url string, body io.Reader, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func (s *testServer) addConcert(t testing.TB, seats int) concert {
	t.Helper()
	body := fmt.Sprintf(`{"name":"Rock Festival","venue":"Central Park","date":%q,"total_tickets":%d,"ticket_price_cents":9999,"currency":"EUR"}`,
		time.Now().AddDate(0, 1, 0).UTC().Format(time.RFC3339), seats)
	r := do(t, "POST", s.URL+"/api/concerts", strings.NewReader(body), "Authorization", "Bearer "+s.Token)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /api/concerts: got %d %s, want 201", r.Status, r.Body)
	}
	var c concert
	r.json(t, &c)
	return c
}

func (s *testServer) buy(t testing.TB, concertID, name, email string, headers ...string) response {
	t.Helper()
	body := fmt.Sprintf(`{"customer_name":%q,"customer_email":%q}`, name, email)
	return do(t, "POST", s.URL+"/api/concerts/"+concertID+"/tickets", strings.NewReader(body), headers...)
}

func (s *testServer) concert(t testing.TB, id string) concert {
	t.Helper()
	r := do(t, "GET", s.URL+"/api/concerts/"+id, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET concert: got %d %s", r.Status, r.Body)
	}
	var c concert
	r.json(t, &c)
	return c
}

// waitAvailable polls the concert until it shows want seats available.
func (s *testServer) waitAvailable(t testing.TB, id string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := s.concert(t, id)
		if c.AvailableTickets == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("concert %s: %d available, want %d", id, c.AvailableTickets, want)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

func TestErrorsAreProblems(t *testing.T) {
	t.Parallel()
	s := startTestServer(t)
	c := s.addConcert(t, 10)
	auth := []string{"Authorization", "Bearer " + testToken}
	goodConcert := fmt.Sprintf(`{"name":"A","venue":"B","date":%q,"total_tickets":1,"ticket_price_cents":0,"currency":"EUR"}`,
		time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339))
	huge := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		headers    []string
		wantStatus int
		wantFields []string // for 422
		wantHeader [2]string
	}{
		{"malformed JSON", "POST", "/api/concerts", `{"name":`, auth, 400, nil, [2]string{}},
		{"wrong JSON type", "POST", "/api/concerts", `{"name":"A","total_tickets":"ten"}`, auth, 400, nil, [2]string{}},
		{"unknown field", "POST", "/api/concerts", `{"name":"A","seats":1}`, auth, 400, nil, [2]string{}},
		{"array instead of object", "POST", "/api/concerts", `[1]`, auth, 400, nil, [2]string{}},
		{"two JSON values", "POST", "/api/concerts", goodConcert + goodConcert, auth, 400, nil, [2]string{}},
		{"empty purchase body", "POST", "/api/concerts/" + c.ID + "/tickets", ``, nil, 400, nil, [2]string{}},
		{"no admin token", "POST", "/api/concerts", goodConcert, nil, 401, nil, [2]string{"WWW-Authenticate", "Bearer"}},
		{"wrong admin token", "POST", "/api/concerts", goodConcert, []string{"Authorization", "Bearer nope"}, 401, nil, [2]string{"WWW-Authenticate", "Bearer"}},
		{"unknown concert", "GET", "/api/concerts/does-not-exist", "", nil, 404, nil, [2]string{}},
		{"unknown concert, uuid shape", "GET", "/api/concerts/01a241e8-c2d5-76d2-a233-f43ebff11740", "", nil, 404, nil, [2]string{}},
		{"unknown ticket", "GET", "/api/tickets/42", "", nil, 404, nil, [2]string{}},
		{"cancel unknown ticket", "POST", "/api/tickets/%27%3B--/cancel", "", nil, 404, nil, [2]string{}},
		{"buy for unknown concert", "POST", "/api/concerts/nope/tickets", `{"customer_name":"A","customer_email":"a@example.com"}`, nil, 404, nil, [2]string{}},
		{"unknown route", "GET", "/api/nothing", "", nil, 404, nil, [2]string{}},
		{"wrong method", "DELETE", "/api/concerts/" + c.ID, "", nil, 405, nil, [2]string{"Allow", "GET, HEAD"}},
		{"wrong method on collection", "PUT", "/api/concerts", "", nil, 405, nil, [2]string{"Allow", "GET, HEAD, POST"}},
		{"body over 1 MiB", "POST", "/api/concerts", huge, auth, 413, nil, [2]string{}},
		{"body over 1 MiB on a purchase", "POST", "/api/concerts/" + c.ID + "/tickets", huge, nil, 413, nil, [2]string{}},
		{"body over 1 MiB on cancel", "POST", "/api/tickets/x/cancel", huge, nil, 413, nil, [2]string{}},
		{"invalid concert", "POST", "/api/concerts",
			`{"name":"","venue":"V","date":"2001-01-01T00:00:00Z","total_tickets":-1,"ticket_price_cents":-5,"currency":"euro"}`, auth, 422,
			[]string{"name", "date", "total_tickets", "ticket_price_cents", "currency"}, [2]string{}},
		{"date not RFC 3339", "POST", "/api/concerts",
			`{"name":"N","venue":"V","date":"next friday","total_tickets":1,"ticket_price_cents":0,"currency":"EUR"}`, auth, 422,
			[]string{"date"}, [2]string{}},
		{"invalid buyer", "POST", "/api/concerts/" + c.ID + "/tickets", `{"customer_name":"","customer_email":"John <john@example.com>"}`, nil, 422,
			[]string{"customer_name", "customer_email"}, [2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := do(t, tt.method, s.URL+tt.path, body, tt.headers...)
			if r.Status != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", r.Status, r.Body, tt.wantStatus)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type: got %q, want application/problem+json", ct)
			}
			var p problem
			r.json(t, &p)
			if p.Type == "" || p.Title == "" || p.Detail == "" || p.Status != tt.wantStatus {
				t.Errorf("problem %s: want type, title, detail and status %d", r.Body, tt.wantStatus)
			}
			if h := tt.wantHeader; h[0] != "" && r.Header.Get(h[0]) != h[1] {
				t.Errorf("%s: got %q, want %q", h[0], r.Header.Get(h[0]), h[1])
			}
			got := map[string]bool{}
			for _, f := range p.Errors {
				got[f.Field] = true
				if f.Message == "" {
					t.Errorf("field %s has no message", f.Field)
				}
			}
			for _, f := range tt.wantFields {
				if !got[f] {
					t.Errorf("errors %s: want field %q", r.Body, f)
				}
			}
		})
	}
}

func TestPurchaseAndCancel(t *testing.T) {
	t.Parallel()
	s := startTestServer(t)
	c := s.addConcert(t, 1)
	if c.AvailableTickets != 1 || c.TotalTickets != 1 || c.Name != "Rock Festival" || c.Currency != "EUR" || c.TicketPriceCents != 9999 {
		t.Fatalf("created concert: got %+v", c)
	}
	r := do(t, "GET", s.URL+"/api/concerts", nil)
	var list []concert
	r.json(t, &list)
	if r.Status != 200 || len(list) != 1 || list[0].ID != c.ID {
		t.Fatalf("GET /api/concerts: got %d %s", r.Status, r.Body)
	}

	r = s.buy(t, c.ID, "John Doe", "john@example.com")
	if r.Status != http.StatusCreated {
		t.Fatalf("purchase: got %d %s, want 201", r.Status, r.Body)
	}
	var tk ticket
	r.json(t, &tk)
	if tk.Status != "confirmed" || tk.ConcertID != c.ID || tk.CustomerEmail != "john@example.com" || tk.CustomerName != "John Doe" || tk.PurchasedAt == "" {
		t.Fatalf("purchase: got %+v", tk)
	}
	if _, err := time.Parse(time.RFC3339, tk.PurchasedAt); err != nil {
		t.Errorf("purchased_at %q: %v", tk.PurchasedAt, err)
	}
	if got := r.Header.Get("Location"); got != "/api/tickets/"+tk.ID {
		t.Errorf("Location: got %q", got)
	}
	if got := s.concert(t, c.ID).AvailableTickets; got != 0 {
		t.Errorf("available after the purchase: got %d, want 0", got)
	}

	// The last seat is gone: the next buyer is told at once, with the ticket.
	r = s.buy(t, c.ID, "Jane Doe", "jane@example.com")
	var p problem
	r.json(t, &p)
	if r.Status != http.StatusConflict || p.TicketID == "" || !strings.HasSuffix(p.Type, "/sold-out") {
		t.Fatalf("sold out: got %d %s, want 409 sold-out with ticket_id", r.Status, r.Body)
	}
	r = do(t, "GET", s.URL+"/api/tickets/"+p.TicketID, nil)
	var rejected ticket
	r.json(t, &rejected)
	if rejected.Status != "rejected" {
		t.Errorf("the sold-out ticket: got %+v, want rejected", rejected)
	}
	if r := do(t, "POST", s.URL+"/api/tickets/"+p.TicketID+"/cancel", nil); r.Status != http.StatusConflict {
		t.Errorf("cancel a rejected ticket: got %d %s, want 409", r.Status, r.Body)
	}

	for i := range 2 { // cancelling again changes nothing
		r = do(t, "POST", s.URL+"/api/tickets/"+tk.ID+"/cancel", nil)
		var got ticket
		r.json(t, &got)
		if r.Status != http.StatusOK || got.Status != "cancelled" || got.ID != tk.ID {
			t.Fatalf("cancel #%d: got %d %s, want 200 cancelled", i+1, r.Status, r.Body)
		}
	}
	s.waitAvailable(t, c.ID, 1)
	r = do(t, "GET", s.URL+"/api/tickets/"+tk.ID, nil)
	var got ticket
	r.json(t, &got)
	if got.Status != "cancelled" {
		t.Errorf("GET cancelled ticket: got %+v", got)
	}
	// The seat came back exactly once: one more buyer gets it, the next does not.
	if r := s.buy(t, c.ID, "Jim", "jim@example.com"); r.Status != http.StatusCreated {
		t.Errorf("buy the returned seat: got %d %s", r.Status, r.Body)
	}
	if r := s.buy(t, c.ID, "Joe", "joe@example.com"); r.Status != http.StatusConflict {
		t.Errorf("buy after the returned seat is gone: got %d %s", r.Status, r.Body)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := startTestServer(t)
	c := s.addConcert(t, 5)

	// A failed validation is not stored: the key stays free.
	r := s.buy(t, c.ID, "John", "not an email", "Idempotency-Key", "k1")
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid body: got %d %s, want 422", r.Status, r.Body)
	}
	first := s.buy(t, c.ID, "John", "john@example.com", "Idempotency-Key", "k1")
	if first.Status != http.StatusCreated {
		t.Fatalf("first: got %d %s, want 201", first.Status, first.Body)
	}
	again := s.buy(t, c.ID, "John", "john@example.com", "Idempotency-Key", "k1")
	if again.Status != http.StatusCreated || !bytes.Equal(again.Body, first.Body) {
		t.Fatalf("replay: got %d %s, want 201 %s", again.Status, again.Body, first.Body)
	}
	if again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: Idempotent-Replayed header missing")
	}
	if got := s.concert(t, c.ID).AvailableTickets; got != 4 {
		t.Errorf("after a replayed purchase: %d available, want 4", got)
	}
	other := s.buy(t, c.ID, "Jane", "jane@example.com", "Idempotency-Key", "k1")
	var p problem
	other.json(t, &p)
	if other.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(p.Type, "/idempotency-key-reused") {
		t.Errorf("same key, other body: got %d %s, want 422 idempotency-key-reused", other.Status, other.Body)
	}
	// Keys are scoped to the concert.
	c2 := s.addConcert(t, 1)
	if r := s.buy(t, c2.ID, "Jane", "jane@example.com", "Idempotency-Key", "k1"); r.Status != http.StatusCreated {
		t.Errorf("same key, other concert: got %d %s, want 201", r.Status, r.Body)
	}
	if r := s.buy(t, c.ID, "J", "j@example.com", "Idempotency-Key", strings.Repeat("k", 256)); r.Status != http.StatusBadRequest {
		t.Errorf("key of 256 characters: got %d %s, want 400", r.Status, r.Body)
	}
	// A sold-out answer is replayed too.
	soldOut := s.buy(t, c2.ID, "Jim", "jim@example.com", "Idempotency-Key", "k2")
	replayed := s.buy(t, c2.ID, "Jim", "jim@example.com", "Idempotency-Key", "k2")
	if soldOut.Status != http.StatusConflict || replayed.Status != http.StatusConflict || !bytes.Equal(soldOut.Body, replayed.Body) {
		t.Errorf("sold out replay: got %d %s then %d %s", soldOut.Status, soldOut.Body, replayed.Status, replayed.Body)
	}
}

func TestHealthMetricsAndPage(t *testing.T) {
	t.Parallel()
	s := startTestServer(t)
	c := s.addConcert(t, 3)
	s.buy(t, c.ID, "John", "john@example.com")
	if r := do(t, "GET", s.URL+"/healthz", nil); r.Status != 200 {
		t.Fatalf("healthz: got %d %s", r.Status, r.Body)
	}
	for _, path := range []string{"/", "/tickets/x", "/topology"} {
		if r := do(t, "GET", s.URL+path, nil); r.Status == http.StatusNotFound && path != "/tickets/x" || r.Status >= 500 {
			t.Errorf("GET %s (the web page): got %d", path, r.Status)
		}
	}
	r := do(t, "GET", s.URL+"/metrics", nil)
	for _, want := range []string{
		`http_requests_total{code="201",method="POST",route="POST /api/concerts/{id}/tickets"} 1`,
		`http_request_duration_seconds_bucket{method="POST",route="POST /api/concerts",le=`,
		`eventbus_published_total{type="TicketPurchased"}`,
		`eventbus_handled_total{`,
	} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestPostgresNotBuiltYet(t *testing.T) {
	t.Parallel()
	args := []string{"serve", "-addr", "127.0.0.1:0", "-db", "postgres://localhost/ticketd"}
	err := run(context.Background(), args, func(string) string { return "x" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL store not built yet") {
		t.Errorf("run %v: got %v, want a 'PostgreSQL store not built yet' error", args, err)
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"demo"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if !regexp.MustCompile(`(?m)^Concert \S+ has 999 tickets remaining$`).Match(out.Bytes()) {
		t.Errorf("demo output lacks the remaining line:\n%s", out.String())
	}
	for _, want := range []string{`subject="New concert: Rock Festival"`, `to=john@example.com`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %s:\n%s", want, out.String())
		}
	}
}

// TestRush is the acceptance race: 400 buyers at once for 50 seats.
func TestRush(t *testing.T) {
	t.Parallel()
	// A generous wait, so slow race-detector runs still answer 201 or 409.
	s := startTestServer(t, "-purchase-wait", "60s")
	const buyers, seats = 400, 50
	c := s.addConcert(t, seats)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: buyers}}
	defer client.CloseIdleConnections()
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	for i := range buyers {
		wg.Go(func() {
			<-start
			body := fmt.Sprintf(`{"customer_name":"Buyer %d","customer_email":"buyer%d@example.com"}`, i, i)
			resp, err := client.Post(s.URL+"/api/concerts/"+c.ID+"/tickets", "application/json", strings.NewReader(body))
			status := -1
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
				if status == http.StatusConflict && !strings.Contains(string(b), `/sold-out"`) {
					status = -409 // a conflict that is not "sold out"
				}
			}
			mu.Lock()
			counts[status]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if counts[201] != seats || counts[409] != buyers-seats || len(counts) != 2 {
		t.Errorf("answers by status: got %v, want 201: %d, 409: %d", counts, seats, buyers-seats)
	}
	if got := s.concert(t, c.ID).AvailableTickets; got != 0 {
		t.Errorf("available after the rush: got %d, want 0", got)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := startTestServer(t)
	c := s.addConcert(t, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if r := s.buy(t, c.ID, "John", "john@example.com"); r.Status != 201 {
		t.Fatalf("purchase: got %d", r.Status)
	}
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("run after shutdown: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %v, want under 10s", d)
	}
	// The open stream was ended by the server, not by our deadline.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil && ctx.Err() != nil {
		t.Errorf("event stream still open after shutdown: %v", err)
	}
	if out := s.Output(); !strings.Contains(out, "ticketd: stopped") {
		t.Errorf("output lacks the stop line:\n%s", out)
	}
}

func TestLoadTool(t *testing.T) {
	t.Parallel()
	s := startTestServer(t, "-purchase-wait", "60s")
	for _, tt := range []struct{ requests, seats int }{{60, 40}, {30, 30}} {
		var out bytes.Buffer
		args := []string{"load", "-url", s.URL, "-token", s.Token, "-buyers", "8",
			"-requests", fmt.Sprint(tt.requests), "-seats", fmt.Sprint(tt.seats)}
		if err := run(context.Background(), args, func(string) string { return "" }, &out, io.Discard); err != nil {
			t.Fatalf("load %v: %v\n%s", args, err, out.String())
		}
		want := fmt.Sprintf("confirmed %d ", tt.seats)
		if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "p99") {
			t.Errorf("load output lacks %q and latencies:\n%s", want, out.String())
		}
	}
}
