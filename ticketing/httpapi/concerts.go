package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/gigbus/gigbus/ticketing"
)

// concertJSON is a concert as the API shows it.
type concertJSON struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Venue            string `json:"venue"`
	Date             string `json:"date"` // RFC 3339
	TotalTickets     int    `json:"total_tickets"`
	AvailableTickets int    `json:"available_tickets"`
	TicketPriceCents int64  `json:"ticket_price_cents"`
	Currency         string `json:"currency"`
}

func toConcertJSON(c ticketing.Concert) concertJSON {
	return concertJSON{
		ID:               c.ID,
		Name:             c.Name,
		Venue:            c.Venue,
		Date:             c.Date.UTC().Format(time.RFC3339Nano),
		TotalTickets:     c.TotalTickets,
		AvailableTickets: c.AvailableTickets,
		TicketPriceCents: c.TicketPriceCents,
		Currency:         c.Currency,
	}
}

// newConcertJSON is the body of POST /api/concerts. Date is a string so a
// badly formatted date is an invalid value (422), not a type error (400).
type newConcertJSON struct {
	Name             string `json:"name"`
	Venue            string `json:"venue"`
	Date             string `json:"date"`
	TotalTickets     int    `json:"total_tickets"`
	TicketPriceCents int64  `json:"ticket_price_cents"`
	Currency         string `json:"currency"`
}

func (s *Server) addConcert(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var in newConcertJSON
	if !decodeJSON(w, body, &in) {
		return
	}
	nc := ticketing.NewConcert{
		Name:             in.Name,
		Venue:            in.Venue,
		TotalTickets:     in.TotalTickets,
		TicketPriceCents: in.TicketPriceCents,
		Currency:         in.Currency,
	}
	var dateErr *ticketing.FieldError
	if in.Date == "" {
		dateErr = &ticketing.FieldError{Field: "date", Message: "is required (RFC 3339, e.g. 2027-06-01T20:00:00Z)"}
	} else if d, err := time.Parse(time.RFC3339, in.Date); err != nil {
		dateErr = &ticketing.FieldError{Field: "date", Message: "must be an RFC 3339 date, e.g. 2027-06-01T20:00:00Z"}
	} else {
		nc.Date = d
	}
	if dateErr != nil {
		// Report the date with every other broken rule at once.
		nc.Date = time.Now().Add(24 * time.Hour)
		_, err := nc.Validate(time.Now())
		fields := []ticketing.FieldError{*dateErr}
		if e, ok := errors.AsType[*ticketing.Error](err); ok {
			fields = append(fields, e.Fields...)
		}
		s.writeError(w, r, &ticketing.Error{Code: ticketing.EINVALID, Message: "invalid input", Fields: fields})
		return
	}
	c, err := s.cfg.Concerts.AddConcert(r.Context(), nc)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/concerts/"+c.ID)
	writeJSON(w, http.StatusCreated, toConcertJSON(c))
}

func (s *Server) listConcerts(w http.ResponseWriter, r *http.Request) {
	cs, err := s.cfg.Concerts.ListConcerts(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]concertJSON, len(cs))
	for i, c := range cs {
		out[i] = toConcertJSON(c)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getConcert(w http.ResponseWriter, r *http.Request) {
	c, err := s.cfg.Concerts.GetConcert(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toConcertJSON(c))
}
