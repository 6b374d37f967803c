package ticketing

import "time"

// Event types (eventbus.Event.Type) of the saga.
const (
	EventConcertAdded    = "ConcertAdded"
	EventTicketRequested = "TicketRequested"
	EventTicketPurchased = "TicketPurchased"
	EventTicketRejected  = "TicketRejected"
	EventTicketCancelled = "TicketCancelled"
)

// Event sources (eventbus.Event.Source), one per service.
const (
	SourceConcertService      = "concert-service"
	SourceTicketService       = "ticket-service"
	SourceNotificationService = "notification-service"
)

// Reasons a ticket is rejected (TicketRejected.Reason, Ticket.Reason).
const (
	RejectSoldOut        = "sold_out"
	RejectUnknownConcert = "unknown_concert"
)

// The event payloads are immutable values, never the entities. They travel as
// Event.Data: as these values in-process and as JSON after a wire or the
// outbox; read them with eventbus.Decode. The Subject of ConcertAdded is the
// concert id; the Subject of every ticket event is the ticket id.

// ConcertAdded is published by ConcertService when a concert is added.
type ConcertAdded struct {
	ConcertID        string    `json:"concert_id"`
	Name             string    `json:"name"`
	Venue            string    `json:"venue"`
	Date             time.Time `json:"date"`
	TotalTickets     int       `json:"total_tickets"`
	TicketPriceCents int64     `json:"ticket_price_cents"`
	Currency         string    `json:"currency"`
}

// TicketRequested is published by TicketService when a buyer asks for a
// ticket; the ticket is pending until ConcertService answers.
type TicketRequested struct {
	TicketID      string    `json:"ticket_id"`
	ConcertID     string    `json:"concert_id"`
	CustomerName  string    `json:"customer_name"`
	CustomerEmail string    `json:"customer_email"`
	RequestedAt   time.Time `json:"requested_at"`
}

// TicketPurchased is published by ConcertService once it reserved a seat for
// the ticket. It carries what the confirmation needs (the buyer and the
// concert), so NotificationService reads no other service's tables.
type TicketPurchased struct {
	TicketID         string    `json:"ticket_id"`
	ConcertID        string    `json:"concert_id"`
	ConcertName      string    `json:"concert_name"`
	Venue            string    `json:"venue"`
	Date             time.Time `json:"date"`
	CustomerName     string    `json:"customer_name"`
	CustomerEmail    string    `json:"customer_email"`
	TicketPriceCents int64     `json:"ticket_price_cents"`
	Currency         string    `json:"currency"`
	AvailableTickets int       `json:"available_tickets"` // seats left after this one
}

// TicketRejected is published by ConcertService when it cannot reserve a
// seat: Reason is RejectSoldOut or RejectUnknownConcert.
type TicketRejected struct {
	TicketID  string `json:"ticket_id"`
	ConcertID string `json:"concert_id"`
	Reason    string `json:"reason"`
}

// TicketCancelled is published by TicketService when a confirmed ticket is
// cancelled; ConcertService puts the seat back.
type TicketCancelled struct {
	TicketID  string `json:"ticket_id"`
	ConcertID string `json:"concert_id"`
}
