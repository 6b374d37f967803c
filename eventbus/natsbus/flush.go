package natsbus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gigbus/gigbus/eventbus"
)

// Flush waits until every consumer of this bus is idle: every event stored
// for its filter up to the stream's last sequence is acked (or terminated),
// nothing is in flight in this process, and the last sequence did not move
// while checking; so events that handlers publish meanwhile are waited for
// too, and so is the work of other members of this bus's durable groups.
// Called from inside a handler it returns ErrInHandler at once.
func (b *Bus) Flush(ctx context.Context) error {
	if b.inHandler(ctx) {
		return fmt.Errorf("natsbus: Flush: %w", eventbus.ErrInHandler)
	}
	return b.waitIdle(ctx, func(ctx context.Context) (bool, string, error) {
		return b.idle(ctx, b.active(), b.retired())
	})
}

// retired returns the unsubscribed subscriptions whose workers still run.
func (b *Bus) retired() []*subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Collect(maps.Keys(b.retiring))
}

// active returns the bus's current subscriptions.
func (b *Bus) active() []*subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Collect(maps.Keys(b.subs))
}

// waitIdle polls idle (see Bus.idle and Bus.drained) until it holds.
func (b *Bus) waitIdle(ctx context.Context, idle func(context.Context) (bool, string, error)) error {
	delay := 500 * time.Microsecond
	var t *time.Timer
	busy := ""
	for {
		if b.nc.IsClosed() {
			return fmt.Errorf("natsbus: waiting until idle: %w", nats.ErrConnectionClosed)
		}
		// Each check gets a short deadline of its own: a request lost in a
		// reconnection must not hold Flush until ctx ends.
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, why, err := idle(cctx)
		cancel()
		if ok {
			return nil
		}
		if why != "" {
			busy = why
		} else if err != nil {
			busy = err.Error()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("natsbus: waiting until idle (last seen busy: %s): %w", busy, ctx.Err())
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrDisconnected) &&
			!errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) {
			b.cfg.Logger.DebugContext(ctx, "natsbus: checking idleness", "err", err)
		}
		if t == nil {
			t = time.NewTimer(delay)
			defer t.Stop()
		} else {
			t.Reset(delay)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("natsbus: waiting until idle (last seen busy: %s): %w", busy, ctx.Err())
		}
		delay = min(delay*2, 20*time.Millisecond)
	}
}

// idle reports whether every subscription in check has acked everything
// stored for its filter and nothing is in flight here for check and local.
//
// A consumer's NumPending lags the stream under load, so the test is the
// ack floor against the last message stored for the consumer's filter, and
// the stream's last sequence must not move while checking: a handler
// publishes before it acks, so an event it published is seen either in the
// last sequence read first, or as a move of it.
func (b *Bus) idle(ctx context.Context, check, local []*subscription) (bool, string, error) {
	for _, s := range local {
		if n := len(s.slots); n > 0 {
			return false, fmt.Sprintf("%s holds %d events", s.name, n), nil
		}
	}
	for _, s := range check {
		if n := len(s.slots); n > 0 {
			return false, fmt.Sprintf("%s holds %d events", s.name, n), nil
		}
	}
	if len(check) == 0 {
		return true, "", nil
	}
	last, err := b.lastSeq(ctx)
	if err != nil {
		return false, "", err
	}
	lastFor := map[string]uint64{}
	for _, s := range check {
		bd := s.bound.Load()
		ci, err := bd.cons.Info(ctx)
		if err != nil {
			if s.isGone() {
				continue
			}
			return false, "", err
		}
		if ci.NumAckPending > 0 || ci.NumPending > 0 {
			return false, fmt.Sprintf("consumer %s: %d pending, %d ack pending", bd.consumer, ci.NumPending, ci.NumAckPending), nil
		}
		if floor := ci.AckFloor.Stream; floor < last {
			if s.all {
				return false, fmt.Sprintf("consumer %s: ack floor %d, last %d", bd.consumer, floor, last), nil
			}
			l, ok := lastFor[s.filter]
			if !ok {
				m, err := b.stream.GetLastMsgForSubject(ctx, s.filter)
				switch {
				case errors.Is(err, jetstream.ErrMsgNotFound):
				case err != nil:
					return false, "", err
				default:
					l = m.Sequence
				}
				lastFor[s.filter] = l
			}
			if l > floor {
				return false, fmt.Sprintf("consumer %s: ack floor %d, last for its filter %d", bd.consumer, floor, l), nil
			}
		}
		if n := len(s.slots); n > 0 {
			return false, fmt.Sprintf("%s holds %d events", s.name, n), nil
		}
	}
	again, err := b.lastSeq(ctx)
	if err != nil || again != last {
		return false, "the stream grew", err
	}
	return true, "", nil
}

func (b *Bus) lastSeq(ctx context.Context) (uint64, error) {
	si, err := b.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return si.State.LastSeq, nil
}

// drained is Close's test for plain subscriptions: every event stored for
// them up to start (the stream's last sequence when Close began), or
// published by this bus since (its handlers, while draining), is acked; and
// nothing is in flight here for local. Events other instances publish after
// start do not hold Close.
func (b *Bus) drained(ctx context.Context, start uint64, plain, local []*subscription) (bool, string, error) {
	for _, s := range local {
		if n := len(s.slots); n > 0 {
			return false, fmt.Sprintf("%s holds %d events", s.name, n), nil
		}
	}
	target := max(start, b.lastPub.Load())
	for _, s := range plain {
		bd := s.bound.Load()
		ci, err := bd.cons.Info(ctx)
		if err != nil {
			if s.isGone() {
				continue
			}
			return false, "", err
		}
		floor := ci.AckFloor.Stream
		switch {
		case floor >= target: // everything up to target acked
			continue
		case ci.NumAckPending > 0:
			return false, fmt.Sprintf("consumer %s: %d ack pending", bd.consumer, ci.NumAckPending), nil
		case ci.Delivered.Stream >= target: // delivered up to target, all acked
			continue
		}
		last, err := b.lastSeq(ctx)
		if err != nil {
			return false, "", err
		}
		if !s.all && last > floor {
			m, err := b.stream.GetLastMsgForSubject(ctx, s.filter)
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				last = 0
			case err != nil:
				return false, "", err
			default:
				last = m.Sequence
			}
		}
		if last > floor {
			return false, fmt.Sprintf("consumer %s: ack floor %d, last for its filter %d", bd.consumer, floor, last), nil
		}
	}
	if max(start, b.lastPub.Load()) != target {
		return false, "this bus published meanwhile", nil
	}
	return true, "", nil
}
