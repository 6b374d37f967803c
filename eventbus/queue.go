package eventbus

import (
	"context"
	"sync"
	"sync/atomic"
)

// A queue holds the events of one subscription, or of one durable group, whose
// members' workers all take from it. That makes the group the unit of work
// sharing: when a member leaves, its unstarted events are simply still there
// for the others.
//
// Per-subject order with any number of workers: events without a Subject go
// straight to the ready ring; the events of one Subject wait in that
// subject's own ring, and the subject sits in the ready ring (once) only while
// none of its events is being handled. A worker that takes a subject handles
// its oldest event and puts the subject back at the tail when done, so two
// events of one subject never run at once and never overtake each other, and
// subjects take turns fairly. Every step is O(1).
type queue struct {
	bus     *MemoryBus
	name    string // Durable name, or the generated name of a plain subscription
	typ     string
	durable bool
	cfg     SubscribeConfig // the first member's policy; later members should match

	mu       sync.Mutex
	work     sync.Cond // signalled when an entry becomes ready or a member stops
	ready    ring[entry]
	subjects map[string]*subjectQueue
	free     []*subjectQueue // recycled subject queues, to avoid an allocation per new subject
	queued   atomic.Int64    // events not yet started, workers' batches included; read without mu by publishers
	room     chan struct{}   // closed when an event starts, if publishers wait for room
	wantRoom atomic.Bool     // room != nil
	members  []*member
	workers  int  // workers of members not stopped
	shut     bool // no more work: the bus shut down or the last member left
}

// entry is one element of the ready ring: an event without a Subject, or a
// subject whose oldest event is ready.
type entry struct {
	it item
	sq *subjectQueue
}

type item struct {
	ev  Event
	ctx context.Context // the publisher's, for its values only
}

type subjectQueue struct {
	subject string
	items   ring[item]
}

func newQueue(b *MemoryBus, name, typ string, durable bool, cfg SubscribeConfig) *queue {
	q := &queue{bus: b, name: name, typ: typ, durable: durable, cfg: cfg, subjects: make(map[string]*subjectQueue)}
	q.work.L = &q.mu
	return q
}

// full reports, without locking, whether outside publishers should wait.
func (q *queue) full() bool { return q.queued.Load() >= int64(q.cfg.QueueSize) }

// waitRoom blocks until the queue has room, the queue shuts down, or ctx ends.
func (q *queue) waitRoom(ctx context.Context) error {
	for {
		q.mu.Lock()
		if !q.full() || q.shut {
			q.mu.Unlock()
			return nil
		}
		if q.room == nil {
			q.room = make(chan struct{})
			q.wantRoom.Store(true)
		}
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// push queues it regardless of the bound (publishers check the bound first).
// It reports false when the queue no longer takes events.
func (q *queue) push(it item) bool {
	q.mu.Lock()
	if q.shut {
		q.mu.Unlock()
		return false
	}
	q.queued.Add(1)
	if it.ev.Subject == "" {
		q.ready.push(entry{it: it})
	} else if sq := q.subjects[it.ev.Subject]; sq != nil {
		// The subject is ready or being handled: either way its worker
		// will come back for this event in order.
		sq.items.push(it)
		q.mu.Unlock()
		return true
	} else {
		sq := q.newSubject(it.ev.Subject)
		sq.items.push(it)
		q.ready.push(entry{sq: sq})
	}
	q.mu.Unlock()
	q.work.Signal()
	return true
}

func (q *queue) newSubject(s string) *subjectQueue {
	var sq *subjectQueue
	if n := len(q.free); n > 0 {
		sq, q.free = q.free[n-1], q.free[:n-1]
	} else {
		sq = new(subjectQueue)
	}
	sq.subject = s
	q.subjects[s] = sq
	return sq
}

// take removes the next ready event; mu must be held and ready non-empty.
// The returned subject queue (if any) is busy until done is called with it.
func (q *queue) take() (item, *subjectQueue) {
	e := q.ready.pop()
	it := e.it
	if e.sq != nil {
		it = e.sq.items.pop()
	}
	return it, e.sq
}

// started counts an event taken by a worker as no longer queued, and lets
// waiting publishers in if that made room. An event counts against
// QueueSize until it starts, so a worker's batch is inside the bound.
func (q *queue) started() {
	if q.queued.Add(-1) < int64(q.cfg.QueueSize) && q.wantRoom.Load() {
		q.mu.Lock()
		if q.room != nil && !q.full() {
			close(q.room)
			q.room = nil
			q.wantRoom.Store(false)
		}
		q.mu.Unlock()
	}
}

// done ends the handling of an event taken from sq; mu must be held.
func (q *queue) done(sq *subjectQueue) {
	if sq == nil {
		return
	}
	if sq.items.len() > 0 {
		q.ready.push(entry{sq: sq})
		q.work.Signal()
		return
	}
	delete(q.subjects, sq.subject)
	sq.subject = ""
	if len(q.free) < 64 {
		q.free = append(q.free, sq)
	}
}

// shutdown stops the queue and drops what it holds; mu must be held. It
// returns how many events were dropped.
func (q *queue) shutdown() int {
	q.shut = true
	dropped := q.ready.len()
	for q.ready.len() > 0 {
		if e := q.ready.pop(); e.sq != nil {
			dropped += e.sq.items.len() - 1
			e.sq.items.clear()
		}
	}
	// Subjects being handled right now are not in the ready ring.
	for _, sq := range q.subjects {
		dropped += sq.items.len()
		sq.items.clear()
	}
	q.queued.Store(0)
	if q.room != nil {
		close(q.room)
		q.room = nil
		q.wantRoom.Store(false)
	}
	q.work.Broadcast()
	return dropped
}
