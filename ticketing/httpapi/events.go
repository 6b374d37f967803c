package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// events serves GET /api/events: the bus's events as Server-Sent Events,
// each one CloudEvent in one data line. The public stream hides buyers'
// names and emails; the admin token (Authorization: Bearer, or ?token= since
// EventSource cannot set headers) unlocks the full events.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if s.stream == nil {
		writeProblem(w, newProblem(http.StatusServiceUnavailable, ProblemUnavailable, "Service unavailable", "the event stream is not enabled"))
		return
	}
	token, present := bearerToken(r)
	if !present && r.URL.Query().Has("token") {
		token, present = r.URL.Query().Get("token"), true
	}
	admin := s.isAdmin(token)
	if present && !admin {
		unauthorized(w, "the admin token is wrong; leave it out for the public stream")
		return
	}
	lastID, resume := parseLastEventID(r)
	c, backlog, gap, err := s.stream.subscribe(lastID, resume)
	if err != nil {
		writeProblem(w, newProblem(http.StatusServiceUnavailable, ProblemUnavailable, "Service unavailable", "the server is shutting down"))
		return
	}
	defer s.stream.unsubscribe(c)
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()

	rc := http.NewResponseController(w)
	// The server's read and write timeouts are for ordinary requests: a
	// stream lives on, with a deadline per write instead.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell proxies not to buffer the stream
	w.WriteHeader(http.StatusOK)

	write := func(b []byte) bool {
		if len(b) == 0 { // an event that could not be rendered
			return true
		}
		if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.SSEWriteTimeout)); err != nil && err != http.ErrNotSupported {
			return false
		}
		_, err := w.Write(b)
		return err == nil
	}
	flush := func() bool { return rc.Flush() == nil }
	pick := func(m *message) []byte { return m.frame(admin) }

	// The retry hint, the reset (when the client missed events the ring no
	// longer holds) and the backlog go out with the headers, at once.
	if !write([]byte("retry: 2000\n\n")) {
		return
	}
	if gap != 0 && !write(resetFrame(gap, lastID)) {
		return
	}
	for _, m := range backlog {
		if !write(pick(m)) {
			return
		}
	}
	if !flush() {
		return
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case m := <-c.ch:
			if !write(pick(m)) {
				return
			}
			// Write what else is waiting before one flush.
			for n := len(c.ch); n > 0; n-- {
				if !write(pick(<-c.ch)) {
					return
				}
			}
			if !flush() {
				return
			}
		case <-heartbeat.C:
			if !write([]byte(": heartbeat\n\n")) || !flush() {
				return
			}
		case <-c.done: // dropped for falling behind, or the server is closing
			return
		case <-r.Context().Done():
			return
		}
	}
}

// parseLastEventID reads Last-Event-ID (header, or ?lastEventId= for
// clients that cannot set it). An id that is not ours resumes nothing.
func parseLastEventID(r *http.Request) (id uint64, ok bool) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("lastEventId")
	}
	if v == "" {
		return 0, false
	}
	id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	return id, err == nil
}
