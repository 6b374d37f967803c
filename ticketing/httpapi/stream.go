package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/gigbus/gigbus/eventbus"
)

var errStreamClosed = errors.New("httpapi: event stream closed")

// stream fans the bus's events out to the SSE clients. It holds one plain
// subscription to every event type, numbers the events (the SSE ids), keeps
// the most recent ones in a ring for Last-Event-ID, and hands each client
// its own bounded channel.
//
// The bus is never blocked by a client: the bus handler only appends to the
// ring and offers each event to each client without waiting. A client whose
// channel is full is disconnected (a dropped connection is visible, a silent
// gap is not); its EventSource reconnects with Last-Event-ID and resumes
// from the ring.
type stream struct {
	log     *slog.Logger
	sub     eventbus.Subscription
	bufSize int
	onDrop  func()

	mu      sync.Mutex
	ring    []*message // ring[(first+i)%len(ring)] for i < n, oldest first
	first   int
	n       int
	nextID  uint64
	clients map[*client]struct{}
	closed  bool
}

// message is one event of the stream, rendered for the wire on first use.
type message struct {
	id    uint64
	event eventbus.Event
	log   *slog.Logger

	once   sync.Once
	full   []byte // "id: ...\nevent: ...\ndata: {...}\n\n"
	public []byte
}

type client struct {
	ch   chan *message
	done chan struct{} // closed when the client is dropped or the stream closes
}

func newStream(bus eventbus.Bus, ringSize, clientBuf int, log *slog.Logger, onDrop func()) (*stream, error) {
	st := &stream{
		log:     log,
		onDrop:  onDrop,
		bufSize: clientBuf,
		ring:    make([]*message, ringSize),
		// Ids start at the start time in microseconds, so they usually
		// keep growing across restarts. They are per process all the same:
		// a Last-Event-ID older than the ring, or at or above the next id
		// (another instance's, or from before a restart with a clock set
		// back), gets a reset, then the whole ring.
		nextID:  uint64(time.Now().UnixMicro()),
		clients: map[*client]struct{}{},
	}
	sub, err := bus.Subscribe("*", st.handle, eventbus.QueueSize(4096))
	if err != nil {
		return nil, err
	}
	st.sub = sub
	return st, nil
}

// handle runs on the bus for every event. It never blocks on a client,
// and does no encoding: a message is rendered when a client first needs it,
// so the stream costs the bus next to nothing while nobody watches.
func (st *stream) handle(ctx context.Context, e eventbus.Event) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil
	}
	m := &message{id: st.nextID, event: e, log: st.log}
	st.nextID++
	st.push(m)
	for c := range st.clients {
		select {
		case c.ch <- m:
		default:
			st.dropLocked(c)
			if st.onDrop != nil {
				st.onDrop()
			}
		}
	}
	return nil
}

// frame returns m as an SSE message, in full or for the public stream;
// nil when its event cannot be rendered (it is skipped, and logged once).
func (m *message) frame(full bool) []byte {
	m.once.Do(func() {
		f, p, err := encodeCloudEvents(m.event)
		if err != nil {
			m.log.Warn("httpapi: event not streamable", "type", m.event.Type, "id", m.event.ID, "err", err)
			return
		}
		m.full = sseFrame(m.id, m.event.Type, f)
		m.public = sseFrame(m.id, m.event.Type, p)
	})
	if full {
		return m.full
	}
	return m.public
}

func sseFrame(id uint64, eventType string, data []byte) []byte {
	b := make([]byte, 0, len(data)+len(eventType)+40)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, "\nevent: "...)
	b = append(b, eventType...) // event types never hold newlines (eventbus validates them)
	b = append(b, "\ndata: "...)
	b = append(b, data...) // compact JSON: one line
	return append(b, "\n\n"...)
}

func (st *stream) push(m *message) {
	if st.n < len(st.ring) {
		st.ring[(st.first+st.n)%len(st.ring)] = m
		st.n++
		return
	}
	st.ring[st.first] = m
	st.first = (st.first + 1) % len(st.ring)
}

// subscribe adds a client. With resume, backlog holds the ring's events
// after lastID; registering and reading the ring happen under one lock, so
// the client sees every event exactly once from there on. gap is non-zero
// when events after lastID are no longer in the ring (they were pushed out,
// or sent before this process started), or when lastID is at or above the
// next id, an id this process never gave out (ids are per process): it is
// the id just before the oldest event kept, the last one the client can no
// longer get, and backlog then holds the whole ring.
func (st *stream) subscribe(lastID uint64, resume bool) (c *client, backlog []*message, gap uint64, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil, nil, 0, errStreamClosed
	}
	c = &client{ch: make(chan *message, st.bufSize), done: make(chan struct{})}
	st.clients[c] = struct{}{}
	if resume {
		oldest := st.nextID // the id the next event gets, when the ring is empty
		if st.n > 0 {
			oldest = st.ring[st.first].id
		}
		switch {
		case lastID >= st.nextID:
			// An id this process has not given out: from another instance,
			// or from a process before a restart whose ids ran higher. What
			// the client missed is unknown, so it gets a reset and the
			// whole ring, as for an id that is too old.
			gap = oldest - 1 // ids start far above 0: no underflow
			lastID = gap
		case lastID < oldest-1:
			gap = oldest - 1
		}
		for i := 0; i < st.n; i++ {
			if m := st.ring[(st.first+i)%len(st.ring)]; m.id > lastID {
				backlog = append(backlog, m)
			}
		}
	}
	return c, backlog, gap, nil
}

// resetFrame is the SSE message that tells a resuming client it missed
// events: "event: reset", with the id of the last missed event (so a
// client that reconnects again resumes after it) and one CloudEvent whose
// data says to reload.
func resetFrame(gap, lastID uint64) []byte {
	data, _ := json.Marshal(resetData{
		Reason:      "events-missed",
		LastEventID: strconv.FormatUint(lastID, 10),
		Reload:      true,
		Detail:      "events after Last-Event-ID are no longer buffered; reload the current state, then keep reading the stream",
	})
	ce, _ := json.Marshal(newCloudEvent(eventbus.Event{
		ID: "reset-" + strconv.FormatUint(gap, 10), Type: resetEvent, Source: "/api/events", Time: time.Now(),
	}, data))
	return sseFrame(gap, resetEvent, ce)
}

// resetEvent is the event type of the stream's own reset message; bus event
// types are capitalised names, so it cannot clash with one.
const resetEvent = "reset"

// resetData is the data of a reset message.
type resetData struct {
	Reason      string `json:"reason"`        // "events-missed"
	LastEventID string `json:"last_event_id"` // the Last-Event-ID the client sent
	Reload      bool   `json:"reload"`        // always true: reload the state
	Detail      string `json:"detail"`
}

func (st *stream) unsubscribe(c *client) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dropLocked(c)
}

func (st *stream) dropLocked(c *client) {
	if _, ok := st.clients[c]; ok {
		delete(st.clients, c)
		close(c.done)
	}
}

func (st *stream) clientCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.clients)
}

// close ends every client's stream and the bus subscription.
func (st *stream) close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	for c := range st.clients {
		st.dropLocked(c)
	}
	st.mu.Unlock()
	err := st.sub.Unsubscribe()
	if errors.Is(err, eventbus.ErrClosed) || errors.Is(err, eventbus.ErrNoSubscription) {
		err = nil
	}
	return err
}
