package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
)

//go:embed templates
var templateFS embed.FS

// concertView is one concert card. The page renders it once per concert,
// and once more with placeholders (ID "__ID__") into a <template> element that
// the script clones for concerts added while the page is open, so both come
// from the same markup.
type concertView struct {
	ID         string
	Name       string
	Venue      string
	DateISO    string // RFC 3339, for <time datetime> and the script
	DateText   string // the server's rendering; the script shows the viewer's locale
	PriceCents int64
	Currency   string
	PriceText  string
	Available  int
	Total      int
	SoldOut    bool
}

func newConcertView(c ticketing.Concert) concertView {
	return concertView{
		ID:         c.ID,
		Name:       c.Name,
		Venue:      c.Venue,
		DateISO:    c.Date.UTC().Format(time.RFC3339),
		DateText:   c.Date.UTC().Format("Mon 2 Jan 2006, 15:04 UTC"),
		PriceCents: c.TicketPriceCents,
		Currency:   c.Currency,
		PriceText:  ticketing.FormatPrice(c.TicketPriceCents, c.Currency),
		Available:  c.AvailableTickets,
		Total:      c.TotalTickets,
		SoldOut:    c.AvailableTickets <= 0,
	}
}

type indexView struct {
	Title    string
	Page     string
	Concerts []concertView
	Template concertView // the placeholder card for the script
	Mermaid  string
}

type ticketView struct {
	Title   string
	Page    string
	Ticket  ticketing.Ticket
	Concert *concertView // nil when the concert cannot be read
	Issued  string       // the ticket's request time, RFC 3339
}

type errorView struct {
	Title   string
	Page    string
	Status  int
	Message string
}

// pages holds one template set per page, each with the shared layout.
type pages struct {
	index, ticket, error *template.Template
}

func newPages(assets *assetServer) pages {
	funcs := template.FuncMap{"asset": assets.url}
	parse := func(page string) *template.Template {
		return template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page))
	}
	return pages{index: parse("index.html"), ticket: parse("ticket.html"), error: parse("error.html")}
}

// render executes the page into a buffer first, so a template error becomes
// a clean 500 instead of half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, t *template.Template, status int, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		h.log.ErrorContext(r.Context(), "web: render", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // seat counts and statuses change
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, h.pages.error, status, errorView{Title: http.StatusText(status), Page: "error", Status: status, Message: msg})
}

func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	concerts, err := h.cfg.Concerts.ListConcerts(r.Context())
	if err != nil {
		h.log.ErrorContext(r.Context(), "web: list concerts", "err", err)
		h.renderError(w, r, http.StatusInternalServerError, "The concerts cannot be read right now. Try again in a moment.")
		return
	}
	v := indexView{
		Title:    "Concerts",
		Page:     "concerts",
		Template: concertView{ID: "__ID__", Name: "", Currency: "EUR"},
		Mermaid:  h.topology().Mermaid(),
	}
	for _, c := range concerts {
		v.Concerts = append(v.Concerts, newConcertView(c))
	}
	h.render(w, r, h.pages.index, http.StatusOK, v)
}

func (h *Handler) serveTicket(w http.ResponseWriter, r *http.Request) {
	t, err := h.cfg.Tickets.GetTicket(r.Context(), r.PathValue("id"))
	switch code := ticketing.ErrorCode(err); code {
	case "":
	case ticketing.ENOTFOUND, ticketing.EINVALID:
		h.renderError(w, r, http.StatusNotFound, "There is no ticket with this id.")
		return
	default:
		h.log.ErrorContext(r.Context(), "web: get ticket", "err", err)
		h.renderError(w, r, http.StatusInternalServerError, "The ticket cannot be read right now. Try again in a moment.")
		return
	}
	v := ticketView{Title: "Ticket " + t.ID, Page: "ticket", Ticket: t, Issued: t.PurchasedAt.UTC().Format(time.RFC3339)}
	if c, err := h.cfg.Concerts.GetConcert(r.Context(), t.ConcertID); err == nil {
		cv := newConcertView(c)
		v.Concert = &cv
	}
	h.render(w, r, h.pages.ticket, http.StatusOK, v)
}

func (h *Handler) topology() eventbus.Topology {
	if h.cfg.Topology == nil {
		return eventbus.Topology{}
	}
	return h.cfg.Topology()
}

func (h *Handler) serveTopology(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Mermaid   string `json:"mermaid"`
		Available bool   `json:"available"` // false: the bus reports no topology (Config.Topology nil)
	}{h.topology().Mermaid(), h.cfg.Topology != nil})
}
