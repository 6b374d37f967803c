package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gigbus/gigbus/ticketing"
)

// Problem type URIs (RFC 9457 "type"). They are stable: clients may branch
// on them. Each type has one title; the detail describes the occurrence.
const (
	ProblemBase              = "https://gigbus.dev/problems/"
	ProblemMalformed         = ProblemBase + "malformed-request"      // 400
	ProblemValidation        = ProblemBase + "validation-error"       // 422, with errors
	ProblemSoldOut           = ProblemBase + "sold-out"               // 409, with ticket_id
	ProblemConflict          = ProblemBase + "conflict"               // 409
	ProblemIdempotencyReused = ProblemBase + "idempotency-key-reused" // 422
	ProblemIdempotencyInUse  = ProblemBase + "idempotency-key-in-use" // 409
	ProblemNotFound          = ProblemBase + "not-found"              // 404
	ProblemUnauthorized      = ProblemBase + "unauthorized"           // 401
	ProblemTooLarge          = ProblemBase + "request-too-large"      // 413
	ProblemInternal          = ProblemBase + "internal-error"         // 500
	ProblemMethodNotAllowed  = ProblemBase + "method-not-allowed"     // 405, with Allow
	ProblemUnavailable       = ProblemBase + "service-unavailable"    // 503
)

// Problem is an RFC 9457 problem detail, the body of every error answer.
type Problem struct {
	Type     string                 `json:"type"`
	Title    string                 `json:"title"`
	Status   int                    `json:"status"`
	Detail   string                 `json:"detail"`
	Instance string                 `json:"instance,omitempty"`
	Errors   []ticketing.FieldError `json:"errors,omitempty"`    // validation-error: every invalid field
	TicketID string                 `json:"ticket_id,omitempty"` // sold-out: the rejected ticket
}

func newProblem(status int, typ, title, detail string) *Problem {
	return &Problem{Type: typ, Title: title, Status: status, Detail: detail}
}

// problemFor maps an error of the ticketing services to its HTTP problem.
// It is the one place where error codes become statuses. Anything that is
// not a ticketing.Error (or is EINTERNAL) is a 500 whose detail reveals
// nothing: the error itself is logged.
func (s *Server) problemFor(r *http.Request, err error) *Problem {
	msg := ticketing.ErrorMessage(err)
	switch ticketing.ErrorCode(err) {
	case ticketing.EINVALID:
		p := newProblem(http.StatusUnprocessableEntity, ProblemValidation, "Invalid request", msg)
		if e, ok := errors.AsType[*ticketing.Error](err); ok {
			p.Errors = e.Fields
		}
		return p
	case ticketing.ENOTFOUND:
		return newProblem(http.StatusNotFound, ProblemNotFound, "Not found", msg)
	case ticketing.ESOLDOUT:
		return newProblem(http.StatusConflict, ProblemSoldOut, "Sold out", msg)
	case ticketing.ECONFLICT:
		return newProblem(http.StatusConflict, ProblemConflict, "Conflict", msg)
	default:
		s.log.ErrorContext(r.Context(), "httpapi: internal error",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		return internalProblem()
	}
}

func internalProblem() *Problem {
	return newProblem(http.StatusInternalServerError, ProblemInternal, "Internal server error",
		"the server could not complete the request; the error has been logged")
}

// writeError answers err as problem+json.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	writeProblem(w, s.problemFor(r, err))
}

func writeProblem(w http.ResponseWriter, p *Problem) { problemAnswer(p).write(w) }

// problemAnswer is p as an answer: problem+json, never cached. Every problem
// the API sends is built here, the stored answers of idempotent requests
// included.
func problemAnswer(p *Problem) answer {
	if p.Detail == "" {
		p.Detail = p.Title
	}
	body, err := marshal(p)
	if err != nil { // a Problem always marshals; be safe anyway
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"internal error"}` + "\n")
	}
	return answer{status: p.Status, header: map[string]string{
		"Content-Type": "application/problem+json", "Cache-Control": "no-store",
	}, body: body}
}
