package ticketing

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/google/uuid"
)

// Option configures a service.
type Option func(*options)

type options struct {
	now         func() time.Time
	logger      *slog.Logger
	concurrency int
	maxAttempts int
	backoff     [2]time.Duration // initial, max
}

// DefaultHandlerConcurrency is how many events of one type a service
// handles at once in this process (see WithHandlerConcurrency).
const DefaultHandlerConcurrency = 16

// WithHandlerConcurrency sets how many events each of the service's handlers
// handles at once (default DefaultHandlerConcurrency). Ticket events have
// the ticket id as Subject, so events of one ticket stay in order whatever n.
func WithHandlerConcurrency(n int) Option { return func(o *options) { o.concurrency = max(n, 1) } }

// Handler retry defaults (see WithHandlerRetry): a failing event is tried
// DefaultHandlerMaxAttempts times over about ten seconds before the bus
// dead-letters it.
const (
	DefaultHandlerMaxAttempts = 10
	DefaultHandlerBackoff     = 20 * time.Millisecond
	DefaultHandlerBackoffMax  = 5 * time.Second
)

// WithHandlerRetry sets how many times the bus tries an event on each of
// the service's handlers (default DefaultHandlerMaxAttempts) and the
// backoff between tries, doubling from initial up to max (default
// DefaultHandlerBackoff and DefaultHandlerBackoffMax). An event still
// failing is dead-lettered: see System.DeadLetter, which requeues it.
func WithHandlerRetry(maxAttempts int, initial, max time.Duration) Option {
	return func(o *options) { o.maxAttempts, o.backoff = maxAttempts, [2]time.Duration{initial, max} }
}

// WithNow injects the clock (default time.Now), so date rules are testable.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the service's logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func newOptions(opts []Option) options {
	o := options{now: time.Now, logger: slog.Default(), concurrency: DefaultHandlerConcurrency,
		maxAttempts: DefaultHandlerMaxAttempts, backoff: [2]time.Duration{DefaultHandlerBackoff, DefaultHandlerBackoffMax}}
	for _, opt := range opts {
		opt(&o)
	}
	o.maxAttempts = max(o.maxAttempts, 1)
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// handlerPolicy is the bus policy of every service handler. Handlers fail
// only on infrastructure errors (a busy or closed database), which are
// worth retrying for a while; an event still failing is dead-lettered, and
// System.DeadLetter requeues it in the outbox, so the saga step runs again
// later instead of leaving its ticket pending.
func handlerPolicy(name string, o options) []eventbus.SubscribeOption {
	return []eventbus.SubscribeOption{
		eventbus.Durable(name),
		eventbus.Concurrency(o.concurrency),
		eventbus.MaxAttempts(o.maxAttempts),
		eventbus.Backoff(o.backoff[0], o.backoff[1]),
	}
}

// subscriptions holds a service's bus subscriptions.
type subscriptions []eventbus.Subscription

func (s *subscriptions) subscribe(bus eventbus.Bus, o options, eventType, name string, h eventbus.Handler) error {
	sub, err := bus.Subscribe(eventType, h, handlerPolicy(name, o)...)
	if err != nil {
		return fmt.Errorf("ticketing: subscribe %s to %s: %w", name, eventType, err)
	}
	*s = append(*s, sub)
	return nil
}

func (s *subscriptions) unsubscribe() error {
	var first error
	for _, sub := range *s {
		if err := sub.Unsubscribe(); err != nil && first == nil {
			first = err
		}
	}
	*s = nil
	return first
}

// newID returns a new entity id: a UUIDv7, so ids sort by creation time.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// decode reads e's payload as T. A payload that does not decode will not
// decode on a retry either, so its error is permanent: the event goes to the
// dead-letter callback after one attempt instead of ten (as eventbus.On does).
func decode[T any](e eventbus.Event) (T, error) {
	v, err := eventbus.Decode[T](e)
	return v, eventbus.Permanent(err)
}

// inTx wraps a handler's transaction error with the event it was handling.
func inTx(ctx context.Context, store Store, name string, e eventbus.Event, fn func(tx Tx) error) error {
	if err := store.Update(ctx, fn); err != nil {
		return fmt.Errorf("ticketing: %s: handle %s %s: %w", name, e.Type, e.ID, err)
	}
	return nil
}
