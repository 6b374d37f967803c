package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing/httpapi"
)

// sseMessage is one message of the event stream.
type sseMessage struct{ id, event, data string }

func readMessage(t *testing.T, sc *bufio.Scanner) sseMessage {
	t.Helper()
	var m sseMessage
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if m.event != "" {
				return m
			}
		case strings.HasPrefix(line, "id: "):
			m.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			m.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			m.data = line[6:]
		}
	}
	t.Fatalf("stream ended: %v", sc.Err())
	return m
}

// TestEventStreamResetWhenResumeIsTooOld: a Last-Event-ID older than the
// ring holds gets first a reset event (reload, you missed events), then the
// events kept; a Last-Event-ID the ring still covers gets no reset.
func TestEventStreamResetWhenResumeIsTooOld(t *testing.T) {
	t.Parallel()
	api, bus, _ := fullAPI(t, httpapi.Config{SSEBuffer: 2})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(lastID string) *bufio.Scanner {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/events", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return bufio.NewScanner(resp.Body)
	}
	publish := func(n int) {
		t.Helper()
		for i := range n {
			if err := bus.Publish(ctx, eventbus.Event{Type: "Hello", Subject: "s", Data: map[string]int{"n": i}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := bus.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	live := open("")
	publish(1)
	firstID := readMessage(t, live).id
	var first uint64
	fmt.Sscan(firstID, &first)
	publish(4) // the ring of 2 keeps first+3 and first+4

	// Resuming after first: first+1 and first+2 are gone.
	sc := open(firstID)
	reset := readMessage(t, sc)
	if reset.event != "reset" || reset.id != fmt.Sprint(first+2) {
		t.Fatalf("resume from %s: first message %+v, want event reset with id %d", firstID, reset, first+2)
	}
	var ce struct {
		SpecVersion, Type string
		Data              struct {
			Reason      string `json:"reason"`
			LastEventID string `json:"last_event_id"`
			Reload      bool   `json:"reload"`
		}
	}
	if err := json.Unmarshal([]byte(reset.data), &ce); err != nil || ce.SpecVersion != "1.0" || ce.Type != "reset" ||
		!ce.Data.Reload || ce.Data.Reason != "events-missed" || ce.Data.LastEventID != firstID {
		t.Errorf("reset data %s (%v): want a CloudEvent saying to reload", reset.data, err)
	}
	for _, want := range []uint64{first + 3, first + 4} {
		if m := readMessage(t, sc); m.event != "Hello" || m.id != fmt.Sprint(want) {
			t.Errorf("after the reset: got %+v, want Hello %d", m, want)
		}
	}

	// Resuming from the reset's id, or later, misses nothing: no reset.
	for _, from := range []uint64{first + 2, first + 3} {
		sc := open(fmt.Sprint(from))
		for want := from + 1; want <= first+4; want++ {
			if m := readMessage(t, sc); m.event != "Hello" || m.id != fmt.Sprint(want) {
				t.Errorf("resume from %d: got %+v, want Hello %d", from, m, want)
			}
		}
	}

	// The live stream saw everything, without a reset.
	for want := first + 1; want <= first+4; want++ {
		if m := readMessage(t, live); m.event != "Hello" || m.id != fmt.Sprint(want) {
			t.Errorf("live: got %+v, want Hello %d", m, want)
		}
	}
}

// TestEventStreamResetWhenResumeIsAhead: a Last-Event-ID at or above the
// next id this process gives out (another instance's, or one from before a
// restart) gets a reset, then the whole ring, then the live events.
func TestEventStreamResetWhenResumeIsAhead(t *testing.T) {
	t.Parallel()
	api, bus, _ := fullAPI(t, httpapi.Config{SSEBuffer: 2})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(lastID string) *bufio.Scanner {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/events", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return bufio.NewScanner(resp.Body)
	}
	publish := func() {
		t.Helper()
		if err := bus.Publish(ctx, eventbus.Event{Type: "Hello", Subject: "s", Data: map[string]int{}}); err != nil {
			t.Fatal(err)
		}
		if err := bus.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	live := open("")
	publish()
	publish()
	var first uint64
	fmt.Sscan(readMessage(t, live).id, &first) // the ring holds first, first+1; next is first+2
	readMessage(t, live)

	for _, ahead := range []uint64{first + 2, first + 1000} {
		sc := open(fmt.Sprint(ahead))
		publish() // before the fix, this was the first message
		reset := readMessage(t, sc)
		if reset.event != "reset" || reset.id != fmt.Sprint(first-1) {
			t.Fatalf("resume from %d: first message %+v, want event reset with id %d", ahead, reset, first-1)
		}
		if !strings.Contains(reset.data, `"last_event_id":"`+fmt.Sprint(ahead)+`"`) {
			t.Errorf("resume from %d: reset data %s, want the Last-Event-ID as sent", ahead, reset.data)
		}
		// The whole ring (it moved on by the event just published), then live.
		for want := first; want <= first+2; want++ {
			if m := readMessage(t, sc); m.event != "Hello" || m.id != fmt.Sprint(want) {
				t.Errorf("resume from %d: got %+v, want Hello %d", ahead, m, want)
			}
		}
		first++
	}
}
