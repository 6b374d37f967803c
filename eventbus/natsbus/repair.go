package natsbus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// binding is a subscription's consumer and the Consume that feeds it.
type binding struct {
	cons     jetstream.Consumer
	cc       jetstream.ConsumeContext
	consumer string // its name
}

// consume starts fetching from bd's consumer into dispatch.
func (s *subscription) consume(bd *binding) error {
	b := s.b
	var err error
	// The consumer's MaxAckPending (QueueSize) is what bounds the events this
	// instance holds; pull batches are no smaller than 64, since nats.go's
	// Consume can miss a re-pull with tiny batches (its heartbeat check then
	// recovers, hence a short heartbeat).
	bd.cc, err = bd.cons.Consume(s.dispatch,
		jetstream.PullMaxMessages(max(s.cfg.QueueSize, 64)),
		jetstream.PullHeartbeat(2*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			switch {
			case errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound):
				// An operator deleted it, or the server lost it (restarted
				// without its store, or removed an ephemeral consumer after
				// an outage longer than its inactive threshold).
				b.cfg.Logger.Warn("natsbus: the consumer is gone; recreating it", "subscription", s.name, "consumer", bd.consumer, "err", err)
				s.startRepair()
			case errors.Is(err, nats.ErrNoResponders):
				// Normal for a moment while a server restarts; repair checks
				// whether it came back with its JetStream state.
				b.cfg.Logger.Warn("natsbus: the consumer does not answer", "subscription", s.name, "consumer", bd.consumer, "err", err)
				s.startRepair()
			default:
				b.cfg.Logger.Debug("natsbus: consuming", "subscription", s.name, "consumer", bd.consumer, "err", err)
			}
		}))
	return err
}

// end takes the binding for good (Close, Unsubscribe): no repair replaces it
// afterwards, and one under way gives up.
func (s *subscription) end() *binding {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ending = true
	if s.repairCancel != nil {
		s.repairCancel()
	}
	return s.bound.Load()
}

// startRepair starts repair unless it runs already or the subscription ends.
func (s *subscription) startRepair() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ending || s.repairing {
		return
	}
	s.repairing = true
	ctx, cancel := context.WithCancel(s.b.life)
	s.repairCancel = cancel
	s.repairs.Add(1)
	go s.repair(ctx)
}

// repair waits until the server answers again; if it lost the consumer (or
// the whole stream), it creates them again and consumes from the new
// consumer, which, like a new one, starts with new events.
func (s *subscription) repair(ctx context.Context) {
	defer s.repairs.Done()
	defer func() {
		s.mu.Lock()
		s.repairing = false
		s.repairCancel()
		s.mu.Unlock()
	}()
	delay := 250 * time.Millisecond
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		rctx, cancel := context.WithTimeout(ctx, opTimeout)
		done := s.tryRepair(rctx)
		cancel()
		if done {
			return
		}
		delay = min(2*delay, 5*time.Second)
		t.Reset(delay)
	}
}

// tryRepair reports whether the subscription is bound to a live consumer.
func (s *subscription) tryRepair(ctx context.Context) bool {
	b := s.b
	old := s.bound.Load()
	_, err := old.cons.Info(ctx)
	switch {
	case err == nil:
		return true // the server came back with its state: Consume resumes by itself
	case !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound):
		return false // not answering yet
	}
	for _, name := range []string{b.name, b.dlq} {
		if _, err := ensureStream(ctx, b.js, name); err != nil {
			return false
		}
	}
	cons, err := s.createConsumer(ctx)
	if err != nil {
		return false
	}
	bd := &binding{cons: cons, consumer: cons.CachedInfo().Name}
	if err := s.consume(bd); err != nil {
		s.deleteConsumer(ctx, bd.consumer)
		return false
	}
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		bd.cc.Stop()
		s.deleteConsumer(ctx, bd.consumer)
		return true
	}
	s.bound.Store(bd)
	s.mu.Unlock()
	old.cc.Stop()
	b.cfg.Logger.Warn("natsbus: consumer recreated; it starts with new events", "subscription", s.name, "consumer", bd.consumer)
	return true
}
