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
}

// DefaultHandlerConcurrency is how many events of one type a service
// handles at once in this process (see WithHandlerConcurrency).
const DefaultHandlerConcurrency = 16

// WithHandlerConcurrency sets how many events each of the service's handlers
// handles at once (default DefaultHandlerConcurrency). Ticket events have
// the ticket id as Subject, so events of one ticket stay in order whatever n.
func WithHandlerConcurrency(n int) Option { return func(o *options) { o.concurrency = max(n, 1) } }

// WithNow injects the clock (default time.Now), so date rules are testable.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the service's logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func newOptions(opts []Option) options {
	o := options{now: time.Now, logger: slog.Default(), concurrency: DefaultHandlerConcurrency}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// handlerPolicy is the bus policy of every service handler. Handlers fail
// only on infrastructure errors (a busy or closed database), which are
// worth retrying for a while: a dead-lettered saga step leaves a ticket
// pending until the event is replayed.
func handlerPolicy(name string, concurrency int) []eventbus.SubscribeOption {
	return []eventbus.SubscribeOption{
		eventbus.Durable(name),
		eventbus.Concurrency(concurrency),
		eventbus.MaxAttempts(10),
		eventbus.Backoff(20*time.Millisecond, 5*time.Second),
	}
}

// subscriptions holds a service's bus subscriptions.
type subscriptions []eventbus.Subscription

func (s *subscriptions) subscribe(bus eventbus.Bus, o options, eventType, name string, h eventbus.Handler) error {
	sub, err := bus.Subscribe(eventType, h, handlerPolicy(name, o.concurrency)...)
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

// decode reads e's payload as T, with the error a handler returns.
func decode[T any](e eventbus.Event) (T, error) {
	v, err := eventbus.Decode[T](e)
	if err != nil {
		return v, fmt.Errorf("ticketing: decode %s %s: %w", e.Type, e.ID, err)
	}
	return v, nil
}

// inTx wraps a handler's transaction error with the event it was handling.
func inTx(ctx context.Context, store Store, name string, e eventbus.Event, fn func(tx Tx) error) error {
	if err := store.Update(ctx, fn); err != nil {
		return fmt.Errorf("ticketing: %s: handle %s %s: %w", name, e.Type, e.ID, err)
	}
	return nil
}
