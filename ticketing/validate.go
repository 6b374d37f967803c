package ticketing

import (
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of the input, as DESIGN.md fixes them.
const (
	MaxNameLen      = 200 // runes, for concert name, venue and customer name
	MaxTotalTickets = 1_000_000
	MaxEmailLen     = 254 // bytes
)

// validator collects every broken rule, so a caller learns them all at once.
type validator struct{ fields []FieldError }

func (v *validator) add(field, msg string) { v.fields = append(v.fields, FieldError{field, msg}) }

func (v *validator) err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &Error{Code: EINVALID, Message: "invalid input", Fields: v.fields}
}

// text trims s and checks it holds 1 to MaxNameLen runes of printable text.
func (v *validator) text(field, s string) string {
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		v.add(field, "must be valid UTF-8")
	case n == 0:
		v.add(field, "must not be empty")
	case n > MaxNameLen:
		v.add(field, "must be at most 200 characters")
	case strings.ContainsFunc(s, unicode.IsControl):
		v.add(field, "must not contain control characters")
	}
	return s
}

// Validate checks c against the limits and returns it normalised (names
// trimmed, currency trimmed and upper-cased, so "eur" becomes "EUR"; date in
// UTC), or an EINVALID *Error listing every broken rule. now is the current
// time: the date must be after it. The currency must be an active ISO 4217
// code (List One, see currency.go): "XYZ" is well formed but invalid.
func (c NewConcert) Validate(now time.Time) (NewConcert, error) {
	var v validator
	c.Name = v.text("name", c.Name)
	c.Venue = v.text("venue", c.Venue)
	if c.Date.IsZero() {
		v.add("date", "is required (RFC 3339)")
	} else if !c.Date.After(now) {
		v.add("date", "must be in the future")
	}
	c.Date = c.Date.UTC()
	if c.TotalTickets < 0 || c.TotalTickets > MaxTotalTickets {
		v.add("total_tickets", "must be between 0 and 1000000")
	}
	if c.TicketPriceCents < 0 {
		v.add("ticket_price_cents", "must not be negative")
	}
	// Currency codes are case-insensitive on input: "eur" is stored and
	// answered as "EUR".
	c.Currency = strings.ToUpper(strings.TrimSpace(c.Currency))
	if msg := currencyProblem(c.Currency); msg != "" {
		v.add("currency", msg)
	}
	return c, v.err()
}

// Validate checks t and returns it normalised (name trimmed), or an EINVALID
// *Error listing every broken rule. The email must be a bare address exactly
// as net/mail reads it, at most MaxEmailLen bytes.
func (t NewTicket) Validate() (NewTicket, error) {
	var v validator
	t.CustomerName = v.text("customer_name", t.CustomerName)
	switch e := t.CustomerEmail; {
	case e == "":
		v.add("customer_email", "must not be empty")
	case len(e) > MaxEmailLen:
		v.add("customer_email", "must be at most 254 characters")
	default:
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			v.add("customer_email", "must be a plain email address such as ada@example.com")
		}
	}
	return t, v.err()
}
