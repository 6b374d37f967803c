package ticketing

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gigbus/gigbus/eventbus"
)

// Durable subscription names of NotificationService's handlers.
const (
	SubNotifyConcertAdded    = "notification-service.concert-added"
	SubNotifyTicketPurchased = "notification-service.ticket-purchased"
)

// Notification is one message to send.
type Notification struct {
	To        string // recipient address; empty for an announcement to everyone
	Subject   string
	Body      string
	ConcertID string
	TicketID  string // empty for an announcement
	EventID   string // the event it answers: use it as the idempotency key
}

// Sender delivers notifications (ticketing/notify: log, SMTP, webhook).
// Send may be called again for the same EventID after a crash or a retry
// (at-least-once); a sender that can deduplicate should key on EventID.
// Implementations must be safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, n Notification) error
}

// SenderFunc adapts a function to a Sender.
type SenderFunc func(ctx context.Context, n Notification) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, n Notification) error { return f(ctx, n) }

// NotificationService announces new concerts and confirms purchases. It owns
// no tables but its inbox records. Safe for concurrent use.
//
// Delivery is at least once: a handler skips an event its inbox already
// records, sends, and records it after the send succeeded. A crash (or a
// failing commit) between the send and the record sends again on
// redelivery; the record is not taken before sending because a failed send
// would then be lost, and sending inside the write transaction would hold
// the store's writer for the length of a network call.
type NotificationService struct {
	store  Store
	sender Sender
	opts   options
	subs   subscriptions
}

// NewNotificationService returns a NotificationService sending through
// sender (nil discards). Call Register to subscribe its handlers.
func NewNotificationService(store Store, sender Sender, opts ...Option) *NotificationService {
	if sender == nil {
		sender = SenderFunc(func(context.Context, Notification) error { return nil })
	}
	return &NotificationService{store: store, sender: sender, opts: newOptions(opts)}
}

// Register subscribes the service's handlers to bus (durable groups
// SubNotifyConcertAdded and SubNotifyTicketPurchased).
func (s *NotificationService) Register(bus eventbus.Bus) error {
	if err := s.subs.subscribe(bus, s.opts, EventConcertAdded, SubNotifyConcertAdded, s.handleConcertAdded); err != nil {
		return err
	}
	return s.subs.subscribe(bus, s.opts, EventTicketPurchased, SubNotifyTicketPurchased, s.handleTicketPurchased)
}

// Unregister unsubscribes what Register subscribed.
func (s *NotificationService) Unregister() error { return s.subs.unsubscribe() }

func (s *NotificationService) handleConcertAdded(ctx context.Context, e eventbus.Event) error {
	c, err := decode[ConcertAdded](e)
	if err != nil {
		return err
	}
	return s.sendOnce(ctx, SubNotifyConcertAdded, e, Notification{
		Subject:   "New concert: " + c.Name,
		Body:      fmt.Sprintf("%s at %s on %s. %d tickets at %s.", c.Name, c.Venue, c.Date.Format("Mon 2 Jan 2006 15:04 MST"), c.TotalTickets, FormatPrice(c.TicketPriceCents, c.Currency)),
		ConcertID: c.ConcertID,
	})
}

func (s *NotificationService) handleTicketPurchased(ctx context.Context, e eventbus.Event) error {
	p, err := decode[TicketPurchased](e)
	if err != nil {
		return err
	}
	return s.sendOnce(ctx, SubNotifyTicketPurchased, e, Notification{
		To:      p.CustomerEmail,
		Subject: "Your ticket for " + p.ConcertName,
		Body: fmt.Sprintf("Hello %s, your ticket %s for %s at %s on %s is confirmed (%s).",
			p.CustomerName, p.TicketID, p.ConcertName, p.Venue, p.Date.Format("Mon 2 Jan 2006 15:04 MST"), FormatPrice(p.TicketPriceCents, p.Currency)),
		ConcertID: p.ConcertID,
		TicketID:  p.TicketID,
	})
}

func (s *NotificationService) sendOnce(ctx context.Context, sub string, e eventbus.Event, n Notification) error {
	var done bool
	err := s.store.View(ctx, func(tx ReadTx) (err error) {
		done, err = tx.Processed(ctx, sub, e.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("ticketing: %s: %w", sub, err)
	}
	if done {
		return nil
	}
	n.EventID = e.ID
	if err := s.sender.Send(ctx, n); err != nil {
		return fmt.Errorf("ticketing: %s: send %s: %w", sub, e.ID, err)
	}
	return inTx(ctx, s.store, sub, e, func(tx Tx) error {
		_, err := tx.MarkProcessed(ctx, sub, e.ID)
		return err
	})
}

// FormatPrice renders minor units as an amount with its currency, e.g.
// "99.99 EUR". It assumes two decimals, which holds for most ISO 4217 codes.
func FormatPrice(cents int64, currency string) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	frac := strconv.FormatInt(cents%100, 10)
	if len(frac) == 1 {
		frac = "0" + frac
	}
	return sign + strconv.FormatInt(cents/100, 10) + "." + frac + " " + currency
}
