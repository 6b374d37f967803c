package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gigbus/gigbus/ticketing"
)

// ticketJSON is a ticket as the API shows it.
type ticketJSON struct {
	ID            string `json:"id"`
	ConcertID     string `json:"concert_id"`
	CustomerName  string `json:"customer_name"`
	CustomerEmail string `json:"customer_email"`
	Status        string `json:"status"`
	PurchasedAt   string `json:"purchased_at"` // RFC 3339
}

func toTicketJSON(t ticketing.Ticket) ticketJSON {
	return ticketJSON{
		ID:            t.ID,
		ConcertID:     t.ConcertID,
		CustomerName:  t.CustomerName,
		CustomerEmail: t.CustomerEmail,
		Status:        string(t.Status),
		PurchasedAt:   t.PurchasedAt.UTC().Format(time.RFC3339Nano),
	}
}

// newTicketJSON is the body of POST /api/concerts/{id}/tickets.
type newTicketJSON struct {
	CustomerName  string `json:"customer_name"`
	CustomerEmail string `json:"customer_email"`
}

// answer is a complete response, kept so an Idempotency-Key can replay it.
type answer struct {
	status int
	header map[string]string
	body   []byte
}

func (a answer) write(w http.ResponseWriter) {
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	writeRaw(w, a.status, a.header["Content-Type"], a.body)
}

// purchaseTicket starts the purchase saga and waits (at most PurchaseWait)
// for its outcome: 201 confirmed, 409 sold out, or 202 still pending.
func (s *Server) purchaseTicket(w http.ResponseWriter, r *http.Request) {
	concertID := r.PathValue("id")
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var in newTicketJSON
	if !decodeJSON(w, body, &in) {
		return
	}
	nt := ticketing.NewTicket{CustomerName: in.CustomerName, CustomerEmail: in.CustomerEmail}
	// Validate before the idempotency key is claimed: invalid requests are
	// not stored, so the client may fix the body and retry with the same key.
	norm, err := nt.Validate()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key, useKey, ok := s.idempotencyKey(w, r)
	if !ok {
		return
	}
	if !useKey {
		s.purchase(r, concertID, nt).write(w)
		return
	}
	scope := "purchase:" + concertID
	fp, err := purchaseFingerprint(concertID, norm)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rec, err := s.cfg.Idempotency.Reserve(r.Context(), scope, key, fp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if rec != nil {
		s.replay(w, r, rec, sameRequest(rec.Fingerprint, fp, r, body))
		return
	}
	a := s.purchase(r, concertID, nt)
	// Store the outcome of a purchase that happened (201, 202, 409); forget
	// the key when nothing was bought (404, 500), so a retry can succeed.
	ctx := context.WithoutCancel(r.Context())
	switch a.status {
	case http.StatusCreated, http.StatusAccepted, http.StatusConflict:
		err = s.cfg.Idempotency.Complete(ctx, scope, key, a.status, a.header, a.body)
	default:
		err = s.cfg.Idempotency.Release(ctx, scope, key)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "httpapi: store idempotent answer", "scope", scope, "err", err)
	}
	a.write(w)
}

// purchase buys a ticket and waits for its outcome.
func (s *Server) purchase(r *http.Request, concertID string, nt ticketing.NewTicket) answer {
	t, err := s.cfg.Tickets.PurchaseTicket(r.Context(), concertID, nt)
	if err != nil {
		return s.errorAnswer(r, err)
	}
	return s.outcome(r, t)
}

// outcome waits (bounded) for t's outcome and renders it.
func (s *Server) outcome(r *http.Request, t ticketing.Ticket) answer {
	if got, err := s.await(r, t.ID); err == nil {
		t = got
	}
	return s.render(r, t)
}

// await waits at most PurchaseWait for ticket id to leave pending.
func (s *Server) await(r *http.Request, id string) (ticketing.Ticket, error) {
	ctx, cancel := s.waitCtx(r.Context())
	defer cancel()
	t, err := s.cfg.Tickets.AwaitOutcome(ctx, id)
	if err != nil && ticketing.ErrorCode(err) != ticketing.ENOTFOUND {
		s.log.ErrorContext(r.Context(), "httpapi: await outcome", "ticket", id, "err", err)
	}
	return t, err
}

// render answers a purchase by its ticket's status.
func (s *Server) render(r *http.Request, t ticketing.Ticket) answer {
	location := "/api/tickets/" + t.ID
	switch t.Status {
	case ticketing.StatusPending:
		a := jsonAnswer(http.StatusAccepted, toTicketJSON(t))
		a.header["Location"] = location
		return a
	case ticketing.StatusRejected:
		code := ticketing.ESOLDOUT
		msg := "the concert is sold out"
		if t.Reason == ticketing.RejectUnknownConcert {
			code, msg = ticketing.ENOTFOUND, "concert not found"
		}
		p := s.problemFor(r, ticketing.Errorf(code, "%s", msg))
		p.TicketID = t.ID
		a := problemAnswer(p)
		a.header["Location"] = location
		return a
	default: // confirmed (or, replaying an old purchase, cancelled since)
		a := jsonAnswer(http.StatusCreated, toTicketJSON(t))
		a.header["Location"] = location
		return a
	}
}

// replay answers a request whose Idempotency-Key was seen before; same
// tells whether rec was stored for this request (see sameRequest).
//
// A stored 202 is not replayed verbatim: the purchase it started may have
// settled since, so the ticket is awaited again (bounded by PurchaseWait)
// and its current outcome returned (201, 409 or still 202). The stored
// record itself is not changed.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, rec *ticketing.IdempotentResponse, same bool) {
	switch {
	case !same:
		writeProblem(w, newProblem(http.StatusUnprocessableEntity, ProblemIdempotencyReused, "Idempotency-Key reused",
			"this Idempotency-Key was used for a different request; use a new key for a new purchase"))
	case !rec.Done:
		w.Header().Set("Retry-After", "1")
		writeProblem(w, newProblem(http.StatusConflict, ProblemIdempotencyInUse, "Idempotency-Key in use",
			"the first request with this Idempotency-Key is still running; retry shortly"))
	case rec.Status == http.StatusAccepted:
		var t ticketJSON
		if err := json.Unmarshal(rec.Body, &t); err != nil || t.ID == "" {
			s.writeError(w, r, errors.New("httpapi: stored 202 answer has no ticket"))
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		if now, err := s.await(r, t.ID); err == nil {
			s.render(r, now).write(w)
			return
		}
		answer{status: rec.Status, header: rec.Header, body: rec.Body}.write(w)
	default:
		w.Header().Set("Idempotent-Replayed", "true")
		answer{status: rec.Status, header: rec.Header, body: rec.Body}.write(w)
	}
}

func jsonAnswer(status int, v any) answer {
	body, err := marshal(v)
	if err != nil {
		return problemAnswer(internalProblem())
	}
	return answer{status: status, header: map[string]string{"Content-Type": "application/json"}, body: body}
}

func (s *Server) errorAnswer(r *http.Request, err error) answer {
	return problemAnswer(s.problemFor(r, err))
}

func (s *Server) getTicket(w http.ResponseWriter, r *http.Request) {
	t, err := s.cfg.Tickets.GetTicket(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTicketJSON(t))
}

// cancelTicket cancels a confirmed ticket; it takes no body.
func (s *Server) cancelTicket(w http.ResponseWriter, r *http.Request) {
	t, err := s.cfg.Tickets.CancelTicket(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTicketJSON(t))
}
