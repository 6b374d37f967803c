package eventbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gigbus/gigbus/eventbus/internal/goid"
)

// MemoryBus is the in-process transport. Create it with New; the zero value
// is not usable. It is safe for concurrent use.
//
// Delivery is at least once within the process's lifetime: an accepted event
// is handled, retried or dead-lettered unless Close gives up at its deadline.
type MemoryBus struct {
	cfg Config

	// routes maps an event type ("*" included) to its route. It is copied
	// on write under mu, so Publish reads it without locking.
	routes atomic.Pointer[map[string]*route]

	mu     sync.Mutex        // guards writes of routes, queues, names
	queues map[string]*queue // by subscription name: durable groups and plain subscriptions
	names  map[string]int    // generated-name counters

	// pending counts what keeps the bus from being idle: deliveries accepted
	// (or about to be) and not yet handled or dropped.
	pending atomic.Int64
	waiting atomic.Bool // some Flush waits for idle
	idleMu  sync.Mutex
	idle    chan struct{} // closed when pending reaches zero, if waiting

	closed     atomic.Bool // outside publishers get ErrClosed
	drained    atomic.Bool // Close has shut the queues down: everyone gets ErrClosed
	closeOnce  sync.Once
	closeDone  chan struct{}
	life       context.Context // handlers' cancellation: ends when Close gives up
	cancelLife context.CancelFunc
	wg         sync.WaitGroup // every worker goroutine

	workers sync.Map // goroutine id -> struct{}, of every worker: tells handlers apart

	dead deadLetters
}

// route is what Publish needs for one event type.
type route struct {
	queues  atomic.Pointer[[]*queue] // replaced on change
	sources atomic.Pointer[[]string] // who published this type, for Topology
}

var _ Bus = (*MemoryBus)(nil)

// New returns an in-process bus.
func New(opts ...Option) *MemoryBus {
	b := &MemoryBus{
		cfg:       NewConfig(opts...),
		queues:    make(map[string]*queue),
		names:     make(map[string]int),
		closeDone: make(chan struct{}),
	}
	b.life, b.cancelLife = context.WithCancel(context.Background())
	b.dead.keep = b.cfg.DeadLetterKeep
	b.routes.Store(&map[string]*route{})
	return b
}

// Publish validates every event, fills ID, Time and Source, and queues each
// event at every subscription of its type and of "*". See Bus.Publish.
func (b *MemoryBus) Publish(ctx context.Context, events ...Event) error {
	for i := range events {
		if err := Validate(events[i]); err != nil {
			if len(events) > 1 {
				return fmt.Errorf("event %d of %d: %w", i+1, len(events), err)
			}
			return err
		}
	}
	inHandler := false
	if hc, ok := ctx.(*handlerCtx); ok && hc.bus == b {
		// Keep the chain of contexts short across hops of a handler chain:
		// the handler's context adds nothing but its cancellation, which
		// events do not take on.
		inHandler, ctx = true, hc.parent
	} else {
		inHandler = b.fromHandler(ctx)
	}

	if b.rejects(inHandler) {
		return ErrClosed
	}
	if !inHandler {
		if err := ctx.Err(); err != nil {
			return err
		}
	}

	var now time.Time // read once, and only if an event needs it: time.Now is not free
	routes := *b.routes.Load()
	all := routes["*"]
	for i := range events {
		e := events[i]
		if e.Time.IsZero() && now.IsZero() {
			now = b.cfg.Now()
		}
		Fill(&e, b.cfg.Source, now)
		if len(b.cfg.PublishHooks) > 0 {
			e = b.runHooks(ctx, e)
		}
		r := routes[e.Type]
		if r == nil {
			r = b.addRoute(e.Type)
		}
		r.noteSource(b, e.Source)
		if err := b.enqueue(ctx, inHandler, r, all, e); err != nil {
			return err
		}
	}
	return nil
}

// runHooks lets the publish hooks see e. It works on a copy on the heap, so
// that the common case without hooks keeps e on the stack.
func (b *MemoryBus) runHooks(ctx context.Context, e Event) Event {
	p := new(Event)
	*p = e
	for _, h := range b.cfg.PublishHooks {
		h(ctx, p)
	}
	return *p
}

// enqueue queues e at every queue of r and of all ("*"). Outside handlers it
// first waits until none of those queues is full, so that an event is either
// queued everywhere or (on a context error) nowhere; concurrent publishers
// can overshoot a bound by one event each.
func (b *MemoryBus) enqueue(ctx context.Context, inHandler bool, r, all *route, e Event) error {
	var qs, ws []*queue
	if p := r.queues.Load(); p != nil {
		qs = *p
	}
	if all != nil {
		if p := all.queues.Load(); p != nil {
			ws = *p
		}
	}
	if !inHandler {
		for {
			q := firstFull(qs, ws)
			if q == nil {
				break
			}
			if b.isWorker() {
				// A handler publishing with a context of its own: it
				// must never block, or a cycle of handlers could
				// deadlock on full queues.
				break
			}
			if err := q.waitRoom(ctx); err != nil {
				return err
			}
		}
	}
	n := int64(len(qs) + len(ws))
	if n == 0 {
		return nil
	}
	// Counting the deliveries as pending before checking for Close closes
	// the race with it: Close marks the bus closed, then waits for idle, so
	// either this sees closed, or Close waits for these deliveries.
	b.pending.Add(n)
	if b.rejects(inHandler) {
		b.finish(n)
		return ErrClosed
	}
	it := item{ev: e, ctx: ctx}
	var dropped int64
	for _, list := range [2][]*queue{qs, ws} {
		for _, q := range list {
			if !q.push(it) {
				dropped++ // unsubscribed or shut down meanwhile
			}
		}
	}
	if dropped > 0 {
		b.finish(dropped)
		if b.closed.Load() {
			return ErrClosed // the bus shut down under this call
		}
	}
	return nil
}

// fromHandler reports whether ctx is (or derives from) a handler's context
// of this bus.
func (b *MemoryBus) fromHandler(ctx context.Context) bool {
	v, _ := ctx.Value(busKey{}).(*MemoryBus)
	return v == b
}

// rejects reports whether Publish must return ErrClosed: after Close, except
// for handlers while the bus drains (what they publish is part of the work
// Close waits for); once drained, for everyone.
func (b *MemoryBus) rejects(inHandler bool) bool {
	if !b.closed.Load() {
		return false
	}
	return b.drained.Load() || !inHandler && !b.isWorker()
}

func firstFull(lists ...[]*queue) *queue {
	for _, qs := range lists {
		for _, q := range qs {
			if q.full() {
				return q
			}
		}
	}
	return nil
}

func (r *route) noteSource(b *MemoryBus, source string) {
	if p := r.sources.Load(); p != nil {
		for _, s := range *p {
			if s == source {
				return
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var srcs []string
	if p := r.sources.Load(); p != nil {
		for _, s := range *p {
			if s == source {
				return
			}
		}
		srcs = append(srcs, *p...)
	}
	srcs = append(srcs, source)
	r.sources.Store(&srcs)
}

// addRoute returns the route of typ, creating it if needed.
func (b *MemoryBus) addRoute(typ string) *route {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.routeLocked(typ)
}

// routeLocked returns the route of typ, creating it if needed; b.mu must be
// held. Routes are never removed, so a publisher holding one stays right.
func (b *MemoryBus) routeLocked(typ string) *route {
	old := *b.routes.Load()
	if r := old[typ]; r != nil {
		return r
	}
	r := &route{}
	m := make(map[string]*route, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[typ] = r
	b.routes.Store(&m)
	return r
}

// Subscribe registers h for eventType, or for every type with "*". See the
// SubscribeOption functions for the policy. It returns ErrClosed after Close
// and an error for invalid options.
func (b *MemoryBus) Subscribe(eventType string, h Handler, opts ...SubscribeOption) (Subscription, error) {
	if h == nil {
		return nil, errors.New("eventbus: Subscribe: nil handler")
	}
	if eventType != "*" {
		if err := Validate(Event{Type: eventType}); err != nil {
			return nil, fmt.Errorf("eventbus: Subscribe: %w", err)
		}
	}
	cfg, err := NewSubscribeConfig(opts...)
	if err != nil {
		return nil, err
	}
	chain := Chain(h, append(slices.Clone(b.cfg.Middleware), cfg.Middleware...)...)

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, ErrClosed
	}
	var q *queue
	if cfg.Name != "" {
		key := cfg.Name + "\x00" + eventType
		if q = b.queues[key]; q == nil {
			q = newQueue(b, cfg.Name, eventType, true, cfg)
			b.queues[key] = q
			b.addQueue(q)
		}
	} else {
		name := b.generateName(eventType, h)
		q = newQueue(b, name, eventType, false, cfg)
		b.queues[name] = q
		b.addQueue(q)
	}
	m := &member{q: q, cfg: cfg, handler: chain, stop: make(chan struct{})}
	q.mu.Lock()
	q.members = append(q.members, m)
	q.workers += cfg.Concurrency
	q.mu.Unlock()
	m.wg.Add(cfg.Concurrency)
	b.wg.Add(cfg.Concurrency)
	for w := range cfg.Concurrency {
		go m.run(w)
	}
	return &subscription{m: m}, nil
}

// addQueue and removeQueue change a route's queues; b.mu must be held.
func (b *MemoryBus) addQueue(q *queue) {
	r := b.routeLocked(q.typ)
	var qs []*queue
	if p := r.queues.Load(); p != nil {
		qs = append(qs, *p...)
	}
	qs = append(qs, q)
	r.queues.Store(&qs)
}

func (b *MemoryBus) removeQueue(q *queue) {
	r := b.routeLocked(q.typ)
	var qs []*queue
	if p := r.queues.Load(); p != nil {
		for _, x := range *p {
			if x != q {
				qs = append(qs, x)
			}
		}
	}
	r.queues.Store(&qs)
	if q.durable {
		delete(b.queues, q.name+"\x00"+q.typ)
	} else {
		delete(b.queues, q.name)
	}
}

// generateName names a plain subscription after its handler's function, for
// logs, dead letters and Topology: "ticketing.(*ConcertService).reserve@T#2".
func (b *MemoryBus) generateName(typ string, h Handler) string {
	base := HandlerName(h) + "@" + typ
	b.names[base]++
	if n := b.names[base]; n > 1 {
		return base + "#" + strconv.Itoa(n)
	}
	return base
}

type subscription struct{ m *member }

// Unsubscribe stops the member's workers; see Subscription.
func (s *subscription) Unsubscribe() error {
	m := s.m
	q, b := m.q, m.q.bus
	self := false
	m.once.Do(func() {
		me := goid.Get()
		q.mu.Lock()
		m.stopped = true
		m.stopping.Store(true)
		q.workers -= m.cfg.Concurrency
		for _, id := range m.goids {
			self = self || id == me
		}
		close(m.stop)
		last := true
		for _, o := range q.members {
			last = last && (o == m || o.stopped)
		}
		q.work.Broadcast()
		q.mu.Unlock()

		if last {
			b.mu.Lock()
			b.removeQueue(q)
			b.mu.Unlock()
			q.mu.Lock()
			dropped := q.shutdown()
			q.mu.Unlock()
			b.finish(int64(dropped))
		}
		if !self {
			m.wg.Wait()
		}
	})
	return nil
}

// Flush waits until the bus is idle. See Bus.Flush.
func (b *MemoryBus) Flush(ctx context.Context) error {
	if b.fromHandler(ctx) || b.isWorker() {
		return fmt.Errorf("eventbus: Flush: %w", ErrInHandler)
	}
	return b.waitIdle(ctx)
}

func (b *MemoryBus) waitIdle(ctx context.Context) error {
	for {
		b.idleMu.Lock()
		if b.pending.Load() == 0 {
			b.idleMu.Unlock()
			return nil
		}
		if b.idle == nil {
			b.idle = make(chan struct{})
		}
		idle := b.idle
		b.waiting.Store(true)
		// finish may have reached zero before it could see waiting.
		if b.pending.Load() == 0 {
			b.wakeIdleLocked()
			b.idleMu.Unlock()
			return nil
		}
		b.idleMu.Unlock()
		select {
		case <-idle:
			// Loop: more work may have come in since.
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// finish marks n units of pending work done.
func (b *MemoryBus) finish(n int64) {
	if n == 0 {
		return
	}
	if b.pending.Add(-n) == 0 && b.waiting.Load() {
		b.idleMu.Lock()
		if b.pending.Load() == 0 {
			b.wakeIdleLocked()
		}
		b.idleMu.Unlock()
	}
}

func (b *MemoryBus) wakeIdleLocked() {
	if b.idle != nil {
		close(b.idle)
		b.idle = nil
	}
	b.waiting.Store(false)
}

// Close drains the bus and stops it. See Bus.Close.
func (b *MemoryBus) Close(ctx context.Context) error {
	if b.isWorker() {
		return fmt.Errorf("eventbus: Close: %w", ErrInHandler)
	}
	first := false
	b.closeOnce.Do(func() {
		first = true
		b.closed.Store(true)
		go b.close()
	})
	if !first {
		return nil // DESIGN: calling Close again returns at once
	}
	select {
	case <-b.closeDone:
		return nil
	case <-ctx.Done():
		// Give up: handlers are told to stop, queued events are dropped.
		b.cancelLife()
		dropped := b.shutdownQueues()
		if dropped > 0 {
			b.cfg.Logger.WarnContext(ctx, "eventbus: Close gave up waiting; queued events dropped", "dropped", dropped)
		}
		return ctx.Err()
	}
}

func (b *MemoryBus) close() {
	b.mu.Lock()
	b.closed.Store(true)
	b.mu.Unlock()
	_ = b.waitIdle(b.life) // ends early only if a Close gave up
	b.shutdownQueues()
	b.wg.Wait()
	b.cancelLife()
	close(b.closeDone)
}

func (b *MemoryBus) shutdownQueues() int {
	b.drained.Store(true)
	b.mu.Lock()
	qs := make([]*queue, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	b.mu.Unlock()
	dropped := 0
	for _, q := range qs {
		q.mu.Lock()
		dropped += q.shutdown()
		q.mu.Unlock()
	}
	b.finish(int64(dropped))
	return dropped
}

// isWorker reports whether the calling goroutine is one of the bus's workers.
// It costs about a microsecond, so it is only used off the hot path.
func (b *MemoryBus) isWorker() bool {
	_, ok := b.workers.Load(goid.Get())
	return ok
}
