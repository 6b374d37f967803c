// Package eventbustest is the conformance suite every eventbus transport runs:
// the rules of eventbus.Bus, each as a subtest.
//
//	func TestConformance(t *testing.T) {
//		eventbustest.Run(t, eventbustest.Features{Backpressure: true}, func(t *testing.T, opts ...eventbus.Option) eventbus.Bus {
//			return eventbus.New(opts...)
//		})
//	}
package eventbustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gigbus/gigbus/eventbus"
)

// Factory returns a new, empty bus with opts applied. Buses it returns must be
// independent of each other (a fresh stream, say). The suite closes every bus
// it creates; the factory may also register a Cleanup of its own.
type Factory func(t *testing.T, opts ...eventbus.Option) eventbus.Bus

// Features says what a transport claims beyond the rules every transport keeps.
type Features struct {
	// Backpressure: a full subscription queue makes an outside Publish wait
	// (and fail with its context). A stream-backed transport, where Publish
	// waits for the stream and not for consumers, leaves it false.
	Backpressure bool
	// Timeout bounds each wait of the suite (default 10s).
	Timeout time.Duration
}

// Run runs the suite against buses from newBus.
func Run(t *testing.T, f Features, newBus Factory) {
	if f.Timeout == 0 {
		f.Timeout = 10 * time.Second
	}
	s := &suite{f: f, newBus: newBus}
	// Goroutine accounting first, before parallel subtests start goroutines
	// of their own.
	t.Run("CloseLeavesNoGoroutine", s.closeLeavesNoGoroutine)
	tests := []struct {
		name string
		run  func(*testing.T)
	}{
		{"FanOutAndWildcard", s.fanOut},
		{"EnvelopeFilled", s.envelope},
		{"InvalidEventRejectsBatch", s.invalid},
		{"TypedDecode", s.typed},
		{"SubjectOrderWithConcurrency", s.subjectOrder},
		{"OrderWithOneWorker", s.orderOneWorker},
		{"PublishSubscribeUnsubscribeInHandler", s.reentrant},
		{"HandlerPublishNeverBlocks", s.handlerPublishNeverBlocks},
		{"RetryThenSucceed", s.retryThenSucceed},
		{"RetryThenDeadLetter", s.retryThenDeadLetter},
		{"PanicIsolated", s.panicIsolated},
		{"HandlerContext", s.handlerContext},
		{"FlushWaitsForChains", s.flushChains},
		{"FlushInsideHandler", s.flushInsideHandler},
		{"CloseDrains", s.closeDrains},
		{"CloseDeadline", s.closeDeadline},
		{"Unsubscribe", s.unsubscribe},
		{"UnsubscribeInsideHandler", s.unsubscribeInsideHandler},
		{"Backpressure", s.backpressure},
		{"ConcurrentPublishers", s.concurrentPublishers},
		{"DurableGroup", s.durableGroup},
		{"DurableGroupMemberLeaves", s.durableMemberLeaves},
		{"SubscribeRejectsBadOptions", s.badOptions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

type suite struct {
	f      Features
	newBus Factory
}

// bus returns a new bus closed at the end of the test.
func (s *suite) bus(t *testing.T, opts ...eventbus.Option) eventbus.Bus {
	t.Helper()
	b := s.newBus(t, opts...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.f.Timeout)
		defer cancel()
		if err := b.Close(ctx); err != nil && !errors.Is(err, eventbus.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.f.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) flush(t *testing.T, b eventbus.Bus) {
	t.Helper()
	if err := b.Flush(s.ctx(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func mustSubscribe(t *testing.T, b eventbus.Bus, typ string, h eventbus.Handler, opts ...eventbus.SubscribeOption) eventbus.Subscription {
	t.Helper()
	sub, err := b.Subscribe(typ, h, opts...)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", typ, err)
	}
	return sub
}

func mustPublish(t *testing.T, ctx context.Context, b eventbus.Bus, events ...eventbus.Event) {
	t.Helper()
	if err := b.Publish(ctx, events...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// waitUntil polls cond until it holds or the suite's timeout passes.
func (s *suite) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(s.f.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recorder collects what a handler saw.
type recorder struct {
	mu     sync.Mutex
	events []eventbus.Event
}

func (r *recorder) handle(_ context.Context, e eventbus.Event) error {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	return nil
}

func (r *recorder) all() []eventbus.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func ids(events []eventbus.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

type payload struct {
	N    int               `json:"n"`
	Name string            `json:"name"`
	At   time.Time         `json:"at"`
	Tags []string          `json:"tags"`
	Sub  map[string]string `json:"sub"`
}

func (s *suite) closeLeavesNoGoroutine(t *testing.T) {
	b := s.newBus(t)
	opts := goleak.IgnoreCurrent()
	ctx := s.ctx(t)
	var n atomic.Int64
	mustSubscribe(t, b, "A", func(context.Context, eventbus.Event) error { n.Add(1); return nil }, eventbus.Concurrency(4))
	mustSubscribe(t, b, "A", func(context.Context, eventbus.Event) error { return errors.New("no") },
		eventbus.MaxAttempts(2), eventbus.Backoff(time.Millisecond, time.Millisecond))
	mustSubscribe(t, b, "*", func(context.Context, eventbus.Event) error { return nil }, eventbus.Durable("all"))
	for i := range 50 {
		mustPublish(t, ctx, b, eventbus.Event{Type: "A", Subject: fmt.Sprint(i % 5)})
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := n.Load(); got != 50 {
		t.Errorf("handled %d events before Close returned, want 50", got)
	}
	if err := goleak.Find(opts); err != nil {
		t.Errorf("goroutines left after Close: %v", err)
	}
}

func (s *suite) fanOut(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var a1, a2, all, other recorder
	mustSubscribe(t, b, "A", a1.handle)
	mustSubscribe(t, b, "A", a2.handle)
	mustSubscribe(t, b, "*", all.handle)
	mustSubscribe(t, b, "B", other.handle)
	mustPublish(t, ctx, b, eventbus.Event{Type: "A", ID: "a1"}, eventbus.Event{Type: "A", ID: "a2"})
	mustPublish(t, ctx, b, eventbus.Event{Type: "C", ID: "c1"})
	s.flush(t, b)
	for _, tc := range []struct {
		name string
		r    *recorder
		want []string
	}{{"first A", &a1, []string{"a1", "a2"}}, {"second A", &a2, []string{"a1", "a2"}}, {"*", &all, []string{"a1", "a2", "c1"}}, {"B", &other, nil}} {
		got := ids(tc.r.all())
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s subscription got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func (s *suite) envelope(t *testing.T) {
	b := s.bus(t, eventbus.WithSource("test-source"))
	ctx := s.ctx(t)
	var r recorder
	mustSubscribe(t, b, "*", r.handle)
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	before := time.Now()
	mustPublish(t, ctx, b,
		eventbus.Event{Type: "Filled", Subject: "s1", Data: payload{N: 1}},
		eventbus.Event{Type: "Given", ID: "id-2", Source: "other", Time: at, Subject: "s2",
			Data: payload{N: 2, Name: "two", At: at, Tags: []string{"x", "y"}, Sub: map[string]string{"k": "v"}},
			Meta: map[string]string{"correlationid": "c-1"}},
	)
	s.flush(t, b)
	got := r.all()
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2", len(got))
	}
	byType := map[string]eventbus.Event{}
	for _, e := range got {
		byType[e.Type] = e
	}
	filled, given := byType["Filled"], byType["Given"]
	if filled.ID == "" || filled.ID == given.ID {
		t.Errorf("filled ID = %q, want a new unique id", filled.ID)
	}
	if filled.Source != "test-source" {
		t.Errorf("filled Source = %q, want the bus default %q", filled.Source, "test-source")
	}
	if filled.Time.Before(before.Add(-time.Second)) || filled.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("filled Time = %v, want about now (%v)", filled.Time, before)
	}
	if given.ID != "id-2" || given.Source != "other" || !given.Time.Equal(at) || given.Subject != "s2" {
		t.Errorf("given envelope = {ID:%q Source:%q Time:%v Subject:%q}, want {id-2 other %v s2}",
			given.ID, given.Source, given.Time, given.Subject, at)
	}
	if given.Meta["correlationid"] != "c-1" {
		t.Errorf("Meta = %v, want correlationid=c-1", given.Meta)
	}
	p, err := eventbus.Decode[payload](given)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := payload{N: 2, Name: "two", At: at, Tags: []string{"x", "y"}, Sub: map[string]string{"k": "v"}}
	if p.N != want.N || p.Name != want.Name || !p.At.Equal(want.At) || !slices.Equal(p.Tags, want.Tags) || p.Sub["k"] != "v" {
		t.Errorf("payload = %+v, want %+v", p, want)
	}
}
