package ticketing

import (
	"context"
	"sync"
	"time"

	"github.com/gigbus/gigbus/eventbus"
)

// Durable subscription names of TicketService's handlers.
const (
	SubTicketPurchased = "ticket-service.ticket-purchased"
	SubTicketRejected  = "ticket-service.ticket-rejected"
)

// outcomePoll is how often AwaitOutcome re-reads a pending ticket, for
// outcomes written by another process (e.g. with NATS); in-process outcomes
// wake it at once.
const outcomePoll = 250 * time.Millisecond

// TicketService owns the tickets. It starts the purchase saga, applies the
// ConcertService's answer, and cancels confirmed tickets. Safe for concurrent use.
type TicketService struct {
	store   Store
	opts    options
	subs    subscriptions
	waiters waiters
}

// NewTicketService returns a TicketService on store. Call Register to
// subscribe its handlers.
func NewTicketService(store Store, opts ...Option) *TicketService {
	return &TicketService{store: store, opts: newOptions(opts), waiters: waiters{m: map[string][]chan outcome{}}}
}

// PurchaseTicket validates nt, checks the concert exists, and stores a
// pending ticket with a TicketRequested event in one transaction. The
// outcome (confirmed or rejected) arrives asynchronously: see AwaitOutcome.
// Errors: EINVALID, ENOTFOUND (no such concert).
func (s *TicketService) PurchaseTicket(ctx context.Context, concertID string, nt NewTicket) (Ticket, error) {
	nt, err := nt.Validate()
	if err != nil {
		return Ticket{}, err
	}
	// Reading the concerts table is fine; only ConcertService writes it.
	err = s.store.View(ctx, func(tx ReadTx) error {
		_, err := tx.Concert(ctx, concertID)
		return err
	})
	if err != nil {
		return Ticket{}, err
	}
	now := s.opts.now().UTC()
	t := Ticket{
		ID:            newID(),
		ConcertID:     concertID,
		CustomerName:  nt.CustomerName,
		CustomerEmail: nt.CustomerEmail,
		Status:        StatusPending,
		PurchasedAt:   now,
		UpdatedAt:     now,
	}
	err = s.store.Update(ctx, func(tx Tx) error {
		if err := tx.CreateTicket(ctx, t); err != nil {
			return err
		}
		return tx.Append(ctx, eventbus.Event{
			Type:    EventTicketRequested,
			Source:  SourceTicketService,
			Subject: t.ID,
			Time:    now,
			Data: TicketRequested{
				TicketID: t.ID, ConcertID: concertID,
				CustomerName: t.CustomerName, CustomerEmail: t.CustomerEmail, RequestedAt: now,
			},
		})
	})
	if err != nil {
		return Ticket{}, err
	}
	return t, nil
}

// GetTicket returns the ticket with id. Errors: ENOTFOUND.
func (s *TicketService) GetTicket(ctx context.Context, id string) (Ticket, error) {
	var t Ticket
	err := s.store.View(ctx, func(tx ReadTx) (err error) {
		t, err = tx.Ticket(ctx, id)
		return err
	})
	return t, err
}

// CancelTicket cancels a confirmed ticket and appends TicketCancelled (the
// ConcertService then puts the seat back). Cancelling a cancelled ticket
// changes nothing and returns it. Errors: ENOTFOUND; ECONFLICT for a
// pending or rejected ticket.
//
// Only the cancel that moves the ticket from confirmed appends the event:
// on a store where another writer may cancel it between the read and the
// conditional update, the loser returns the ticket as it is then, so each
// ticket gives its seat back once.
func (s *TicketService) CancelTicket(ctx context.Context, id string) (Ticket, error) {
	var t Ticket
	err := s.store.Update(ctx, func(tx Tx) (err error) {
		t, err = tx.Ticket(ctx, id)
		if err != nil {
			return err
		}
		if t.Status != StatusConfirmed {
			return notCancellable(t)
		}
		now := s.opts.now().UTC()
		moved, err := tx.SetTicketStatus(ctx, id, StatusConfirmed, StatusCancelled, "", now)
		if err != nil {
			return err
		}
		if !moved {
			// Changed since the read: answer for the ticket as it is now.
			if t, err = tx.Ticket(ctx, id); err != nil {
				return err
			}
			if t.Status == StatusConfirmed { // cannot be: it did not move from confirmed
				return Errorf(ECONFLICT, "ticket %s changed while being cancelled; try again", id)
			}
			return notCancellable(t)
		}
		t.Status, t.UpdatedAt = StatusCancelled, now
		return tx.Append(ctx, eventbus.Event{
			Type:    EventTicketCancelled,
			Source:  SourceTicketService,
			Subject: t.ID,
			Time:    now,
			Data:    TicketCancelled{TicketID: id, ConcertID: t.ConcertID},
		})
	})
	if err != nil {
		return Ticket{}, err
	}
	return t, nil
}

// notCancellable answers a cancel of t, which is not confirmed: nil for a
// cancelled ticket (nothing to do), else the conflict.
func notCancellable(t Ticket) error {
	switch t.Status {
	case StatusCancelled:
		return nil
	case StatusPending:
		return Errorf(ECONFLICT, "ticket %s is still pending; try again once it is confirmed", t.ID)
	case StatusRejected:
		return Errorf(ECONFLICT, "ticket %s was rejected; there is nothing to cancel", t.ID)
	}
	return Errorf(ECONFLICT, "ticket %s is %s; it cannot be cancelled", t.ID, t.Status)
}

// AwaitOutcome waits until the ticket is no longer pending and returns it.
// When ctx ends first it returns the ticket as it is (still pending) and no
// error; the caller bounds the wait with ctx. Errors: ENOTFOUND.
func (s *TicketService) AwaitOutcome(ctx context.Context, id string) (Ticket, error) {
	// Register before reading, so a change committed in between still wakes us.
	ch := s.waiters.add(id)
	defer s.waiters.remove(id, ch)
	var poll *time.Timer
	for {
		// Read with a context of our own: ctx ending is the normal way out.
		t, err := s.GetTicket(context.WithoutCancel(ctx), id)
		if err != nil || t.Status != StatusPending {
			return t, err
		}
		if poll == nil {
			poll = time.NewTimer(outcomePoll)
			defer poll.Stop()
		} else {
			poll.Reset(outcomePoll)
		}
		select {
		case <-ctx.Done():
			return t, nil
		case o := <-ch:
			// The handler that settled the ticket says how; no need to read it again.
			t.Status, t.Reason, t.UpdatedAt = o.status, o.reason, o.at
			return t, nil
		case <-poll.C:
		}
	}
}

// Register subscribes the service's handlers to bus (durable groups
// SubTicketPurchased and SubTicketRejected).
func (s *TicketService) Register(bus eventbus.Bus) error {
	if err := s.subs.subscribe(bus, s.opts, EventTicketPurchased, SubTicketPurchased, s.handleTicketPurchased); err != nil {
		return err
	}
	return s.subs.subscribe(bus, s.opts, EventTicketRejected, SubTicketRejected, s.handleTicketRejected)
}

// Unregister unsubscribes what Register subscribed.
func (s *TicketService) Unregister() error { return s.subs.unsubscribe() }

func (s *TicketService) handleTicketPurchased(ctx context.Context, e eventbus.Event) error {
	p, err := decode[TicketPurchased](e)
	if err != nil {
		return err
	}
	return s.settle(ctx, SubTicketPurchased, e, p.TicketID, StatusConfirmed, "")
}

func (s *TicketService) handleTicketRejected(ctx context.Context, e eventbus.Event) error {
	r, err := decode[TicketRejected](e)
	if err != nil {
		return err
	}
	return s.settle(ctx, SubTicketRejected, e, r.TicketID, StatusRejected, r.Reason)
}

// settle moves a pending ticket to its outcome, once, and wakes its waiters.
func (s *TicketService) settle(ctx context.Context, sub string, e eventbus.Event, id string, to TicketStatus, reason string) error {
	moved := false
	at := s.opts.now().UTC()
	err := inTx(ctx, s.store, sub, e, func(tx Tx) error {
		first, err := tx.MarkProcessed(ctx, sub, e.ID)
		if err != nil || !first {
			return err
		}
		moved, err = tx.SetTicketStatus(ctx, id, StatusPending, to, reason, at)
		return err
	})
	if err != nil {
		return err
	}
	if moved {
		s.waiters.wake(id, outcome{to, reason, at})
	} else {
		s.opts.logger.DebugContext(ctx, "ticketing: outcome for a ticket that is not pending", "ticket_id", id, "event_id", e.ID, "status", to)
	}
	return nil
}

// waiters wakes AwaitOutcome calls when a handler in this process settles
// their ticket, telling them the outcome.
type waiters struct {
	mu sync.Mutex
	m  map[string][]chan outcome
}

// outcome is how a pending ticket was settled.
type outcome struct {
	status TicketStatus
	reason string
	at     time.Time
}

func (w *waiters) add(id string) chan outcome {
	ch := make(chan outcome, 1)
	w.mu.Lock()
	w.m[id] = append(w.m[id], ch)
	w.mu.Unlock()
	return ch
}

func (w *waiters) remove(id string, ch chan outcome) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.m[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.m, id)
	} else {
		w.m[id] = list
	}
}

func (w *waiters) wake(id string, o outcome) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.m[id] {
		select {
		case ch <- o:
		default:
		}
	}
}
