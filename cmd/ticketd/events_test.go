package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseEvent is one Server-Sent Event as a client reads it.
type sseEvent struct {
	ID, Event, Data string
}

// sseStream reads Server-Sent Events from a response.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
}

// openStream connects to GET /api/events; headers are name, value pairs.
// The connection is closed when the test ends.
func openStream(t testing.TB, url string, headers ...string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	// The headers arrive before any event: Do returning proves they were flushed.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET %s: got %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 1024)}
	go func() {
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.Data != "" {
					s.events <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				e.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				if e.Data != "" {
					t.Errorf("event with more than one data line")
				}
				e.Data = line[6:]
			}
		}
	}()
	return s
}

// next returns the next event of type typ, skipping others.
func (s *sseStream) next(t testing.TB, typ string) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended while waiting for %s", typ)
			}
			if e.Event == typ {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event within 10s", typ)
		}
	}
}

type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Source          string          `json:"source"`
	Time            string          `json:"time"`
	Subject         string          `json:"subject"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

func TestEventStream(t *testing.T) {
	t.Parallel()
	s := startTestServer(t)
	public := openStream(t, s.URL+"/api/events")
	adminQuery := openStream(t, s.URL+"/api/events?token="+s.Token)
	adminHeader := openStream(t, s.URL+"/api/events", "Authorization", "Bearer "+s.Token)

	c := s.addConcert(t, 5)
	if r := s.buy(t, c.ID, "John Doe", "john@example.com"); r.Status != 201 {
		t.Fatalf("purchase: got %d %s", r.Status, r.Body)
	}

	var firstPublicID string
	for _, typ := range []string{"ConcertAdded", "TicketRequested", "TicketPurchased"} {
		e := public.next(t, typ)
		if firstPublicID == "" {
			firstPublicID = e.ID
		}
		var ce cloudEvent
		if err := json.Unmarshal([]byte(e.Data), &ce); err != nil {
			t.Fatalf("%s data %s: %v", typ, e.Data, err)
		}
		if ce.SpecVersion != "1.0" || ce.ID == "" || ce.Type != typ || ce.Source == "" || ce.Subject == "" ||
			ce.DataContentType != "application/json" || len(ce.Data) == 0 {
			t.Errorf("%s: CloudEvent attributes missing: %s", typ, e.Data)
		}
		if _, err := time.Parse(time.RFC3339Nano, ce.Time); err != nil {
			t.Errorf("%s: time %q: %v", typ, ce.Time, err)
		}
		if e.ID == "" {
			t.Errorf("%s: no id: line", typ)
		}
		if strings.Contains(e.Data, "john@example.com") || strings.Contains(e.Data, "John Doe") {
			t.Errorf("public stream shows the buyer: %s", e.Data)
		}
		if typ == "TicketPurchased" && !strings.Contains(e.Data, `"status":"confirmed"`) {
			t.Errorf("public TicketPurchased lacks the status: %s", e.Data)
		}
	}
	for name, st := range map[string]*sseStream{"?token=": adminQuery, "Authorization": adminHeader} {
		if e := st.next(t, "TicketPurchased"); !strings.Contains(e.Data, "john@example.com") {
			t.Errorf("admin stream (%s) lacks the buyer: %s", name, e.Data)
		}
	}

	// Reconnecting with Last-Event-ID replays what came after it.
	resumed := openStream(t, s.URL+"/api/events", "Last-Event-ID", firstPublicID)
	e := resumed.next(t, "TicketRequested")
	if e.ID <= firstPublicID || len(e.ID) != len(firstPublicID) {
		t.Errorf("resumed event id %s, want after %s", e.ID, firstPublicID)
	}
	resumed.next(t, "TicketPurchased")

	if r := do(t, "GET", s.URL+"/api/events?token=wrong", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("wrong token: got %d, want 401", r.Status)
	}
}
