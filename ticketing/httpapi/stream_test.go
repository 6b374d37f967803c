package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
)

func newTestStream(t *testing.T, ring, clientBuf int) (*eventbus.MemoryBus, *stream, *int) {
	t.Helper()
	bus := eventbus.New()
	drops := new(int)
	st, err := newStream(bus, ring, clientBuf, slog.New(slog.NewTextHandler(io.Discard, nil)), func() { *drops++ })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.close()
		bus.Close(context.Background())
	})
	return bus, st, drops
}

func publish(t *testing.T, bus *eventbus.MemoryBus, n int) {
	t.Helper()
	for range n {
		if err := bus.Publish(context.Background(), eventbus.Event{Type: "T", Data: map[string]int{"x": 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStreamDropsSlowClientWithoutBlockingTheBus(t *testing.T) {
	t.Parallel()
	bus, st, drops := newTestStream(t, 16, 2)
	slow, _, _, err := st.subscribe(0, false)
	if err != nil {
		t.Fatal(err)
	}
	fast, _, _, _ := st.subscribe(0, false)
	// The slow client never reads; Flush returning proves the bus was not held.
	publish(t, bus, 2)
	for range 2 {
		<-fast.ch
	}
	publish(t, bus, 1)
	select {
	case <-slow.done:
	default:
		t.Fatal("a client that fell behind was not dropped")
	}
	select {
	case <-fast.done:
		t.Fatal("a client that kept up was dropped")
	default:
	}
	if *drops != 1 {
		t.Errorf("drops: got %d, want 1", *drops)
	}
	if got := st.clientCount(); got != 1 {
		t.Errorf("clients: got %d, want 1", got)
	}
}

func TestStreamResumesFromRing(t *testing.T) {
	t.Parallel()
	bus, st, _ := newTestStream(t, 4, 8)
	publish(t, bus, 6) // the ring keeps the last 4
	_, all, gap, _ := st.subscribe(0, true)
	if len(all) != 4 {
		t.Fatalf("resume from before the ring: got %d events, want the 4 kept", len(all))
	}
	if gap != all[0].id-1 {
		t.Errorf("resume from before the ring: gap %d, want %d (the last event pushed out)", gap, all[0].id-1)
	}
	if _, _, gap, _ := st.subscribe(all[0].id-1, true); gap != 0 {
		t.Errorf("resume right before the oldest kept: gap %d, want none", gap)
	}
	if _, _, gap, _ := st.subscribe(all[0].id-2, true); gap != all[0].id-1 {
		t.Errorf("resume one event before that: gap %d, want %d", gap, all[0].id-1)
	}
	for i := 1; i < len(all); i++ {
		if all[i].id != all[i-1].id+1 {
			t.Fatalf("ids not consecutive: %d then %d", all[i-1].id, all[i].id)
		}
	}
	_, rest, gap, _ := st.subscribe(all[1].id, true)
	if gap != 0 {
		t.Errorf("resume within the ring: gap %d, want none", gap)
	}
	if len(rest) != 2 || rest[0].id != all[2].id {
		t.Errorf("resume after %d: got %d events, want 2 from %d", all[1].id, len(rest), all[2].id)
	}
	_, none, _, _ := st.subscribe(all[3].id, true)
	if len(none) != 0 {
		t.Errorf("resume at the newest: got %d events, want 0", len(none))
	}
	c, _, _, _ := st.subscribe(0, false)
	st.close()
	select {
	case <-c.done:
	default:
		t.Error("close did not end a client")
	}
	if _, _, _, err := st.subscribe(0, false); err == nil {
		t.Error("subscribe after close: got nil error")
	}
}

func TestPublicDataHidesBuyers(t *testing.T) {
	t.Parallel()
	e := eventbus.Event{ID: "e1", Type: ticketing.EventTicketPurchased, Source: "concert-service", Subject: "c1", Time: time.Now(),
		Data: ticketing.TicketPurchased{TicketID: "t1", ConcertID: "c1", ConcertName: "Rock", CustomerName: "John Doe",
			CustomerEmail: "john@example.com", AvailableTickets: 3}}
	full, public, err := encodeCloudEvents(e)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(full), "john@example.com") {
		t.Errorf("full event lacks the buyer: %s", full)
	}
	var ce struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(public, &ce); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"ticket_id": "t1", "concert_id": "c1", "available_tickets": float64(3), "status": "confirmed"}
	if len(ce.Data) != len(want) {
		t.Errorf("public data: got %v, want %v", ce.Data, want)
	}
	for k, v := range want {
		if ce.Data[k] != v {
			t.Errorf("public data %s: got %v, want %v", k, ce.Data[k], v)
		}
	}
}

// TestStreamGapAfterRestart: a Last-Event-ID from before this process (ids
// start at the start time) is a gap even while the ring is empty.
func TestStreamGapAfterRestart(t *testing.T) {
	t.Parallel()
	bus, st, _ := newTestStream(t, 4, 8)
	start := st.nextID
	if _, backlog, gap, _ := st.subscribe(start-1000, true); gap != start-1 || len(backlog) != 0 {
		t.Errorf("old id, empty ring: gap %d, %d events; want gap %d and none", gap, len(backlog), start-1)
	}
	if _, _, gap, _ := st.subscribe(start-1, true); gap != 0 {
		t.Errorf("the id just before ours: gap %d, want none", gap)
	}
	if _, _, gap, _ := st.subscribe(0, false); gap != 0 {
		t.Errorf("no Last-Event-ID: gap %d, want none", gap)
	}
	publish(t, bus, 1)
	if _, backlog, gap, _ := st.subscribe(start-1000, true); gap != start-1 || len(backlog) != 1 {
		t.Errorf("old id, one event: gap %d, %d events; want gap %d and 1", gap, len(backlog), start-1)
	}
}
