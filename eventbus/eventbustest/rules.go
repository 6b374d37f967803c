package eventbustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
)

func (s *suite) invalid(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var r recorder
	mustSubscribe(t, b, "*", r.handle)
	for _, tc := range []struct {
		name   string
		events []eventbus.Event
	}{
		{"empty type", []eventbus.Event{{ID: "x"}}},
		{"valid then empty type", []eventbus.Event{{Type: "A", ID: "ok"}, {ID: "bad"}}},
	} {
		if err := b.Publish(ctx, tc.events...); !errors.Is(err, eventbus.ErrInvalidEvent) {
			t.Errorf("%s: Publish = %v, want ErrInvalidEvent", tc.name, err)
		}
	}
	mustPublish(t, ctx, b, eventbus.Event{Type: "A", ID: "after"})
	s.flush(t, b)
	if got := ids(r.all()); !slices.Equal(got, []string{"after"}) {
		t.Errorf("handled %v, want only [after]: a rejected batch must accept nothing", got)
	}
}

func (s *suite) typed(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	type greeting struct{ Name string }
	var mu sync.Mutex
	var got []string
	_, err := eventbus.On(b, "Greeted", func(_ context.Context, e eventbus.Event, g greeting) error {
		mu.Lock()
		got = append(got, g.Name)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustPublish(t, ctx, b, eventbus.Event{Type: "Greeted", Data: greeting{"value"}},
		eventbus.Event{Type: "Greeted", Data: &greeting{"pointer"}},
		eventbus.Event{Type: "Greeted", Data: map[string]any{"Name": "map"}})
	s.flush(t, b)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got)
	if want := []string{"map", "pointer", "value"}; !slices.Equal(got, want) {
		t.Errorf("typed handler got %v, want %v", got, want)
	}
}

func (s *suite) subjectOrder(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	const subjects, perSubject = 8, 100
	var mu sync.Mutex
	seen := map[string][]int{}
	var running atomic.Int32
	var overlapped atomic.Bool
	busy := map[string]bool{}
	mustSubscribe(t, b, "Ordered", func(_ context.Context, e eventbus.Event) error {
		mu.Lock()
		if busy[e.Subject] {
			overlapped.Store(true)
		}
		busy[e.Subject] = true
		mu.Unlock()
		running.Add(1)
		defer running.Add(-1)
		n, _ := strconv.Atoi(e.ID[len(e.Subject)+1:])
		mu.Lock()
		seen[e.Subject] = append(seen[e.Subject], n)
		busy[e.Subject] = false
		mu.Unlock()
		return nil
	}, eventbus.Concurrency(4))
	for i := range perSubject {
		for j := range subjects {
			subj := fmt.Sprintf("s%d", j)
			mustPublish(t, ctx, b, eventbus.Event{Type: "Ordered", Subject: subj, ID: fmt.Sprintf("%s-%d", subj, i)})
		}
	}
	s.flush(t, b)
	if overlapped.Load() {
		t.Error("two events of one subject were handled at once")
	}
	for j := range subjects {
		subj := fmt.Sprintf("s%d", j)
		got := seen[subj]
		if len(got) != perSubject || !slices.IsSorted(got) {
			t.Errorf("subject %s handled in order %v, want 0..%d ascending", subj, got, perSubject-1)
		}
	}
}

func (s *suite) orderOneWorker(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var r recorder
	mustSubscribe(t, b, "Seq", r.handle)
	var want []string
	for i := range 300 {
		id := fmt.Sprint(i)
		want = append(want, id)
		mustPublish(t, ctx, b, eventbus.Event{Type: "Seq", ID: id})
	}
	s.flush(t, b)
	if got := ids(r.all()); !slices.Equal(got, want) {
		t.Errorf("one worker, no subject: handled out of publish order (%d events)", len(got))
	}
}

func (s *suite) reentrant(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var late recorder
	var lateSub eventbus.Subscription
	var subMu sync.Mutex
	mustSubscribe(t, b, "Start", func(ctx context.Context, e eventbus.Event) error {
		sub, err := b.Subscribe("Late", late.handle)
		if err != nil {
			return err
		}
		subMu.Lock()
		lateSub = sub
		subMu.Unlock()
		return b.Publish(ctx, eventbus.Event{Type: "Next", Subject: e.Subject})
	})
	mustSubscribe(t, b, "Next", func(ctx context.Context, e eventbus.Event) error {
		return b.Publish(ctx, eventbus.Event{Type: "Late", ID: "late-1"})
	})
	var stopped atomic.Bool
	mustSubscribe(t, b, "Late", func(ctx context.Context, e eventbus.Event) error {
		subMu.Lock()
		sub := lateSub
		subMu.Unlock()
		if err := sub.Unsubscribe(); err != nil { // another subscription's, from a handler
			return err
		}
		stopped.Store(true)
		return nil
	})
	mustPublish(t, ctx, b, eventbus.Event{Type: "Start", Subject: "x"})
	s.flush(t, b)
	if !stopped.Load() {
		t.Fatal("the chain Start -> Next -> Late did not complete")
	}
	mustPublish(t, ctx, b, eventbus.Event{Type: "Late", ID: "late-2"})
	s.flush(t, b)
	for _, id := range ids(late.all()) {
		if id == "late-2" {
			t.Error("a subscription unsubscribed from a handler still received an event")
		}
	}
}

func (s *suite) handlerPublishNeverBlocks(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var handled atomic.Int64
	// Each Ping handler publishes 5 more Pings into its own queue of 2 until
	// 200 were published: with a blocking Publish this deadlocks at once.
	var published atomic.Int64
	published.Store(1)
	mustSubscribe(t, b, "Ping", func(ctx context.Context, e eventbus.Event) error {
		handled.Add(1)
		for range 5 {
			if published.Add(1) > 200 {
				return nil
			}
			if err := b.Publish(ctx, eventbus.Event{Type: "Ping"}); err != nil {
				return err
			}
		}
		return nil
	}, eventbus.QueueSize(2))
	mustPublish(t, ctx, b, eventbus.Event{Type: "Ping"})
	s.flush(t, b)
	if got := handled.Load(); got != 200 {
		t.Errorf("handled %d pings, want 200", got)
	}
}

func (s *suite) retryThenSucceed(t *testing.T) {
	var dead atomic.Int64
	b := s.bus(t, eventbus.WithDeadLetter(func(context.Context, eventbus.DeadLetter) { dead.Add(1) }))
	ctx := s.ctx(t)
	var calls atomic.Int64
	var attempts []int
	var mu sync.Mutex
	mustSubscribe(t, b, "Flaky", func(ctx context.Context, e eventbus.Event) error {
		d, _ := eventbus.DeliveryFrom(ctx)
		mu.Lock()
		attempts = append(attempts, d.Attempt)
		mu.Unlock()
		if calls.Add(1) < 3 {
			return errors.New("transient")
		}
		return nil
	}, eventbus.MaxAttempts(3), eventbus.Backoff(time.Millisecond, 5*time.Millisecond))
	mustPublish(t, ctx, b, eventbus.Event{Type: "Flaky"})
	s.flush(t, b)
	if calls.Load() != 3 || dead.Load() != 0 {
		t.Errorf("calls = %d, dead letters = %d; want 3 calls and no dead letter", calls.Load(), dead.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("DeliveryFrom attempts = %v, want [1 2 3]", attempts)
	}
}

func (s *suite) retryThenDeadLetter(t *testing.T) {
	var mu sync.Mutex
	var dls []eventbus.DeadLetter
	b := s.bus(t, eventbus.WithDeadLetter(func(_ context.Context, dl eventbus.DeadLetter) {
		mu.Lock()
		dls = append(dls, dl)
		mu.Unlock()
	}))
	ctx := s.ctx(t)
	boom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		attempts int
	}{{"one", 1}, {"three", 3}} {
		var calls atomic.Int64
		typ := "Fail" + tc.name
		mustSubscribe(t, b, typ, func(context.Context, eventbus.Event) error {
			calls.Add(1)
			return boom
		}, eventbus.MaxAttempts(tc.attempts), eventbus.Backoff(time.Millisecond, 2*time.Millisecond), eventbus.Durable("dl-"+tc.name))
		mustPublish(t, ctx, b, eventbus.Event{Type: typ, ID: "ev-" + tc.name})
		s.flush(t, b)
		if got := calls.Load(); got != int64(tc.attempts) {
			t.Errorf("MaxAttempts(%d): handler called %d times", tc.attempts, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dls) != 2 {
		t.Fatalf("got %d dead letters, want 2 (one per event)", len(dls))
	}
	slices.SortFunc(dls, func(a, b eventbus.DeadLetter) int { return a.Attempts - b.Attempts })
	for i, want := range []struct {
		id, sub  string
		attempts int
	}{{"ev-one", "dl-one", 1}, {"ev-three", "dl-three", 3}} {
		dl := dls[i]
		if dl.Event.ID != want.id || dl.Subscription != want.sub || dl.Attempts != want.attempts || !errors.Is(dl.Err, boom) && dl.Err.Error() != boom.Error() {
			t.Errorf("dead letter = {%s %s %d %v}, want {%s %s %d boom}", dl.Event.ID, dl.Subscription, dl.Attempts, dl.Err, want.id, want.sub, want.attempts)
		}
	}
}

func (s *suite) panicIsolated(t *testing.T) {
	var dead atomic.Int64
	var deadErr atomic.Value
	b := s.bus(t, eventbus.WithDeadLetter(func(_ context.Context, dl eventbus.DeadLetter) {
		dead.Add(1)
		deadErr.Store(dl.Err)
	}))
	ctx := s.ctx(t)
	var calm recorder
	mustSubscribe(t, b, "P", func(context.Context, eventbus.Event) error { panic("handler bug") },
		eventbus.MaxAttempts(2), eventbus.Backoff(time.Millisecond, time.Millisecond))
	mustSubscribe(t, b, "P", calm.handle)
	for range 10 {
		mustPublish(t, ctx, b, eventbus.Event{Type: "P"})
	}
	s.flush(t, b)
	if calm.len() != 10 {
		t.Errorf("the other subscription handled %d of 10 events", calm.len())
	}
	if dead.Load() != 10 {
		t.Errorf("dead letters = %d, want 10", dead.Load())
	}
	if err, _ := deadErr.Load().(error); err == nil || !containsPanic(err) {
		t.Errorf("dead letter error = %v, want one that says the handler panicked", err)
	}
}

func containsPanic(err error) bool {
	var pe *eventbus.PanicError
	if errors.As(err, &pe) {
		return true
	}
	return err != nil && len(err.Error()) > 0 && (contains(err.Error(), "panic"))
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

type ctxKey struct{}

func (s *suite) handlerContext(t *testing.T) {
	b := s.bus(t)
	type seen struct {
		value any
		err   error
		sub   string
	}
	got := make(chan seen, 1)
	release := make(chan struct{})
	mustSubscribe(t, b, "Ctx", func(ctx context.Context, e eventbus.Event) error {
		<-release
		d, _ := eventbus.DeliveryFrom(ctx)
		got <- seen{ctx.Value(ctxKey{}), ctx.Err(), d.Subscription}
		return nil
	}, eventbus.Durable("ctx-sub"))
	pubCtx, cancel := context.WithCancel(context.WithValue(s.ctx(t), ctxKey{}, "request-42"))
	mustPublish(t, pubCtx, b, eventbus.Event{Type: "Ctx"})
	cancel() // the request ends; the event's handling must not
	close(release)
	select {
	case g := <-got:
		if g.value != "request-42" {
			t.Errorf("handler ctx value = %v, want the publisher's request-42", g.value)
		}
		if g.err != nil {
			t.Errorf("handler ctx err = %v, want nil: the publisher's cancellation must not reach handlers", g.err)
		}
		if g.sub != "ctx-sub" {
			t.Errorf("DeliveryFrom(ctx).Subscription = %q, want ctx-sub", g.sub)
		}
	case <-time.After(s.f.Timeout):
		t.Fatal("handler never ran")
	}
}

func (s *suite) flushChains(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var last atomic.Int64
	for i := range 5 {
		from, to := fmt.Sprintf("Step%d", i), fmt.Sprintf("Step%d", i+1)
		mustSubscribe(t, b, from, func(ctx context.Context, e eventbus.Event) error {
			return b.Publish(ctx, eventbus.Event{Type: to, Subject: e.Subject})
		})
	}
	mustSubscribe(t, b, "Step5", func(context.Context, eventbus.Event) error { last.Add(1); return nil })
	for i := range 20 {
		mustPublish(t, ctx, b, eventbus.Event{Type: "Step0", Subject: fmt.Sprint(i)})
	}
	s.flush(t, b)
	if got := last.Load(); got != 20 {
		t.Errorf("after Flush, %d of 20 chains reached the last step", got)
	}
}

func (s *suite) flushInsideHandler(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	got := make(chan error, 1)
	mustSubscribe(t, b, "F", func(ctx context.Context, e eventbus.Event) error {
		got <- b.Flush(ctx)
		return nil
	})
	mustPublish(t, ctx, b, eventbus.Event{Type: "F"})
	select {
	case err := <-got:
		if err == nil {
			t.Error("Flush inside a handler returned nil, want an error")
		}
	case <-time.After(s.f.Timeout):
		t.Fatal("Flush inside a handler waited for itself")
	}
}

func (s *suite) closeDrains(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var handled, chained atomic.Int64
	mustSubscribe(t, b, "Slow", func(ctx context.Context, e eventbus.Event) error {
		handled.Add(1)
		return b.Publish(ctx, eventbus.Event{Type: "Chained"}) // accepted while draining
	}, eventbus.Concurrency(2))
	mustSubscribe(t, b, "Chained", func(context.Context, eventbus.Event) error { chained.Add(1); return nil })
	for range 100 {
		mustPublish(t, ctx, b, eventbus.Event{Type: "Slow"})
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if handled.Load() != 100 || chained.Load() != 100 {
		t.Errorf("after Close: handled %d, chained %d; want 100 and 100", handled.Load(), chained.Load())
	}
	if err := b.Publish(ctx, eventbus.Event{Type: "Slow"}); !errors.Is(err, eventbus.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe("Slow", func(context.Context, eventbus.Event) error { return nil }); !errors.Is(err, eventbus.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Close(ctx) }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, eventbus.ErrClosed) {
			t.Errorf("second Close = %v", err)
		}
	case <-time.After(s.f.Timeout):
		t.Error("second Close did not return at once")
	}
}

func (s *suite) closeDeadline(t *testing.T) {
	b := s.newBus(t)
	started := make(chan struct{})
	cancelled := make(chan struct{})
	mustSubscribe(t, b, "Stuck", func(ctx context.Context, e eventbus.Event) error {
		close(started)
		<-ctx.Done() // only Close giving up ends this
		close(cancelled)
		return ctx.Err()
	}, eventbus.MaxAttempts(1))
	mustPublish(t, s.ctx(t), b, eventbus.Event{Type: "Stuck"})
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a stuck handler = %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-cancelled:
	case <-time.After(s.f.Timeout):
		t.Fatal("the handler's context was not cancelled when Close gave up")
	}
}

func (s *suite) unsubscribe(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var handled atomic.Int64
	var finished atomic.Bool
	started := make(chan struct{})
	release := make(chan struct{})
	sub := mustSubscribe(t, b, "U", func(context.Context, eventbus.Event) error {
		if handled.Add(1) == 1 {
			close(started)
			<-release
			finished.Store(true)
		}
		return nil
	})
	for range 10 {
		mustPublish(t, ctx, b, eventbus.Event{Type: "U"})
	}
	<-started
	// Whether the 9 queued events are dropped depends on whether Unsubscribe
	// or the released handler gets there first; UnsubscribeInsideHandler
	// checks dropping deterministically. Here: Unsubscribe waits for the
	// running handler, and nothing is handled once it returned.
	unsubscribed := make(chan int64)
	go func() {
		if err := sub.Unsubscribe(); err != nil {
			t.Errorf("Unsubscribe: %v", err)
		}
		unsubscribed <- handled.Load()
	}()
	close(release)
	atReturn := <-unsubscribed
	if !finished.Load() {
		t.Error("Unsubscribe returned before the running handler finished")
	}
	mustPublish(t, ctx, b, eventbus.Event{Type: "U"})
	s.flush(t, b)
	if got := handled.Load(); got != atReturn {
		t.Errorf("handled %d events after Unsubscribe returned", got-atReturn)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Errorf("second Unsubscribe = %v, want nil", err)
	}
}

func (s *suite) unsubscribeInsideHandler(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var handled atomic.Int64
	var sub eventbus.Subscription
	ready := make(chan struct{})
	sub = mustSubscribe(t, b, "Self", func(context.Context, eventbus.Event) error {
		<-ready
		handled.Add(1)
		return sub.Unsubscribe()
	})
	close(ready)
	mustPublish(t, ctx, b, eventbus.Event{Type: "Self"}, eventbus.Event{Type: "Self"}, eventbus.Event{Type: "Self"})
	s.flush(t, b)
	if got := handled.Load(); got != 1 {
		t.Errorf("handled %d events; want 1 (the handler unsubscribed itself)", got)
	}
}

func (s *suite) backpressure(t *testing.T) {
	if !s.f.Backpressure {
		t.Skip("the transport does not claim Backpressure: Publish waits for the stream, not for consumers")
	}
	b := s.bus(t)
	ctx := s.ctx(t)
	release := make(chan struct{})
	var handled atomic.Int64
	mustSubscribe(t, b, "BP", func(context.Context, eventbus.Event) error {
		<-release
		handled.Add(1)
		return nil
	}, eventbus.QueueSize(2))
	// One event is taken by the worker, two fill the queue.
	for range 3 {
		mustPublish(t, ctx, b, eventbus.Event{Type: "BP"})
	}
	s.waitUntil(t, "the queue is full", func() bool {
		short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		defer cancel()
		err := b.Publish(short, eventbus.Event{Type: "BP", ID: "probe"})
		return errors.Is(err, context.DeadlineExceeded)
	})
	close(release)
	mustPublish(t, ctx, b, eventbus.Event{Type: "BP"}) // room again
	s.flush(t, b)
	if got := handled.Load(); got < 4 {
		t.Errorf("handled %d events, want at least 4", got)
	}
}

func (s *suite) concurrentPublishers(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	const publishers, each = 8, 250
	var mu sync.Mutex
	count := map[string]int{}
	mustSubscribe(t, b, "C", func(_ context.Context, e eventbus.Event) error {
		mu.Lock()
		count[e.ID]++
		mu.Unlock()
		return nil
	}, eventbus.Concurrency(3), eventbus.QueueSize(16))
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				if err := b.Publish(ctx, eventbus.Event{Type: "C", ID: fmt.Sprintf("%d-%d", p, i), Subject: fmt.Sprint(i % 7)}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	s.flush(t, b)
	mu.Lock()
	defer mu.Unlock()
	if len(count) != publishers*each {
		t.Errorf("handled %d distinct events, want %d", len(count), publishers*each)
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("event %s handled %d times", id, n)
		}
	}
}

func (s *suite) durableGroup(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var mu sync.Mutex
	count := map[string]int{}
	var plain recorder
	group := func(_ context.Context, e eventbus.Event) error {
		mu.Lock()
		count[e.ID]++
		mu.Unlock()
		return nil
	}
	mustSubscribe(t, b, "G", group, eventbus.Durable("workers"))
	mustSubscribe(t, b, "G", group, eventbus.Durable("workers"))
	mustSubscribe(t, b, "G", plain.handle)
	const n = 200
	for i := range n {
		mustPublish(t, ctx, b, eventbus.Event{Type: "G", ID: fmt.Sprint(i)})
	}
	s.flush(t, b)
	mu.Lock()
	defer mu.Unlock()
	if len(count) != n {
		t.Errorf("the group handled %d distinct events, want %d", len(count), n)
	}
	for id, c := range count {
		if c != 1 {
			t.Errorf("the group handled event %s %d times, want once", id, c)
		}
	}
	if plain.len() != n {
		t.Errorf("a plain subscription got %d events, want all %d", plain.len(), n)
	}
}

func (s *suite) durableMemberLeaves(t *testing.T) {
	b := s.bus(t)
	ctx := s.ctx(t)
	var a, c atomic.Int64
	subA := mustSubscribe(t, b, "L", func(context.Context, eventbus.Event) error { a.Add(1); return nil }, eventbus.Durable("leavers"))
	mustSubscribe(t, b, "L", func(context.Context, eventbus.Event) error { c.Add(1); return nil }, eventbus.Durable("leavers"))
	if err := subA.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	before := a.Load()
	for range 50 {
		mustPublish(t, ctx, b, eventbus.Event{Type: "L"})
	}
	s.flush(t, b)
	if a.Load() != before || c.Load() != 50 {
		t.Errorf("after one member left: left member handled %d more, remaining member %d; want 0 and 50", a.Load()-before, c.Load())
	}
}

func (s *suite) badOptions(t *testing.T) {
	b := s.bus(t)
	h := func(context.Context, eventbus.Event) error { return nil }
	for _, tc := range []struct {
		name string
		opt  eventbus.SubscribeOption
	}{
		{"MaxAttempts(0)", eventbus.MaxAttempts(0)},
		{"Concurrency(0)", eventbus.Concurrency(0)},
		{"QueueSize(0)", eventbus.QueueSize(0)},
		{"Backoff(max < initial)", eventbus.Backoff(time.Second, time.Millisecond)},
	} {
		if _, err := b.Subscribe("X", h, tc.opt); err == nil {
			t.Errorf("Subscribe with %s succeeded, want an error", tc.name)
		}
	}
	if _, err := b.Subscribe("", h); err == nil {
		t.Error("Subscribe to an empty type succeeded, want an error")
	}
}
