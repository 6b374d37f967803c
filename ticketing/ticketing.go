package ticketing

import "time"

// Concert is a concert and its inventory. AvailableTickets is changed only by
// ConcertService; it is never negative and never above TotalTickets. Times are UTC.
type Concert struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	Venue            string    `json:"venue"`
	Date             time.Time `json:"date"`
	TotalTickets     int       `json:"total_tickets"`
	AvailableTickets int       `json:"available_tickets"`
	TicketPriceCents int64     `json:"ticket_price_cents"` // integer minor units of Currency
	Currency         string    `json:"currency"`           // ISO 4217, upper case
	CreatedAt        time.Time `json:"created_at"`
}

// TicketStatus is where a ticket is in the purchase saga.
type TicketStatus string

// The ticket statuses. A ticket starts pending; the ConcertService's answer
// makes it confirmed or rejected; a confirmed ticket may be cancelled.
const (
	StatusPending   TicketStatus = "pending"
	StatusConfirmed TicketStatus = "confirmed"
	StatusRejected  TicketStatus = "rejected"
	StatusCancelled TicketStatus = "cancelled"
)

// Ticket is one buyer's ticket (or request for one) for a concert. It is
// changed only by TicketService. Times are UTC.
type Ticket struct {
	ID            string       `json:"id"`
	ConcertID     string       `json:"concert_id"`
	CustomerName  string       `json:"customer_name"`
	CustomerEmail string       `json:"customer_email"`
	Status        TicketStatus `json:"status"`
	Reason        string       `json:"reason,omitempty"` // why it was rejected: RejectSoldOut or RejectUnknownConcert
	PurchasedAt   time.Time    `json:"purchased_at"`     // when it was requested
	UpdatedAt     time.Time    `json:"updated_at"`
}

// NewConcert is the input of ConcertService.AddConcert.
type NewConcert struct {
	Name             string
	Venue            string
	Date             time.Time
	TotalTickets     int
	TicketPriceCents int64
	Currency         string
}

// NewTicket is the input of TicketService.PurchaseTicket.
type NewTicket struct {
	CustomerName  string
	CustomerEmail string
}
