package eventbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// deadLetters keeps the most recent dead letters for inspection and replay.
type deadLetters struct {
	mu   sync.Mutex
	keep int
	list ring[DeadLetter]
}

// deadLetter records dl and hands it to the dead-letter callback, once.
func (b *MemoryBus) deadLetter(ctx context.Context, dl DeadLetter) {
	if b.dead.keep > 0 {
		b.dead.mu.Lock()
		if b.dead.list.len() >= b.dead.keep {
			b.dead.list.pop()
		}
		b.dead.list.push(dl)
		b.dead.mu.Unlock()
	}
	b.cfg.DeadLetter(ctx, dl)
}

// DeadLetters returns the most recent dead letters, oldest first (at most
// the number set by WithDeadLetterKeep).
func (b *MemoryBus) DeadLetters() []DeadLetter {
	b.dead.mu.Lock()
	defer b.dead.mu.Unlock()
	out := make([]DeadLetter, 0, b.dead.list.len())
	for i := range b.dead.list.len() {
		out = append(out, b.dead.list.buf[(b.dead.list.head+i)&(len(b.dead.list.buf)-1)])
	}
	return out
}

// ErrNoSubscription is returned by Replay when the dead letter's subscription
// no longer exists.
var ErrNoSubscription = errors.New("eventbus: no such subscription")

// Replay queues a dead letter's event again, at its subscription only (other
// subscriptions already handled it), and forgets the dead letter. It waits
// for room like Publish. Replay the event with Publish instead to send it to
// every subscriber again.
func (b *MemoryBus) Replay(ctx context.Context, dl DeadLetter) error {
	inHandler := b.fromHandler(ctx)
	if b.rejects(inHandler) {
		return ErrClosed
	}
	b.mu.Lock()
	var q *queue
	for _, x := range b.queues {
		if x.name == dl.Subscription && (x.typ == dl.Event.Type || x.typ == "*") {
			q = x
			break
		}
	}
	b.mu.Unlock()
	if q == nil {
		return fmt.Errorf("eventbus: replay %s to %q: %w", dl.Event.ID, dl.Subscription, ErrNoSubscription)
	}
	if err := q.waitRoom(ctx); err != nil {
		return err
	}
	// As in Publish: count the delivery before checking for Close, so that
	// Close either waits for it or this call sees the bus closed.
	b.pending.Add(1)
	if b.rejects(inHandler) {
		b.finish(1)
		return ErrClosed
	}
	if !q.push(item{ev: dl.Event, ctx: bgCtx}) {
		b.finish(1)
		if b.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("eventbus: replay %s to %q: %w", dl.Event.ID, dl.Subscription, ErrNoSubscription)
	}
	b.forget(dl)
	return nil
}

func (b *MemoryBus) forget(dl DeadLetter) {
	b.dead.mu.Lock()
	defer b.dead.mu.Unlock()
	var keep ring[DeadLetter]
	for b.dead.list.len() > 0 {
		x := b.dead.list.pop()
		if x.Event.ID != dl.Event.ID || x.Subscription != dl.Subscription {
			keep.push(x)
		}
	}
	b.dead.list = keep
}
