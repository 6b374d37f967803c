package natsbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/internal/goid"
)

// subscription is one Subscribe call: a pull consumer (its own ephemeral
// one, or its durable group's), a dispatcher that partitions what it fetches
// by the event's Subject over Concurrency workers, and a keeper that holds
// the acks of long-held events.
type subscription struct {
	b       *Bus
	typ     string
	filter  string // <stream>.<type>, or <stream>.> for "*"
	all     bool
	name    string // Durable name, or generated
	durable bool
	cfg     eventbus.SubscribeConfig
	handler eventbus.Handler        // bus middleware, Use middleware, handler
	bound   atomic.Pointer[binding] // the consumer and what consumes it; repair replaces it

	slots  chan struct{}        // QueueSize bounds what this instance holds; len: fetched and not yet acked, nakked or terminated here
	queues []chan jetstream.Msg // one per worker
	rr     atomic.Uint32        // round robin for events without a Subject

	stop     chan struct{} // closed by Unsubscribe or a forced Close: leave at once
	stopOnce sync.Once
	gone     atomic.Bool // unsubscribed
	unsub    sync.Once
	finished sync.Once

	running    atomic.Int32
	allDone    chan struct{} // closed when the last worker exited
	keeperDone chan struct{}
	wdone      []chan struct{}

	repairs sync.WaitGroup

	mu           sync.Mutex
	held         map[jetstream.Msg]time.Time // when each held event was fetched or last kept alive
	goids        []uint64                    // the workers' goroutine ids
	ending       bool                        // Close or Unsubscribe took the binding: no more repairs
	repairing    bool
	repairCancel context.CancelFunc
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
	chain := eventbus.Chain(h, append(slices.Clone(b.cfg.Middleware), cfg.Middleware...)...)
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
		base := eventbus.HandlerName(h) + "@" + eventType
		b.names[base]++
		s.name = base
		if n := b.names[base]; n > 1 {
			s.name = base + "#" + strconv.Itoa(n)
		}
	}
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(b.life, opTimeout)
	defer cancel()
	cons, err := s.createConsumer(ctx)
	if err != nil {
		return nil, err
	}
	bd := &binding{cons: cons, consumer: cons.CachedInfo().Name}

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

	s.bound.Store(bd) // before consuming: workers read it (bd.cc is set before anyone else reads it)
	if err := s.consume(bd); err != nil {
		s.closeStop()
		s.deleteConsumer(ctx, bd.consumer)
		return nil, fmt.Errorf("natsbus: Subscribe %s: %w", eventType, err)
	}

	b.mu.Lock()
	if b.state != open {
		b.mu.Unlock()
		s.abort()
		s.deleteConsumer(ctx, bd.consumer)
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

func (s *subscription) isGone() bool { return s.gone.Load() }

func (s *subscription) closeStop() { s.stopOnce.Do(func() { close(s.stop) }) }

// abort stops the subscription at once (Close giving up): no more fetching,
// workers leave after their current handler.
func (s *subscription) abort() {
	s.closeStop()
	s.end().cc.Stop()
}

func (s *subscription) waitConsumeClosed(ctx context.Context) error {
	select {
	case <-s.bound.Load().cc.Closed():
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
		s.deleteConsumer(ctx, s.bound.Load().consumer)
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
	s.repairs.Wait() // ended: a repair under way gives up at once
	return nil
}

func (s *subscription) deleteConsumer(ctx context.Context, consumer string) {
	if s.durable || consumer == "" {
		return // a durable group outlives its members
	}
	if err := s.b.js.DeleteConsumer(ctx, s.b.name, consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.b.cfg.Logger.Debug("natsbus: deleting an ephemeral consumer", "consumer", consumer, "err", err)
	}
}

// Unsubscribe stops delivery at once: what this instance fetched and did not
// start goes back to the durable group (or is dropped with a plain
// subscription's consumer, which is deleted). A handler already running
// finishes, and Unsubscribe waits for it unless called from that handler.
// The durable consumer itself is never deleted. Calling it again returns nil.
func (s *subscription) Unsubscribe() error {
	me := goid.Get()
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
		bd := s.end()
		if s.durable {
			// Drain: what the server already sent reaches dispatch, which
			// gives it back to the group at once.
			bd.cc.Drain()
			_ = s.waitConsumeClosed(ctx)
		} else {
			bd.cc.Stop()
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
		s.repairs.Wait()
		s.deleteConsumer(ctx, bd.consumer)
	})
	return nil
}
