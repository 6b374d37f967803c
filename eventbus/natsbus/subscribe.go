package natsbus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gigbus/gigbus/eventbus"
)

// subscription is one Subscribe call: a pull consumer (its own ephemeral
// one, or its durable group's), a dispatcher that partitions what it fetches
// by the event's Subject over Concurrency workers, and a keeper that holds
// the acks of long-held events.
type subscription struct {
	b        *Bus
	typ      string
	filter   string // <stream>.<type>, or <stream>.> for "*"
	all      bool
	name     string // Durable name, or generated
	consumer string // the JetStream consumer's name
	durable  bool
	cfg      eventbus.SubscribeConfig
	handler  eventbus.Handler // bus middleware, Use middleware, handler
	cons     jetstream.Consumer
	cc       jetstream.ConsumeContext

	slots    chan struct{}        // QueueSize bounds what this instance holds
	queues   []chan jetstream.Msg // one per worker
	rr       atomic.Uint32        // round robin for events without a Subject
	inflight atomic.Int64         // fetched and not yet acked, nakked or terminated here

	stop     chan struct{} // closed by Unsubscribe or a forced Close: leave at once
	stopOnce sync.Once
	gone     atomic.Bool // unsubscribed
	unsub    sync.Once
	finished sync.Once

	running    atomic.Int32
	allDone    chan struct{} // closed when the last worker exited
	keeperDone chan struct{}
	wdone      []chan struct{}

	mu    sync.Mutex
	held  map[jetstream.Msg]time.Time // when each held event was fetched or last kept alive
	goids []uint64                    // the workers' goroutine ids
}

// Subscribe registers h for eventType ("*" for every type). With
// Durable(name) it creates or binds the durable pull consumer of the group
// (name, eventType), which starts with new events when created and resumes
// where the group stopped afterwards; Unsubscribe never deletes it. Without
// Durable it creates an ephemeral consumer that gets the events stored from
// now on. The consumer's MaxAckPending and how far this instance fetches
// ahead are QueueSize. Types are NATS subject tokens (see Publish). After
// Close it returns ErrClosed.
func (b *Bus) Subscribe(eventType string, h eventbus.Handler, opts ...eventbus.SubscribeOption) (eventbus.Subscription, error) {
	if h == nil {
		return nil, errors.New("natsbus: Subscribe: nil handler")
	}
	if eventType != "*" {
		if err := validType(eventType); err != nil {
			return nil, fmt.Errorf("natsbus: Subscribe: %w", err)
		}
	}
	cfg, err := eventbus.NewSubscribeConfig(opts...)
	if err != nil {
		return nil, err
	}
	chain := h
	for i := len(cfg.Middleware) - 1; i >= 0; i-- {
		chain = cfg.Middleware[i](chain)
	}
	for i := len(b.cfg.Middleware) - 1; i >= 0; i-- {
		chain = b.cfg.Middleware[i](chain)
	}
	s := &subscription{
		b: b, typ: eventType, all: eventType == "*", name: cfg.Name, durable: cfg.Name != "",
		cfg: cfg, handler: chain,
		slots:      make(chan struct{}, cfg.QueueSize),
		stop:       make(chan struct{}),
		allDone:    make(chan struct{}),
		keeperDone: make(chan struct{}),
		held:       make(map[jetstream.Msg]time.Time),
	}
	s.filter = b.name + "." + eventType
	if s.all {
		s.filter = b.name + ".>"
	}

	b.mu.Lock()
	if b.state != open {
		b.mu.Unlock()
		return nil, eventbus.ErrClosed
	}
	if !s.durable {
		base := handlerName(h, eventType)
		b.names[base]++
		s.name = base
		if n := b.names[base]; n > 1 {
			s.name = base + "#" + strconv.Itoa(n)
		}
	}
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(b.life, opTimeout)
	defer cancel()
	if s.cons, err = s.createConsumer(ctx); err != nil {
		return nil, err
	}
	s.consumer = s.cons.CachedInfo().Name

	s.queues = make([]chan jetstream.Msg, cfg.Concurrency)
	s.wdone = make([]chan struct{}, cfg.Concurrency)
	s.goids = make([]uint64, cfg.Concurrency)
	s.running.Store(int32(cfg.Concurrency))
	for i := range s.queues {
		s.queues[i] = make(chan jetstream.Msg, cfg.QueueSize)
		s.wdone[i] = make(chan struct{})
		go s.work(i)
	}
	go s.keep()

	// The consumer's MaxAckPending (QueueSize) is what bounds the events this
	// instance holds; pull batches are no smaller than 64, since nats.go's
	// Consume can miss a re-pull with tiny batches (its heartbeat check then
	// recovers, hence a short heartbeat).
	s.cc, err = s.cons.Consume(s.dispatch,
		jetstream.PullMaxMessages(max(cfg.QueueSize, 64)),
		jetstream.PullHeartbeat(2*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				// An operator deleted it, or the server removed an ephemeral
				// consumer after an outage longer than its inactive threshold.
				b.cfg.Logger.Error("natsbus: the consumer is gone; this subscription receives nothing more",
					"subscription", s.name, "consumer", s.consumer, "err", err)
				return
			}
			b.cfg.Logger.Debug("natsbus: consuming", "subscription", s.name, "consumer", s.consumer, "err", err)
		}))
	if err != nil {
		s.abort()
		s.deleteConsumer(ctx)
		return nil, fmt.Errorf("natsbus: Subscribe %s: %w", eventType, err)
	}

	b.mu.Lock()
	if b.state != open {
		b.mu.Unlock()
		s.abort()
		s.deleteConsumer(ctx)
		return nil, eventbus.ErrClosed
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s, nil
}

// createConsumer creates the ephemeral consumer of a plain subscription, or
// creates or binds the durable consumer of a group.
func (s *subscription) createConsumer(ctx context.Context) (jetstream.Consumer, error) {
	b := s.b
	cc := jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1, // attempts are counted here, to dead-letter after MaxAttempts
		MaxAckPending: s.cfg.QueueSize,
		FilterSubject: s.filter,
	}
	if !s.durable {
		cc.InactiveThreshold = inactiveThreshold
		c, err := b.js.CreateConsumer(ctx, b.name, cc)
		if err != nil {
			return nil, fmt.Errorf("natsbus: Subscribe %s: creating a consumer: %w", s.typ, err)
		}
		return c, nil
	}
	cc.Durable = consumerName(s.name, s.typ)
	cc.Description = "gigbus durable group " + strconv.Quote(s.name) + " for " + s.typ
	c, err := b.js.Consumer(ctx, b.name, cc.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = b.js.CreateConsumer(ctx, b.name, cc)
		if errors.Is(err, jetstream.ErrConsumerExists) { // created meanwhile by another member
			c, err = b.js.Consumer(ctx, b.name, cc.Durable)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsbus: Subscribe %s: durable consumer %s: %w", s.typ, cc.Durable, err)
	}
	if got := c.CachedInfo().Config.FilterSubject; got != s.filter {
		return nil, fmt.Errorf("natsbus: Subscribe %s: durable consumer %s filters %q, want %q", s.typ, cc.Durable, got, s.filter)
	}
	return c, nil
}

// dispatch is the consumer's callback: it takes a slot (waiting while this
// instance holds QueueSize events) and hands the message to the worker of its
// Subject, so that events of one Subject are handled one at a time, in order.
func (s *subscription) dispatch(m jetstream.Msg) {
	select {
	case <-s.stop:
		s.abandon(m)
		return
	case s.slots <- struct{}{}:
	}
	w := 0
	if n := uint32(len(s.queues)); n > 1 {
		if subj := m.Headers().Get(hdrSubject); subj != "" {
			h := fnv.New32a()
			h.Write([]byte(subj))
			w = int(h.Sum32() % n)
		} else {
			w = int(s.rr.Add(1) % n)
		}
	}
	s.inflight.Add(1)
	s.mu.Lock()
	s.held[m] = time.Now()
	s.mu.Unlock()
	s.queues[w] <- m // never blocks: the slots bound every queue
}

// release forgets a message this instance was holding.
func (s *subscription) release(m jetstream.Msg) {
	s.mu.Lock()
	delete(s.held, m)
	s.mu.Unlock()
	s.inflight.Add(-1)
	<-s.slots
}

func (s *subscription) work(i int) {
	defer func() {
		close(s.wdone[i])
		if s.running.Add(-1) == 0 {
			close(s.allDone)
			s.b.mu.Lock()
			delete(s.b.retiring, s)
			s.b.mu.Unlock()
		}
	}()
	s.mu.Lock()
	s.goids[i] = goid()
	s.mu.Unlock()
	q := s.queues[i]
	for {
		select {
		case m, ok := <-q:
			if !ok {
				return
			}
			s.handle(m)
		case <-s.stop:
			return
		}
	}
}

func (s *subscription) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// abandon gives a message up without handling it: a durable group's goes
// back to the group at once; a plain subscription's consumer is going away.
func (s *subscription) abandon(m jetstream.Msg) {
	if s.durable {
		_ = m.Nak()
	}
}

// handle runs the handler on one event: retries in place (which keeps the
// Subject's order), then acks, or dead-letters and terminates.
func (s *subscription) handle(m jetstream.Msg) {
	defer s.release(m)
	if s.stopped() {
		s.abandon(m)
		return
	}
	attempt, seq := 1, uint64(0)
	if md, err := m.Metadata(); err == nil {
		attempt, seq = int(md.NumDelivered), md.Sequence.Stream
	}
	e, err := decode(m.Headers(), m.Data())
	if err != nil { // not an event we can handle: retrying would not help
		if e.ID == "" {
			e.ID = m.Headers().Get(hdrMsgID)
		}
		if e.Type == "" {
			e.Type = strings.TrimPrefix(m.Subject(), s.b.name+".")
		}
		ctx := eventbus.WithDelivery(s.b.hbase, eventbus.Delivery{Subscription: s.name, Attempt: attempt, MaxAttempts: s.cfg.MaxAttempts})
		s.deadLetter(ctx, m, e, eventbus.Permanent(err), attempt, seq)
		return
	}
	for {
		ctx := eventbus.WithDelivery(s.b.hbase, eventbus.Delivery{Subscription: s.name, Attempt: attempt, MaxAttempts: s.cfg.MaxAttempts})
		err := s.call(ctx, e)
		if err == nil {
			if aerr := m.Ack(); aerr != nil {
				s.b.cfg.Logger.Warn("natsbus: ack failed; the event will be redelivered",
					"event_id", e.ID, "subscription", s.name, "err", aerr)
			}
			return
		}
		if s.b.life.Err() != nil || s.stopped() {
			s.abandon(m)
			return
		}
		if attempt >= s.cfg.MaxAttempts || eventbus.IsPermanent(err) {
			s.deadLetter(ctx, m, e, err, attempt, seq)
			return
		}
		if !s.sleep(m, eventbus.RetryDelay(s.cfg.BackoffInitial, s.cfg.BackoffMax, attempt)) {
			return
		}
		attempt++
	}
}

// call runs the handler chain, turning a panic into an *eventbus.PanicError.
func (s *subscription) call(ctx context.Context, e eventbus.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			pe := &eventbus.PanicError{Value: r, Stack: debug.Stack()}
			s.b.cfg.Logger.ErrorContext(ctx, "natsbus: handler panicked",
				"event_id", e.ID, "event_type", e.Type, "subscription", s.name,
				"panic", r, "stack", string(pe.Stack))
			err = pe
		}
	}()
	return s.handler(ctx, e)
}

// sleep waits d before a retry in place. It reports false when the event was
// given up meanwhile: on Unsubscribe or a forced Close, or, for a durable
// group, when Close starts (the server redelivers it after the rest of d).
func (s *subscription) sleep(m jetstream.Msg, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var closing <-chan struct{}
	if s.durable {
		closing = s.b.closing
	}
	start := time.Now()
	select {
	case <-t.C:
		return true
	case <-s.stop:
	case <-s.b.life.Done():
	case <-closing:
		_ = m.NakWithDelay(max(d-time.Since(start), 0))
		return false
	}
	s.abandon(m)
	return false
}

// deadLetter publishes the event to the dead-letter stream with the original
// headers and why, hands it to the dead-letter callback, and terminates it.
// If the dead-letter stream cannot take it, the event is redelivered later
// instead: it is never dropped silently.
func (s *subscription) deadLetter(ctx context.Context, m jetstream.Msg, e eventbus.Event, err error, attempts int, seq uint64) {
	b := s.b
	now := b.cfg.Now()
	h := make(nats.Header, len(m.Headers())+6)
	for k, v := range m.Headers() {
		h[k] = v
	}
	h[HeaderSubscription] = []string{s.name}
	h[HeaderConsumer] = []string{s.consumer}
	h[HeaderError] = []string{strings.NewReplacer("\r", " ", "\n", " ").Replace(err.Error())}
	h[HeaderAttempts] = []string{strconv.Itoa(attempts)}
	h[HeaderStreamSeq] = []string{strconv.FormatUint(seq, 10)}
	h[HeaderDeadTime] = []string{now.UTC().Format(time.RFC3339Nano)}
	h[hdrMsgID] = []string{e.ID + "/" + s.consumer}
	dm := &nats.Msg{
		Subject: b.dlq + "." + s.consumer + "." + strings.TrimPrefix(m.Subject(), b.name+"."),
		Header:  h,
		Data:    m.Data(),
	}
	pctx, cancel := context.WithTimeout(b.life, opTimeout)
	_, perr := b.js.PublishMsg(pctx, dm)
	cancel()
	if perr != nil {
		b.cfg.Logger.ErrorContext(ctx, "natsbus: cannot publish a dead letter; the event will be redelivered",
			"event_id", e.ID, "event_type", e.Type, "subscription", s.name, "err", perr)
		_ = m.NakWithDelay(s.cfg.BackoffMax)
		return
	}
	b.cfg.DeadLetter(ctx, eventbus.DeadLetter{Event: e, Subscription: s.name, Err: err, Attempts: attempts, Time: now})
	if terr := m.Term(); terr != nil {
		b.cfg.Logger.Warn("natsbus: terminating a dead letter failed", "event_id", e.ID, "subscription", s.name, "err", terr)
	}
}

// keep sends InProgress for events held longer than a third of the ack wait
// (queued behind others, or in a long handler or retry), so that the server
// does not redeliver them meanwhile.
func (s *subscription) keep() {
	defer close(s.keeperDone)
	t := time.NewTicker(ackWait / 3)
	defer t.Stop()
	for {
		select {
		case <-s.allDone:
			return
		case <-s.stop:
			return
		case <-s.b.life.Done():
			return
		case now := <-t.C:
			var ms []jetstream.Msg
			s.mu.Lock()
			for m, at := range s.held {
				if now.Sub(at) >= ackWait/3 {
					ms = append(ms, m)
					s.held[m] = now
				}
			}
			s.mu.Unlock()
			for _, m := range ms {
				_ = m.InProgress()
			}
		}
	}
}

func (s *subscription) isGone() bool { return s.gone.Load() }

func (s *subscription) closeStop() { s.stopOnce.Do(func() { close(s.stop) }) }

// abort stops the subscription at once (Close giving up): no more fetching,
// workers leave after their current handler.
func (s *subscription) abort() {
	s.closeStop()
	if s.cc != nil {
		s.cc.Stop()
	}
}

func (s *subscription) waitConsumeClosed(ctx context.Context) error {
	select {
	case <-s.cc.Closed():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finish is the end of a graceful Close, once fetching stopped: the workers
// handle what is queued and exit; a plain subscription's consumer is deleted.
func (s *subscription) finish(ctx context.Context) error {
	s.finished.Do(func() {
		if !s.isGone() {
			for _, q := range s.queues {
				close(q)
			}
		}
	})
	if err := s.wait(ctx); err != nil {
		return err
	}
	if !s.isGone() {
		s.deleteConsumer(ctx)
	}
	return nil
}

// wait waits until the workers and the keeper exited.
func (s *subscription) wait(ctx context.Context) error {
	for _, c := range []chan struct{}{s.allDone, s.keeperDone} {
		select {
		case <-c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *subscription) deleteConsumer(ctx context.Context) {
	if s.durable || s.consumer == "" {
		return // a durable group outlives its members
	}
	if err := s.b.js.DeleteConsumer(ctx, s.b.name, s.consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.b.cfg.Logger.Debug("natsbus: deleting an ephemeral consumer", "consumer", s.consumer, "err", err)
	}
}

// Unsubscribe stops delivery at once: what this instance fetched and did not
// start goes back to the durable group (or is dropped with a plain
// subscription's consumer, which is deleted). A handler already running
// finishes, and Unsubscribe waits for it unless called from that handler.
// The durable consumer itself is never deleted. Calling it again returns nil.
func (s *subscription) Unsubscribe() error {
	me := goid()
	s.unsub.Do(func() {
		s.gone.Store(true)
		s.b.mu.Lock()
		delete(s.b.subs, s)
		if s.running.Load() > 0 {
			s.b.retiring[s] = struct{}{}
		}
		s.b.mu.Unlock()
		s.closeStop()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if s.durable {
			// Drain: what the server already sent reaches dispatch, which
			// gives it back to the group at once.
			s.cc.Drain()
			_ = s.waitConsumeClosed(ctx)
		} else {
			s.cc.Stop()
		}
		s.mu.Lock()
		goids := append([]uint64(nil), s.goids...)
		s.mu.Unlock()
		for i, d := range s.wdone {
			if goids[i] != me {
				<-d
			}
		}
		for _, q := range s.queues {
			for drained := false; !drained; {
				select {
				case m := <-q:
					s.abandon(m)
					s.release(m)
				default:
					drained = true
				}
			}
		}
		s.deleteConsumer(ctx)
	})
	return nil
}
