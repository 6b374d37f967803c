package eventbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Event is one immutable fact. Its fields map one to one onto CloudEvents 1.0
// attributes (id, type, source, subject, time, data, extensions).
//
// Treat an Event as a value: once published, neither the publisher nor a handler
// may modify Data or Meta in place, since every subscription sees the same ones.
type Event struct {
	ID      string            // unique; Publish sets a UUIDv7 when empty
	Type    string            // required, e.g. "TicketPurchased"
	Source  string            // who published it, e.g. "ticket-service"; Publish sets the bus default when empty
	Subject string            // optional entity id; same Subject => same order at every subscription
	Time    time.Time         // Publish sets time.Now() when zero
	Data    any               // the payload: a value in-process, json.RawMessage after a wire
	Meta    map[string]string // extension attributes: traceparent, correlationid, ...
}

// Handler handles one event. A non-nil error (or a panic) makes the bus retry
// the event per the subscription's policy, then dead-letter it.
type Handler func(ctx context.Context, e Event) error

// Middleware wraps a Handler, e.g. to log, measure or trace it.
type Middleware func(Handler) Handler

// Bus is what every transport implements. All methods are safe for concurrent use.
type Bus interface {
	// Publish validates every event (ErrInvalidEvent, and nothing is accepted),
	// fills ID, Time and Source, and returns once the transport has accepted
	// them, in order. On a context error the events before the failing one were
	// accepted. Outside handlers a full queue makes Publish wait; from inside a
	// handler it never waits. After Close it returns ErrClosed.
	Publish(ctx context.Context, events ...Event) error
	// Subscribe registers h for eventType ("*" for every type). See the
	// SubscribeOption functions for the policy it takes.
	Subscribe(eventType string, h Handler, opts ...SubscribeOption) (Subscription, error)
	// Flush waits until the bus is idle: nothing queued, nothing being
	// handled, no retry waiting. Called from inside a handler it returns an
	// error at once instead of waiting for itself.
	Flush(ctx context.Context) error
	// Close stops accepting events from outside handlers (ErrClosed), handles
	// everything already accepted and returns once every goroutine of the bus
	// has exited. If ctx ends first, handlers' contexts are cancelled and
	// Close returns ctx's error. Calling Close again returns at once.
	Close(ctx context.Context) error
}

// Subscription is the handle Subscribe returns.
type Subscription interface {
	// Unsubscribe stops delivery at once: unstarted events are dropped (or, in
	// a durable group, go to the other members). A handler already running
	// finishes, and Unsubscribe waits for it unless called from that handler.
	// Calling it again returns nil.
	Unsubscribe() error
}

// MetaRedelivery is the Meta key (a CloudEvents extension) that a deliberate
// redelivery of an event carries, with a count that differs per redelivery;
// the outbox sets it when it publishes a dead-lettered event again.
// Transports that drop repeated event IDs as duplicates (natsbus: the stream's
// Nats-Msg-Id window) include it in their de-duplication key, so such a
// redelivery is not dropped; consumers still recognise the event by its ID.
const MetaRedelivery = "redelivery"

// DeadLetter is what the dead-letter callback receives, once per event and subscription.
type DeadLetter struct {
	Event        Event
	Subscription string    // its Durable name, or a generated one
	Err          error     // the last attempt's error (a recovered panic becomes an error)
	Attempts     int       // attempts made, the first included
	Time         time.Time // when the event was dead-lettered
}

var (
	// ErrClosed is returned by Publish and Subscribe after Close.
	ErrClosed = errors.New("eventbus: closed")
	// ErrInvalidEvent is returned (wrapped, with the reason) for an event
	// that cannot be published, such as one without a Type.
	ErrInvalidEvent = errors.New("eventbus: invalid event")
	// ErrInHandler is returned by Flush when called from inside a handler,
	// where waiting for the bus to be idle would wait for itself.
	ErrInHandler = errors.New("eventbus: called from inside a handler")
)

// PanicError is the error a recovered handler panic becomes.
type PanicError struct {
	Value any    // what the handler panicked with
	Stack []byte // the goroutine's stack at the panic
}

func (p *PanicError) Error() string { return fmt.Sprintf("eventbus: handler panicked: %v", p.Value) }

// Validate reports whether e can be published: its Type must be non-empty and
// without spaces or control characters, and "*" is reserved for subscribing.
// Transports may add rules of their own (see natsbus).
func Validate(e Event) error {
	switch {
	case e.Type == "":
		return fmt.Errorf("%w: empty type", ErrInvalidEvent)
	case e.Type == "*":
		return fmt.Errorf("%w: type %q is reserved for subscribing to every type", ErrInvalidEvent, e.Type)
	case strings.ContainsFunc(e.Type, isSpaceOrControl):
		return fmt.Errorf("%w: type %q contains spaces or control characters", ErrInvalidEvent, e.Type)
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// Fill sets the fields Publish fills when they are empty: ID (a UUIDv7),
// Time (now) and Source (source). Transports call it after Validate.
func Fill(e *Event, source string, now time.Time) {
	if e.ID == "" {
		e.ID = newID()
	}
	if e.Time.IsZero() {
		e.Time = now
	}
	if e.Source == "" {
		e.Source = source
	}
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 only fails when the system's random source does; a V4 from
		// the same source would fail too, so this is not expected to happen.
		return uuid.NewString()
	}
	return id.String()
}
