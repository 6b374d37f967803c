// Package httpapi serves ticketd's HTTP API (DESIGN.md, "The ticketing
// system"): the JSON endpoints for concerts and tickets, the Server-Sent
// Events stream of the bus, /healthz and /metrics. Errors are RFC 9457
// problem+json, mapped from ticketing's error codes in one function.
//
// # Purchases and Idempotency-Key
//
// POST /api/concerts/{id}/tickets starts the purchase saga and waits up to
// Config.PurchaseWait for its outcome: 201 with the confirmed ticket, 409
// sold out (problem+json with ticket_id), or 202 with Location to poll.
//
// An Idempotency-Key (printable ASCII, at most 255 characters) is scoped to
// the concert; the request's fingerprint is a hash of its method, concert
// and decoded, validated body (re-marshalled, with the name trimmed), so
// the same purchase with its JSON keys in another order or other whitespace
// is the same request. (Fingerprints stored by the previous version, a
// hash of the exact body bytes, have no "v2:" prefix; they still match a
// retry with the same bytes, so keys survive an upgrade.) Invalid requests
// (400, 422) are answered before the key is claimed, so they are not
// stored. The first request with a key
// stores its 201, 202 or 409; a 404 or 500 releases the key. Then the same
// key with the same request replays the stored answer (with
// Idempotent-Replayed: true), except that a stored 202 is refreshed: the
// ticket is awaited again and its current outcome returned, so a client
// retrying a slow purchase learns how it ended. The same key with another
// request (another buyer) is 422 idempotency-key-reused; while the first
// request runs it is 409 idempotency-key-in-use. cmd/ticketd purges keys
// older than 24 hours.
//
// # Event stream
//
// GET /api/events sends every bus event as one CloudEvent (JSON, on one
// data: line) with an increasing id: line; Last-Event-ID resumes from a
// ring of recent events. Clients that fall behind are disconnected rather
// than slowing the bus. The public stream keeps only ids, status, reason
// and seats left of ticket events; the admin token (Authorization: Bearer,
// or ?token=) unlocks the full events.
//
// Ids are per process: they mean nothing to another instance, nor always
// after a restart. When Last-Event-ID is older than the ring reaches (the
// events after it were pushed out, or were sent before this process
// started), or is at or above the next id this process will give out (it
// came from another instance, or from before a restart), the stream does
// not pretend nothing was missed: its first message, before the events the
// ring still holds, is
//
//	id: <the id of the last event missed>
//	event: reset
//	data: {"specversion":"1.0","type":"reset","source":"/api/events",...,
//	       "data":{"reason":"events-missed","last_event_id":"<as sent>","reload":true,"detail":"..."}}
//
// (one data: line). A client should then reload the state it derives from
// the stream (GET /api/concerts, its tickets) and keep reading. The reset's
// id means a client that reconnects again resumes after the gap, so it is
// not told twice. (The events of ticketing are capitalised names, never
// "reset".)
package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
)

// Defaults of Config.
const (
	DefaultPurchaseWait = 3 * time.Second
	DefaultHeartbeat    = 20 * time.Second
	DefaultSSEBuffer    = 1024 // events kept for Last-Event-ID
	DefaultSSEClientBuf = 256  // events a client may lag behind before it is dropped
	DefaultSSEWrite     = 10 * time.Second
)

// Config is what New needs.
type Config struct {
	Concerts *ticketing.ConcertService // required
	Tickets  *ticketing.TicketService  // required
	// Idempotency keeps Idempotency-Key answers; nil ignores the header.
	Idempotency ticketing.IdempotencyStore
	// Bus is what GET /api/events streams; nil disables the stream (503).
	Bus eventbus.Bus
	// AdminToken guards POST /api/concerts and the full event stream.
	// Empty means no request is admin.
	AdminToken string
	// PurchaseWait bounds how long a purchase waits for its outcome before
	// answering 202 (default DefaultPurchaseWait).
	PurchaseWait time.Duration
	// Heartbeat is the SSE comment interval (default DefaultHeartbeat).
	Heartbeat time.Duration
	// SSEBuffer is how many recent events Last-Event-ID can resume from
	// (default DefaultSSEBuffer); SSEClientBuffer how many events one client
	// may lag behind before it is disconnected (default DefaultSSEClientBuf).
	SSEBuffer, SSEClientBuffer int
	// SSEWriteTimeout bounds each write to an SSE client (default
	// DefaultSSEWrite); it replaces the server's WriteTimeout for streams.
	SSEWriteTimeout time.Duration
	// Registry receives the HTTP metrics and is served at /metrics (with
	// whatever else is registered on it, e.g. the bus metrics). Nil: a
	// private registry.
	Registry *prometheus.Registry
	// Page serves the web page: "/", "/tickets/{id}", "/topology" and the
	// assets under "/static/" (ticketing/httpapi/web); nil serves none.
	Page   http.Handler
	Logger *slog.Logger // nil: slog.Default()
}

// Server is the HTTP API. It is an http.Handler, safe for concurrent use.
// Close it (before http.Server.Shutdown) to end the event streams, which
// would otherwise hold Shutdown until its deadline.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	stream  *stream // nil without a bus
	metrics *httpMetrics
}

// New builds the API on cfg. It subscribes to every event of cfg.Bus (a
// plain, non-durable subscription) for the event stream.
func New(cfg Config) (*Server, error) {
	if cfg.Concerts == nil || cfg.Tickets == nil {
		return nil, errors.New("httpapi: Config needs Concerts and Tickets")
	}
	if cfg.PurchaseWait <= 0 {
		cfg.PurchaseWait = DefaultPurchaseWait
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.SSEBuffer <= 0 {
		cfg.SSEBuffer = DefaultSSEBuffer
	}
	if cfg.SSEClientBuffer <= 0 {
		cfg.SSEClientBuffer = DefaultSSEClientBuf
	}
	if cfg.SSEWriteTimeout <= 0 {
		cfg.SSEWriteTimeout = DefaultSSEWrite
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	m, err := newHTTPMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if cfg.Bus != nil {
		st, err := newStream(cfg.Bus, cfg.SSEBuffer, cfg.SSEClientBuffer, cfg.Logger, m.dropped.Inc)
		if err != nil {
			return nil, err
		}
		s.stream = st
	}
	s.routes()
	s.handler = s.instrument(s.limitBody(s.recoverPanics(http.HandlerFunc(s.dispatch))))
	return s, nil
}

func (s *Server) routes() {
	s.mux.HandleFunc("POST /api/concerts", s.requireAdmin(s.addConcert))
	s.mux.HandleFunc("GET /api/concerts", s.listConcerts)
	s.mux.HandleFunc("GET /api/concerts/{id}", s.getConcert)
	s.mux.HandleFunc("POST /api/concerts/{id}/tickets", s.purchaseTicket)
	s.mux.HandleFunc("GET /api/tickets/{id}", s.getTicket)
	s.mux.HandleFunc("POST /api/tickets/{id}/cancel", s.cancelTicket)
	s.mux.HandleFunc("GET /api/events", s.events)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", s.metrics.handler(s.cfg.Registry))
	if s.cfg.Page != nil {
		s.mux.Handle("GET /{$}", s.cfg.Page)
		s.mux.Handle("GET /tickets/{id}", s.cfg.Page)
		s.mux.Handle("GET /topology", s.cfg.Page)
		s.mux.Handle("GET /static/", s.cfg.Page)
	}
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close ends every event stream and stops the stream's bus subscription.
// Requests already answered or in flight are not affected.
func (s *Server) Close() error {
	if s.stream == nil {
		return nil
	}
	return s.stream.close()
}

// dispatch routes r through the mux, answering unknown routes (404) and
// wrong methods (405, with Allow) as problem+json instead of the mux's
// plain text.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if h, pattern := s.mux.Handler(r); pattern == "" {
		cw := &captureWriter{header: http.Header{}}
		h.ServeHTTP(cw, r)
		switch cw.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", cw.header.Get("Allow"))
			writeProblem(w, newProblem(http.StatusMethodNotAllowed, ProblemMethodNotAllowed, "Method not allowed",
				r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+cw.header.Get("Allow")))
			return
		case http.StatusNotFound:
			writeProblem(w, newProblem(http.StatusNotFound, ProblemNotFound, "Not found", "no such resource: "+r.URL.Path))
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// captureWriter records what the mux's own 404 and 405 handlers write.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

// bodyRoutes are the routes whose handlers read the request body (through
// the size limit, so an oversized one is a 413 there). requireAdmin, on
// POST /api/concerts, drains the body itself before it answers 401.
var bodyRoutes = map[string]bool{
	"POST /api/concerts":              true,
	"POST /api/concerts/{id}/tickets": true,
}

// limitBody answers 413 for a request whose body is over MaxBodyBytes,
// whatever its route and however its body is framed. A declared body over
// the limit (Content-Length) is refused unread. Every other body is bounded,
// so a handler reading it sees a MaxBytesError; and a body of unknown length
// (chunked) for a route that does not read it is read here first, into
// io.Discard and at most MaxBodyBytes+1 bytes, so that it cannot slip past
// the limit by being ignored. Nothing is buffered.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			// Do not read the rest: close the connection after answering.
			w.Header().Set("Connection", "close")
			writeProblem(w, tooLarge())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		if r.ContentLength < 0 {
			if _, pattern := s.mux.Handler(r); !bodyRoutes[pattern] && !drainBody(w, r) {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// drainBody reads and discards r's (size-limited) body. On failure it has
// answered the request (413, or 400) and returns false.
func drainBody(w http.ResponseWriter, r *http.Request) bool {
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			w.Header().Set("Connection", "close")
		}
		writeBodyError(w, err)
		return false
	}
	return true
}

// recoverPanics turns a handler's panic into a logged 500 problem (when
// nothing was written yet), instead of a dropped connection.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil || v == http.ErrAbortHandler {
				if v != nil {
					panic(v)
				}
				return
			}
			s.log.ErrorContext(r.Context(), "httpapi: handler panicked",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			writeProblem(w, internalProblem())
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// waitCtx bounds how long a purchase waits for its outcome.
func (s *Server) waitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.PurchaseWait)
}
