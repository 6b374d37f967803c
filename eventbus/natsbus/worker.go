package natsbus

import (
	"context"
	"hash/fnv"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/internal/goid"
)

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
	s.goids[i] = goid.Get()
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
	consumer := s.bound.Load().consumer
	now := b.cfg.Now()
	h := make(nats.Header, len(m.Headers())+6)
	for k, v := range m.Headers() {
		h[k] = v
	}
	h[HeaderSubscription] = []string{s.name}
	h[HeaderConsumer] = []string{consumer}
	h[HeaderError] = []string{strings.NewReplacer("\r", " ", "\n", " ").Replace(err.Error())}
	h[HeaderAttempts] = []string{strconv.Itoa(attempts)}
	h[HeaderStreamSeq] = []string{strconv.FormatUint(seq, 10)}
	h[HeaderDeadTime] = []string{now.UTC().Format(time.RFC3339Nano)}
	h[hdrMsgID] = []string{e.ID + "/" + consumer}
	dm := &nats.Msg{
		Subject: b.dlq + "." + consumer + "." + strings.TrimPrefix(m.Subject(), b.name+"."),
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
