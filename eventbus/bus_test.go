package eventbus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
)

func newBus(t *testing.T, opts ...eventbus.Option) *eventbus.MemoryBus {
	t.Helper()
	b := eventbus.New(append([]eventbus.Option{eventbus.WithLogger(nil)}, opts...)...)
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

func flush(t *testing.T, b eventbus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	type P struct {
		N int    `json:"n"`
		S string `json:"s"`
	}
	tests := []struct {
		name    string
		data    any
		want    P
		wantErr bool
	}{
		{"value", P{1, "a"}, P{1, "a"}, false},
		{"pointer", &P{2, "b"}, P{2, "b"}, false},
		{"nil pointer", (*P)(nil), P{}, true},
		{"json.RawMessage", json.RawMessage(`{"n":3,"s":"c"}`), P{3, "c"}, false},
		{"bytes", []byte(`{"n":4}`), P{4, ""}, false},
		{"map", map[string]any{"n": 5, "s": "e"}, P{5, "e"}, false},
		{"no data", nil, P{}, true},
		{"bad json", json.RawMessage(`{"n":`), P{}, true},
		{"wrong json type", json.RawMessage(`{"n":"six"}`), P{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := eventbus.Decode[P](eventbus.Event{Type: "T", ID: "1", Data: tc.data})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Decode error = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("Decode = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ string
		ok  bool
	}{{"TicketPurchased", true}, {"ticket.purchased.v1", true}, {"", false}, {"*", false}, {"two words", false}, {"tab\there", false}, {"nl\n", false}} {
		err := eventbus.Validate(eventbus.Event{Type: tc.typ})
		if (err == nil) != tc.ok {
			t.Errorf("Validate(Type %q) = %v, want ok=%v", tc.typ, err, tc.ok)
		}
		if err != nil && !errors.Is(err, eventbus.ErrInvalidEvent) {
			t.Errorf("Validate(Type %q) = %v, want ErrInvalidEvent", tc.typ, err)
		}
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	t.Parallel()
	var dls []eventbus.DeadLetter
	var mu sync.Mutex
	b := newBus(t, eventbus.WithDeadLetter(func(_ context.Context, dl eventbus.DeadLetter) {
		mu.Lock()
		dls = append(dls, dl)
		mu.Unlock()
	}))
	var calls atomic.Int64
	b.Subscribe("P", func(context.Context, eventbus.Event) error {
		calls.Add(1)
		return eventbus.Permanent(errors.New("malformed"))
	}, eventbus.MaxAttempts(5))
	// A typed handler whose payload does not decode is dead-lettered at once too.
	eventbus.On(b, "Typed", func(context.Context, eventbus.Event, struct{ N int }) error {
		calls.Add(100)
		return nil
	}, eventbus.MaxAttempts(5))
	b.Publish(context.Background(), eventbus.Event{Type: "P"}, eventbus.Event{Type: "Typed", Data: json.RawMessage(`[1]`)})
	flush(t, b)
	if calls.Load() != 1 {
		t.Errorf("handler calls = %d, want 1 (no retry of a permanent error, no call for bad data)", calls.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dls) != 2 || dls[0].Attempts != 1 || dls[1].Attempts != 1 {
		t.Errorf("dead letters = %+v, want two after 1 attempt each", dls)
	}
}

func TestGeneratedSubscriptionNames(t *testing.T) {
	t.Parallel()
	b := newBus(t)
	h := func(context.Context, eventbus.Event) error { return nil }
	b.Subscribe("A", h)
	b.Subscribe("A", h)
	b.Subscribe("A", h, eventbus.Durable("named"))
	var names []string
	for _, f := range b.Topology().Types {
		for _, s := range f.Subscriptions {
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	if len(names) != 3 || names[2] != "named" || !strings.Contains(names[0], "TestGeneratedSubscriptionNames") ||
		!strings.HasSuffix(names[0], "@A") || !strings.HasSuffix(names[1], "@A#2") {
		t.Errorf("subscription names = %q, want two generated from the handler (unique) and %q", names, "named")
	}
}

func TestPublishHookSeesFilledEvent(t *testing.T) {
	t.Parallel()
	var seen atomic.Value
	b := newBus(t, eventbus.WithSource("svc"), eventbus.WithPublishHook(func(ctx context.Context, e *eventbus.Event) {
		seen.Store(*e)
		meta := map[string]string{"hooked": "yes"}
		for k, v := range e.Meta {
			meta[k] = v
		}
		e.Meta = meta
	}))
	var got atomic.Value
	b.Subscribe("H", func(_ context.Context, e eventbus.Event) error { got.Store(e); return nil })
	callerMeta := map[string]string{"a": "1"}
	b.Publish(context.Background(), eventbus.Event{Type: "H", Meta: callerMeta})
	flush(t, b)
	if e := seen.Load().(eventbus.Event); e.ID == "" || e.Source != "svc" || e.Time.IsZero() {
		t.Errorf("hook saw %+v, want ID, Source and Time filled", e)
	}
	if e := got.Load().(eventbus.Event); e.Meta["hooked"] != "yes" || e.Meta["a"] != "1" {
		t.Errorf("handler got Meta %v, want the hook's entry and the caller's", e.Meta)
	}
	if len(callerMeta) != 1 {
		t.Errorf("caller's Meta was changed: %v", callerMeta)
	}
}

func TestLoggingMiddleware(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := newBus(t, eventbus.WithMiddleware(eventbus.Logging(logger)))
	b.Subscribe("L", func(_ context.Context, e eventbus.Event) error {
		if e.Subject == "bad" {
			return errors.New("nope")
		}
		return nil
	}, eventbus.Durable("logged"), eventbus.MaxAttempts(2), eventbus.Backoff(0, 0))
	b.Publish(context.Background(), eventbus.Event{Type: "L", ID: "good-1"}, eventbus.Event{Type: "L", ID: "bad-1", Subject: "bad"})
	flush(t, b)
	mu.Lock()
	defer mu.Unlock()
	var levels []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["subscription"] != "logged" || rec["event_type"] != "L" {
			t.Errorf("log line lacks subscription/type: %s", line)
		}
		levels = append(levels, fmt.Sprintf("%s/%v/%v", rec["level"], rec["event_id"], rec["attempt"]))
	}
	want := []string{"DEBUG/good-1/1", "WARN/bad-1/1", "ERROR/bad-1/2"}
	if !slices.Equal(levels, want) {
		t.Errorf("log records = %v, want %v", levels, want)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestDeadLettersAreBoundedAndReplayable(t *testing.T) {
	t.Parallel()
	b := newBus(t, eventbus.WithDeadLetterKeep(3), eventbus.WithDeadLetter(func(context.Context, eventbus.DeadLetter) {}))
	var ok atomic.Bool
	var handled atomic.Int64
	b.Subscribe("D", func(context.Context, eventbus.Event) error {
		if !ok.Load() {
			return errors.New("down")
		}
		handled.Add(1)
		return nil
	}, eventbus.Durable("d"), eventbus.MaxAttempts(1))
	for i := range 5 {
		b.Publish(context.Background(), eventbus.Event{Type: "D", ID: fmt.Sprint(i)})
	}
	flush(t, b)
	dls := b.DeadLetters()
	var got []string
	for _, dl := range dls {
		got = append(got, dl.Event.ID)
	}
	if !slices.Equal(got, []string{"2", "3", "4"}) {
		t.Fatalf("kept dead letters %v, want the 3 most recent [2 3 4]", got)
	}
	ok.Store(true)
	if err := b.Replay(context.Background(), dls[0]); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	if handled.Load() != 1 || len(b.DeadLetters()) != 2 {
		t.Errorf("after one replay: handled %d, %d dead letters left; want 1 and 2", handled.Load(), len(b.DeadLetters()))
	}
	gone := eventbus.DeadLetter{Event: eventbus.Event{ID: "x", Type: "D"}, Subscription: "no-such"}
	if err := b.Replay(context.Background(), gone); !errors.Is(err, eventbus.ErrNoSubscription) {
		t.Errorf("Replay to a missing subscription = %v, want ErrNoSubscription", err)
	}
}

func TestWildcardInTopology(t *testing.T) {
	t.Parallel()
	b := newBus(t)
	b.Subscribe("*", func(context.Context, eventbus.Event) error { return nil }, eventbus.Durable("audit"))
	b.Publish(context.Background(), eventbus.Event{Type: "A", Source: "svc"}, eventbus.Event{Type: "B", Source: "svc"})
	flush(t, b)
	m := b.Topology().Mermaid()
	for _, want := range []string{`{{"A"}}`, `{{"B"}}`, `["audit"]`, `(["svc"])`} {
		if !strings.Contains(m, want) {
			t.Errorf("Mermaid lacks %s:\n%s", want, m)
		}
	}
	if n := strings.Count(m, "-->|notifies| S0"); n != 2 {
		t.Errorf("the * subscription has %d edges, want one from each of the 2 types:\n%s", n, m)
	}
}

func TestPublishWithCancelledContext(t *testing.T) {
	t.Parallel()
	b := newBus(t)
	var handled atomic.Int64
	b.Subscribe("X", func(context.Context, eventbus.Event) error { handled.Add(1); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Publish(ctx, eventbus.Event{Type: "X"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context = %v, want context.Canceled", err)
	}
	flush(t, b)
	if handled.Load() != 0 {
		t.Error("an event published with a cancelled context was handled")
	}
}

func TestCloseInsideHandler(t *testing.T) {
	t.Parallel()
	b := newBus(t)
	got := make(chan error, 1)
	b.Subscribe("C", func(ctx context.Context, _ eventbus.Event) error {
		got <- b.Close(ctx)
		return nil
	})
	b.Publish(context.Background(), eventbus.Event{Type: "C"})
	if err := <-got; !errors.Is(err, eventbus.ErrInHandler) {
		t.Errorf("Close inside a handler = %v, want ErrInHandler", err)
	}
}

func TestHandlerPublishWithOwnContextNeverBlocks(t *testing.T) {
	t.Parallel()
	b := newBus(t)
	var n atomic.Int64
	// This handler ignores its context and publishes with Background into
	// its own full queue; the bus recognises its worker and does not wait.
	b.Subscribe("Loop", func(context.Context, eventbus.Event) error {
		if n.Add(1) < 50 {
			return b.Publish(context.Background(), eventbus.Event{Type: "Loop"}, eventbus.Event{Type: "Loop"})
		}
		return nil
	}, eventbus.QueueSize(1))
	b.Publish(context.Background(), eventbus.Event{Type: "Loop"})
	flush(t, b)
	if n.Load() < 50 {
		t.Errorf("handled %d, want at least 50", n.Load())
	}
}

func TestDurableGroupKeepsSubjectOrderAcrossMembers(t *testing.T) {
	t.Parallel()
	b := newBus(t)
	var mu sync.Mutex
	seen := map[string][]int{}
	h := func(_ context.Context, e eventbus.Event) error {
		var n int
		fmt.Sscan(e.ID[strings.IndexByte(e.ID, '-')+1:], &n)
		mu.Lock()
		seen[e.Subject] = append(seen[e.Subject], n)
		mu.Unlock()
		return nil
	}
	b.Subscribe("O", h, eventbus.Durable("g"), eventbus.Concurrency(2))
	b.Subscribe("O", h, eventbus.Durable("g"), eventbus.Concurrency(3))
	for i := range 200 {
		s := fmt.Sprint(i % 4)
		b.Publish(context.Background(), eventbus.Event{Type: "O", Subject: s, ID: fmt.Sprintf("%s-%d", s, i)})
	}
	flush(t, b)
	mu.Lock()
	defer mu.Unlock()
	for s, ns := range seen {
		if len(ns) != 50 || !slices.IsSorted(ns) {
			t.Errorf("subject %s: %d events, sorted=%v", s, len(ns), slices.IsSorted(ns))
		}
	}
}

func TestPublishWithHandlerContextAfterCloseFails(t *testing.T) {
	t.Parallel()
	b := eventbus.New(eventbus.WithLogger(nil))
	saved := make(chan context.Context, 1)
	b.Subscribe("Save", func(ctx context.Context, _ eventbus.Event) error { saved <- ctx; return nil })
	b.Publish(context.Background(), eventbus.Event{Type: "Save"})
	hctx := <-saved
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(hctx, eventbus.Event{Type: "Save"}); !errors.Is(err, eventbus.ErrClosed) {
		t.Errorf("Publish with a handler's context after Close = %v, want ErrClosed", err)
	}
}

func TestFailingEventDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	b := newBus(t, eventbus.WithDeadLetter(func(context.Context, eventbus.DeadLetter) {}))
	var handled atomic.Int64
	failing := make(chan struct{}, 1)
	sub, _ := b.Subscribe("H", func(_ context.Context, e eventbus.Event) error {
		if e.Subject == "poison" {
			select {
			case failing <- struct{}{}:
			default:
			}
			return errors.New("poison")
		}
		handled.Add(1)
		return nil
	}, eventbus.Concurrency(2), eventbus.MaxAttempts(2), eventbus.Backoff(time.Hour, time.Hour))
	events := []eventbus.Event{{Type: "H", Subject: "poison"}}
	for i := range 20 {
		events = append(events, eventbus.Event{Type: "H", Subject: fmt.Sprint(i)})
	}
	b.Publish(context.Background(), events...)
	<-failing
	deadline := time.Now().Add(10 * time.Second)
	for handled.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 20 events handled while one event waits an hour to retry", handled.Load())
		}
		time.Sleep(time.Millisecond)
	}
	sub.Unsubscribe() // ends the hour-long wait: dead-lettered
}

func TestSecondCloseReturnsAtOnce(t *testing.T) {
	t.Parallel()
	b := eventbus.New(eventbus.WithLogger(nil))
	release := make(chan struct{})
	started := make(chan struct{})
	b.Subscribe("Slow", func(context.Context, eventbus.Event) error { close(started); <-release; return nil })
	b.Publish(context.Background(), eventbus.Event{Type: "Slow"})
	<-started
	first := make(chan error, 1)
	go func() { first <- b.Close(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for { // the first Close must have begun before the second one counts as second
		if err := b.Publish(context.Background(), eventbus.Event{Type: "Probe"}); errors.Is(err, eventbus.ErrClosed) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("second Close = %v, want nil at once", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first Close = %v", err)
	}
}

func TestDeliveryGivesUp(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		d    eventbus.Delivery
		err  error
		want bool
	}{
		{"success", eventbus.Delivery{Attempt: 3, MaxAttempts: 3}, nil, false},
		{"retry follows", eventbus.Delivery{Attempt: 1, MaxAttempts: 3}, boom, false},
		{"last attempt", eventbus.Delivery{Attempt: 3, MaxAttempts: 3}, boom, true},
		{"permanent on the first attempt", eventbus.Delivery{Attempt: 1, MaxAttempts: 3}, eventbus.Permanent(boom), true},
		{"outside a bus", eventbus.Delivery{}, boom, false},
		{"outside a bus, permanent", eventbus.Delivery{}, eventbus.Permanent(boom), true},
	} {
		if got := tc.d.GivesUp(tc.err); got != tc.want {
			t.Errorf("%s: GivesUp = %v, want %v", tc.name, got, tc.want)
		}
	}
}
