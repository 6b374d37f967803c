package ticketing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gigbus/gigbus/eventbus"
)

// Config is what Start wires together.
type Config struct {
	Store  Store        // required
	Bus    eventbus.Bus // required; the System never closes it
	Sender Sender       // notifications; nil discards (ticketing/notify.Log logs them)
	Logger *slog.Logger // nil: slog.Default()
	Now    func() time.Time
	// HandlerConcurrency is each handler's worker count (0: DefaultHandlerConcurrency).
	HandlerConcurrency int
	// HandlerMaxAttempts, HandlerBackoff and HandlerBackoffMax are the
	// handlers' retry policy (0: the defaults; see WithHandlerRetry).
	HandlerMaxAttempts                int
	HandlerBackoff, HandlerBackoffMax time.Duration
}

// System is the three services wired on one store and bus, with the store's
// relay running. Its fields are for use, not for replacing.
type System struct {
	Concerts      *ConcertService
	Tickets       *TicketService
	Notifications *NotificationService
	Store         Store
	Bus           eventbus.Bus
	Relay         Relay

	deadLetter func(context.Context, eventbus.DeadLetter)
}

// Start builds the services, subscribes their handlers to cfg.Bus and starts
// the store's relay (which also publishes what a previous run left in the
// outbox). Close it before closing the bus.
func Start(cfg Config) (*System, error) {
	if cfg.Store == nil || cfg.Bus == nil {
		return nil, errors.New("ticketing: Start needs a Store and a Bus")
	}
	opts := []Option{WithLogger(cfg.Logger)}
	if cfg.Logger == nil {
		opts[0] = WithLogger(slog.Default())
	}
	if cfg.Now != nil {
		opts = append(opts, WithNow(cfg.Now))
	}
	if cfg.HandlerConcurrency > 0 {
		opts = append(opts, WithHandlerConcurrency(cfg.HandlerConcurrency))
	}
	if cfg.HandlerMaxAttempts > 0 || cfg.HandlerBackoff > 0 || cfg.HandlerBackoffMax > 0 {
		opts = append(opts, WithHandlerRetry(
			cmp.Or(cfg.HandlerMaxAttempts, DefaultHandlerMaxAttempts),
			cmp.Or(cfg.HandlerBackoff, DefaultHandlerBackoff),
			cmp.Or(cfg.HandlerBackoffMax, DefaultHandlerBackoffMax)))
	}
	s := &System{
		Concerts:      NewConcertService(cfg.Store, opts...),
		Tickets:       NewTicketService(cfg.Store, opts...),
		Notifications: NewNotificationService(cfg.Store, cfg.Sender, opts...),
		Store:         cfg.Store,
		Bus:           cfg.Bus,
		deadLetter:    RequeueDeadLetters(cfg.Store, cmp.Or(cfg.Logger, slog.Default())),
	}
	for _, r := range []interface{ Register(eventbus.Bus) error }{s.Concerts, s.Tickets, s.Notifications} {
		if err := r.Register(cfg.Bus); err != nil {
			s.unregister()
			return nil, err
		}
	}
	relay, err := cfg.Store.StartRelay(cfg.Bus)
	if err != nil {
		s.unregister()
		return nil, fmt.Errorf("ticketing: start relay: %w", err)
	}
	s.Relay = relay
	return s, nil
}

// Settle waits until the system is quiet: every committed event published
// and handled, including the events those handlers committed in turn. It is
// for tests, the demo and shutdown; while requests keep coming it may only
// return with ctx's error.
func (s *System) Settle(ctx context.Context) error {
	var last uint64
	for i := 0; ; i++ {
		if err := s.Bus.Flush(ctx); err != nil {
			return err
		}
		n, err := s.Relay.Flush(ctx)
		if err != nil {
			return err
		}
		// Nothing was published since the previous round's relay flush, and
		// the bus was idle after it: quiet.
		if i > 0 && n == last {
			return nil
		}
		last = n
	}
}

// Close settles the system (bounded by ctx), stops the relay and
// unsubscribes the handlers. Call it after the HTTP server stopped and
// before the bus's Close. Events committed but not yet published stay in the
// outbox for the next start.
func (s *System) Close(ctx context.Context) error {
	errSettle := s.Settle(ctx)
	errRelay := s.Relay.Close(ctx)
	errUnsub := s.unregister()
	return errors.Join(errSettle, errRelay, errUnsub)
}

func (s *System) unregister() error {
	return errors.Join(s.Concerts.Unregister(), s.Tickets.Unregister(), s.Notifications.Unregister())
}

// DeadLetter is the bus's dead-letter callback for the system's events
// (pass it with eventbus.WithDeadLetter; see RequeueDeadLetters, which
// does the work and can be wired before the System exists). Safe for
// concurrent use.
func (s *System) DeadLetter(ctx context.Context, dl eventbus.DeadLetter) { s.deadLetter(ctx, dl) }

// requeueTries is how many times RequeueDeadLetters tries Store.Requeue.
const requeueTries = 3

// RequeueDeadLetters returns a dead-letter callback for a bus that carries
// store's events (eventbus.WithDeadLetter): it requeues each dead letter in
// the store's outbox (Store.Requeue), so the relay publishes the event
// again after a delay that grows with each requeue, to every subscriber;
// the handlers that applied it skip it (their inbox). A saga step that
// exhausted its retries thus runs again later instead of leaving its
// ticket pending, and a poison event keeps coming back, slowly, never
// dropped. Each dead letter is logged at ERROR with the event's id and type,
// the subscription, the error and the requeue count; one that did not come
// from the outbox (or that cannot be requeued after a few tries) is logged
// only. The callback runs on the bus worker that gave up; it takes one
// short write transaction. Safe for concurrent use.
func RequeueDeadLetters(store Store, logger *slog.Logger) func(context.Context, eventbus.DeadLetter) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, dl eventbus.DeadLetter) {
		// The worker's context may end with the publisher's (the relay's).
		ctx = context.WithoutCancel(ctx)
		attrs := []any{"event_id", dl.Event.ID, "event_type", dl.Event.Type, "subscription", dl.Subscription,
			"attempts", dl.Attempts, "err", dl.Err}
		var (
			n   int
			at  time.Time
			err error
		)
		// A busy database gets a few more chances: this is the event's
		// last way back.
		for try := 1; ; try++ {
			n, at, err = store.Requeue(ctx, dl.Event.ID)
			if err == nil || ErrorCode(err) == ENOTFOUND || try == requeueTries {
				break
			}
			time.Sleep(time.Duration(try) * 100 * time.Millisecond)
		}
		switch {
		case ErrorCode(err) == ENOTFOUND:
			logger.ErrorContext(ctx, "ticketing: dead letter not in the outbox (published without it, or pruned); it is not requeued", attrs...)
		case err != nil:
			logger.ErrorContext(ctx, "ticketing: dead letter could not be requeued; replay it by hand",
				append(attrs, "requeue_err", err)...)
		default:
			logger.ErrorContext(ctx, "ticketing: dead letter requeued in the outbox",
				append(attrs, "requeues", n, "not_before", at)...)
		}
	}
}
