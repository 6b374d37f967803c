package eventbus

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gigbus/gigbus/eventbus/internal/goid"
)

// member is one Subscribe call: its handler, policy and workers, taking from
// its queue (its own, or its durable group's).
type member struct {
	q        *queue
	cfg      SubscribeConfig
	handler  Handler       // the wrapped chain: bus middleware, Use middleware, handler
	stop     chan struct{} // closed by Unsubscribe: workers leave, retries give up
	stopped  bool          // guarded by q.mu
	stopping atomic.Bool   // stopped, readable without q.mu
	wg       sync.WaitGroup
	goids    []uint64 // worker goroutine ids, guarded by q.mu
	once     sync.Once
}

func (m *member) run(w int) {
	defer m.q.bus.wg.Done()
	defer m.wg.Done()
	q, b := m.q, m.q.bus
	id := goid.Get()
	q.mu.Lock()
	m.goids = append(m.goids, id)
	q.mu.Unlock()
	b.workers.Store(id, struct{}{})
	defer b.workers.Delete(id)

	hc := new(handlerCtx) // reused while the publisher's context stays the same; see deliver
	var batch []taken
	for {
		q.mu.Lock()
		if !m.stopped && !q.shut && q.ready.len() == 0 {
			// Parking a goroutine and waking it again costs more than a
			// few yields when events arrive back to back. Yield without
			// the lock, so that publishers are not slowed down.
			q.mu.Unlock()
			for i := 0; i < maxSpins && q.queued.Load() == 0 && !m.stopping.Load(); i++ {
				runtime.Gosched()
			}
			q.mu.Lock()
		}
		for !m.stopped && !q.shut && q.ready.len() == 0 {
			q.work.Wait()
		}
		if m.stopped || q.ready.len() == 0 { // stopped, or shut down and drained
			q.mu.Unlock()
			return
		}
		// Take a batch, so that a busy queue costs one lock round trip per
		// batch rather than per event; with several workers, take only a
		// fair share so that the others are not left idle.
		workers := max(q.workers, 1)
		n := min(maxBatch, (q.ready.len()+workers-1)/workers)
		batch = batch[:0]
		for range n {
			it, sq := q.take()
			batch = append(batch, taken{it, sq})
		}
		q.mu.Unlock()

		for i := range batch {
			if m.stopping.Load() || b.life.Err() != nil {
				b.finish(int64(i))
				m.giveBack(batch[i:])
				clear(batch)
				return
			}
			t := &batch[i]
			q.started()
			var gaveBack bool
			hc, gaveBack = m.deliver(hc, t.it, batch[i+1:])
			if t.sq != nil {
				q.mu.Lock()
				q.done(t.sq)
				q.mu.Unlock()
			}
			if gaveBack {
				batch = batch[:i+1]
				break
			}
		}
		b.finish(int64(len(batch)))
		clear(batch[:cap(batch)]) // drop references to payloads
	}
}

// maxSpins is how often an idle worker yields before it parks.
const maxSpins = 3

// maxBatch bounds how many events a worker takes at once.
const maxBatch = 32

type taken struct {
	it item
	sq *subjectQueue
}

// giveBack returns events a worker took but did not start, in order, to the
// front of the queue for the group's other members; if the queue is shut down
// or the bus was closed by force, they are dropped.
func (m *member) giveBack(rest []taken) {
	q, b := m.q, m.q.bus
	q.mu.Lock()
	if q.shut || b.life.Err() != nil {
		for _, t := range rest {
			if t.sq != nil {
				q.done(t.sq)
			}
		}
		q.mu.Unlock()
		b.finish(int64(len(rest)))
		return
	}
	for i := len(rest) - 1; i >= 0; i-- {
		t := rest[i]
		if t.sq != nil {
			t.sq.items.pushFront(t.it)
			q.done(t.sq) // puts the subject back in the ready ring
		} else {
			q.ready.pushFront(entry{it: t.it})
		}
	}
	q.work.Broadcast()
	q.mu.Unlock()
}

// deliver handles one event: attempts, backoff, dead letter. hc is the
// previous attempt's context; it is reused when it would be identical (same
// publisher context, first attempt), since a context must never change under
// a handler that kept it. rest is the rest of the worker's batch: before it
// waits to retry, deliver gives rest back to the queue (gaveBack), so that
// one failing event does not hold up the events of other subjects while
// other workers are idle.
func (m *member) deliver(hc *handlerCtx, it item, rest []taken) (_ *handlerCtx, gaveBack bool) {
	b := m.q.bus
	for attempt := 1; ; attempt++ {
		if !(attempt == 1 && hc.attempt == 1 && isBackground(it.ctx) && hc.parent == it.ctx) {
			hc = &handlerCtx{parent: it.ctx, bus: b, sub: m.q.name, attempt: attempt, max: m.cfg.MaxAttempts}
		}
		err := m.call(hc, it.ev)
		if err == nil {
			return hc, gaveBack
		}
		if attempt >= m.cfg.MaxAttempts || IsPermanent(err) {
			b.deadLetter(hc, DeadLetter{Event: it.ev, Subscription: m.q.name, Err: err, Attempts: attempt, Time: time.Now()})
			return hc, gaveBack
		}
		if !gaveBack && len(rest) > 0 {
			m.giveBack(rest)
			gaveBack = true
		}
		if !m.sleep(RetryDelay(m.cfg.BackoffInitial, m.cfg.BackoffMax, attempt)) {
			// Unsubscribed, or the bus was closed by force, while waiting to
			// retry: give up now, but never silently.
			b.deadLetter(hc, DeadLetter{Event: it.ev, Subscription: m.q.name, Err: err, Attempts: attempt, Time: time.Now()})
			return hc, gaveBack
		}
	}
}

// call runs the handler chain, turning a panic into a *PanicError.
func (m *member) call(ctx context.Context, e Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			pe := &PanicError{Value: r, Stack: debug.Stack()}
			m.q.bus.cfg.Logger.ErrorContext(ctx, "eventbus: handler panicked",
				"event_id", e.ID, "event_type", e.Type, "subscription", m.q.name,
				"panic", r, "stack", string(pe.Stack))
			err = pe
		}
	}()
	return m.handler(ctx, e)
}

// sleep waits d, reporting false if the member stopped or the bus was closed
// by force meanwhile.
func (m *member) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.stop:
		return false
	case <-m.q.bus.life.Done():
		return false
	}
}

// RetryDelay is the delay before attempt+1 after attempt failed: initial
// doubled per failed attempt, capped at max, with "equal jitter" (half fixed,
// half random) so that retries of many events do not fall into step.
// Transports use it to apply a subscription's Backoff.
func RetryDelay(initial, max time.Duration, attempt int) time.Duration {
	d := initial
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(half+1)
}

// Permanent marks err as not worth retrying: the event is dead-lettered after
// this attempt. Decoding failures of typed handlers are permanent.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err (or an error it wraps) was marked with Permanent.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }
