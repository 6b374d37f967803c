package ticketing

import (
	"context"

	"github.com/gigbus/gigbus/eventbus"
)

// Durable subscription names of ConcertService's handlers.
const (
	SubConcertTicketRequested = "concert-service.ticket-requested"
	SubConcertTicketCancelled = "concert-service.ticket-cancelled"
)

// ConcertService owns the concerts and their inventory: it is the only writer
// of AvailableTickets. It reserves a seat for each TicketRequested (or
// rejects it) and puts a seat back for each TicketCancelled. Safe for
// concurrent use.
type ConcertService struct {
	store Store
	opts  options
	subs  subscriptions
}

// NewConcertService returns a ConcertService on store. Call Register to
// subscribe its handlers.
func NewConcertService(store Store, opts ...Option) *ConcertService {
	return &ConcertService{store: store, opts: newOptions(opts)}
}

// AddConcert validates nc, stores the concert with every ticket available and
// appends ConcertAdded, in one transaction. Errors: EINVALID.
func (s *ConcertService) AddConcert(ctx context.Context, nc NewConcert) (Concert, error) {
	now := s.opts.now().UTC()
	nc, err := nc.Validate(now)
	if err != nil {
		return Concert{}, err
	}
	c := Concert{
		ID:               newID(),
		Name:             nc.Name,
		Venue:            nc.Venue,
		Date:             nc.Date,
		TotalTickets:     nc.TotalTickets,
		AvailableTickets: nc.TotalTickets,
		TicketPriceCents: nc.TicketPriceCents,
		Currency:         nc.Currency,
		CreatedAt:        now,
	}
	err = s.store.Update(ctx, func(tx Tx) error {
		if err := tx.CreateConcert(ctx, c); err != nil {
			return err
		}
		return tx.Append(ctx, eventbus.Event{
			Type:    EventConcertAdded,
			Source:  SourceConcertService,
			Subject: c.ID,
			Time:    now,
			Data: ConcertAdded{
				ConcertID: c.ID, Name: c.Name, Venue: c.Venue, Date: c.Date,
				TotalTickets: c.TotalTickets, TicketPriceCents: c.TicketPriceCents, Currency: c.Currency,
			},
		})
	})
	if err != nil {
		return Concert{}, err
	}
	return c, nil
}

// GetConcert returns the concert with id. Errors: ENOTFOUND.
func (s *ConcertService) GetConcert(ctx context.Context, id string) (Concert, error) {
	var c Concert
	err := s.store.View(ctx, func(tx ReadTx) (err error) {
		c, err = tx.Concert(ctx, id)
		return err
	})
	return c, err
}

// ListConcerts returns every concert, by date.
func (s *ConcertService) ListConcerts(ctx context.Context) ([]Concert, error) {
	var cs []Concert
	err := s.store.View(ctx, func(tx ReadTx) (err error) {
		cs, err = tx.Concerts(ctx)
		return err
	})
	return cs, err
}

// Register subscribes the service's handlers to bus (durable groups
// SubConcertTicketRequested and SubConcertTicketCancelled).
func (s *ConcertService) Register(bus eventbus.Bus) error {
	if err := s.subs.subscribe(bus, s.opts, EventTicketRequested, SubConcertTicketRequested, s.handleTicketRequested); err != nil {
		return err
	}
	return s.subs.subscribe(bus, s.opts, EventTicketCancelled, SubConcertTicketCancelled, s.handleTicketCancelled)
}

// Unregister unsubscribes what Register subscribed.
func (s *ConcertService) Unregister() error { return s.subs.unsubscribe() }

// handleTicketRequested is the no-oversell rule: in one transaction it
// records the event, takes a seat only if one is left (the store's
// conditional decrement, never a read-then-write) and appends the answer.
func (s *ConcertService) handleTicketRequested(ctx context.Context, e eventbus.Event) error {
	req, err := decode[TicketRequested](e)
	if err != nil {
		return err
	}
	return inTx(ctx, s.store, SubConcertTicketRequested, e, func(tx Tx) error {
		if first, err := tx.MarkProcessed(ctx, SubConcertTicketRequested, e.ID); err != nil || !first {
			return err
		}
		c, ok, err := tx.ReserveSeat(ctx, req.ConcertID)
		reason := RejectSoldOut
		switch {
		case ErrorCode(err) == ENOTFOUND:
			reason = RejectUnknownConcert
		case err != nil:
			return err
		case ok:
			return tx.Append(ctx, eventbus.Event{
				Type:    EventTicketPurchased,
				Source:  SourceConcertService,
				Subject: req.TicketID,
				Time:    s.opts.now().UTC(),
				Meta:    e.Meta,
				Data: TicketPurchased{
					TicketID: req.TicketID, ConcertID: c.ID, ConcertName: c.Name, Venue: c.Venue, Date: c.Date,
					CustomerName: req.CustomerName, CustomerEmail: req.CustomerEmail,
					TicketPriceCents: c.TicketPriceCents, Currency: c.Currency, AvailableTickets: c.AvailableTickets,
				},
			})
		}
		return tx.Append(ctx, eventbus.Event{
			Type:    EventTicketRejected,
			Source:  SourceConcertService,
			Subject: req.TicketID,
			Time:    s.opts.now().UTC(),
			Meta:    e.Meta,
			Data:    TicketRejected{TicketID: req.TicketID, ConcertID: req.ConcertID, Reason: reason},
		})
	})
}

// handleTicketCancelled puts the seat back. The inbox makes a redelivery a
// no-op, and TicketService emits one TicketCancelled per ticket, so each
// cancelled ticket returns exactly one seat.
func (s *ConcertService) handleTicketCancelled(ctx context.Context, e eventbus.Event) error {
	tc, err := decode[TicketCancelled](e)
	if err != nil {
		return err
	}
	return inTx(ctx, s.store, SubConcertTicketCancelled, e, func(tx Tx) error {
		if first, err := tx.MarkProcessed(ctx, SubConcertTicketCancelled, e.ID); err != nil || !first {
			return err
		}
		ok, err := tx.ReleaseSeat(ctx, tc.ConcertID)
		if err != nil {
			return err
		}
		if !ok {
			s.opts.logger.WarnContext(ctx, "ticketing: cancelled ticket's seat not returned: all seats available",
				"concert_id", tc.ConcertID, "ticket_id", tc.TicketID, "event_id", e.ID)
		}
		return nil
	})
}
