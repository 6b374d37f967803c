// Package web is ticketd's web page: the concerts with live seat counts, a buy
// form per concert, a ticket page with a cancel button, an admin form to add a
// concert, a live panel of the events and the bus topology as a diagram.
//
// The pages are server-rendered first, so the list reads without JavaScript,
// then a small script makes them live. The script uses only the public HTTP
// API and its SSE stream (/api/events), so the page works the same on the
// in-memory bus and on NATS. Templates and assets, including the Mermaid
// library that draws the topology, are embedded: no CDN, no build step, the
// page works offline.
//
// Routes served by the Handler; mount it for all four (or for every GET
// outside /api/):
//
//	GET /                the concerts page
//	GET /tickets/{id}    a ticket's page
//	GET /topology        the bus topology as JSON {"mermaid": "graph TD ...", "available": true}
//	GET /static/{name}   the embedded scripts, style sheet and Mermaid
//
// Anything else answers 404 (405 for a wrong method) as problem+json.
package web

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
)

// Concerts reads concerts; *ticketing.ConcertService implements it.
type Concerts interface {
	ListConcerts(ctx context.Context) ([]ticketing.Concert, error)
	GetConcert(ctx context.Context, id string) (ticketing.Concert, error)
}

// Tickets reads tickets; *ticketing.TicketService implements it.
type Tickets interface {
	GetTicket(ctx context.Context, id string) (ticketing.Ticket, error)
}

// Config is what the Handler needs.
type Config struct {
	Concerts Concerts // required
	Tickets  Tickets  // required
	// Topology reports the running bus's topology, e.g. (*eventbus.MemoryBus).Topology.
	// Nil: the page says the bus reports none.
	Topology func() eventbus.Topology
	Logger   *slog.Logger // nil: slog.Default()
}

// Handler serves the web page's routes. Safe for concurrent use.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	assets *assetServer
	pages  pages
}

// New returns the Handler for cfg. It panics if Concerts or Tickets is nil, a
// wiring bug that no request could recover from.
func New(cfg Config) *Handler {
	if cfg.Concerts == nil || cfg.Tickets == nil {
		panic("web: Config.Concerts and Config.Tickets are required")
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), assets: newAssetServer()}
	h.pages = newPages(h.assets)
	if h.log == nil {
		h.log = slog.Default()
	}
	h.mux.Handle("/{$}", readOnly(http.HandlerFunc(h.serveIndex)))
	h.mux.Handle("/tickets/{id}", readOnly(http.HandlerFunc(h.serveTicket)))
	h.mux.Handle("/topology", readOnly(http.HandlerFunc(h.serveTopology)))
	h.mux.Handle("/static/{name}", readOnly(h.assets))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "no such page: "+r.URL.Path)
	})
	return h
}

// ServeHTTP serves the page routes listed in the package documentation.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	// The page needs nothing from elsewhere. Mermaid writes style attributes
	// and <style> elements into its SVG, hence 'unsafe-inline' for styles only.
	hdr.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// readOnly answers 405 as problem+json for anything but GET and HEAD.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
			return
		}
		next.ServeHTTP(w, r)
	})
}
