package eventbus

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Default values of the subscription policy.
const (
	DefaultQueueSize      = 1024
	DefaultMaxAttempts    = 3
	DefaultBackoffInitial = 100 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
	DefaultDeadLetterKeep = 1000
)

// SubscribeOption sets one part of a subscription's policy.
type SubscribeOption func(*SubscribeConfig)

// SubscribeConfig is a subscription's resolved policy. Transports read it with
// NewSubscribeConfig; applications use the SubscribeOption functions.
type SubscribeConfig struct {
	Name           string // Durable name; empty for a plain subscription
	Concurrency    int
	QueueSize      int
	MaxAttempts    int
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	Middleware     []Middleware
}

// NewSubscribeConfig applies opts over the defaults and checks the result.
func NewSubscribeConfig(opts ...SubscribeOption) (SubscribeConfig, error) {
	c := SubscribeConfig{
		Concurrency:    1,
		QueueSize:      DefaultQueueSize,
		MaxAttempts:    DefaultMaxAttempts,
		BackoffInitial: DefaultBackoffInitial,
		BackoffMax:     DefaultBackoffMax,
	}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case c.Concurrency < 1:
		return c, fmt.Errorf("eventbus: Concurrency(%d): must be at least 1", c.Concurrency)
	case c.QueueSize < 1:
		return c, fmt.Errorf("eventbus: QueueSize(%d): must be at least 1", c.QueueSize)
	case c.MaxAttempts < 1:
		return c, fmt.Errorf("eventbus: MaxAttempts(%d): must be at least 1", c.MaxAttempts)
	case c.BackoffInitial < 0 || c.BackoffMax < c.BackoffInitial:
		return c, fmt.Errorf("eventbus: Backoff(%v, %v): want 0 <= initial <= max", c.BackoffInitial, c.BackoffMax)
	}
	return c, nil
}

// Durable names a group: each event reaches the group once, shared by its
// members (same name, same type).
func Durable(name string) SubscribeOption { return func(c *SubscribeConfig) { c.Name = name } }

// Concurrency sets the number of workers for this subscription (default 1).
// Events with the same Subject are still handled in publish order.
func Concurrency(n int) SubscribeOption { return func(c *SubscribeConfig) { c.Concurrency = n } }

// QueueSize bounds this subscription's queue (default DefaultQueueSize); a
// full queue makes Publish wait, or fail with its context's error.
func QueueSize(n int) SubscribeOption { return func(c *SubscribeConfig) { c.QueueSize = n } }

// MaxAttempts sets the attempts, the first included, before an event is
// dead-lettered (default 3; 1 means no retry). Subscribe rejects values below 1.
func MaxAttempts(n int) SubscribeOption { return func(c *SubscribeConfig) { c.MaxAttempts = n } }

// Backoff sets the delay before a retry: initial after the first failure,
// doubling up to max, each with random jitter (default 100ms to 10s).
func Backoff(initial, max time.Duration) SubscribeOption {
	return func(c *SubscribeConfig) { c.BackoffInitial, c.BackoffMax = initial, max }
}

// Use adds middleware to this subscription's handler, inside the bus's.
func Use(mw ...Middleware) SubscribeOption {
	return func(c *SubscribeConfig) { c.Middleware = append(c.Middleware, mw...) }
}

// Option configures a bus.
type Option func(*Config)

// PublishHook sees every event after Publish validated and filled it, before
// the transport takes it. It may set Meta entries (copy the map first: it may
// be shared with the publisher); it must not block.
type PublishHook func(ctx context.Context, e *Event)

// Config is a bus's resolved configuration. Transports read it with NewConfig;
// applications use the Option functions.
type Config struct {
	Logger         *slog.Logger
	Source         string
	Middleware     []Middleware
	DeadLetter     func(ctx context.Context, dl DeadLetter)
	DeadLetterKeep int
	PublishHooks   []PublishHook
	Now            func() time.Time
}

// NewConfig applies opts over the defaults.
func NewConfig(opts ...Option) Config {
	c := Config{Logger: slog.Default(), Source: "eventbus", DeadLetterKeep: DefaultDeadLetterKeep, Now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DeadLetter == nil {
		logger := c.Logger
		c.DeadLetter = func(ctx context.Context, dl DeadLetter) {
			logger.ErrorContext(ctx, "eventbus: event dead-lettered",
				"event_id", dl.Event.ID, "event_type", dl.Event.Type, "subject", dl.Event.Subject,
				"subscription", dl.Subscription, "attempts", dl.Attempts, "err", dl.Err)
		}
	}
	return c
}

// WithLogger sets the bus's logger (default slog.Default()); nil discards.
func WithLogger(l *slog.Logger) Option { return func(c *Config) { c.Logger = l } }

// WithSource sets the Source filled into events published without one.
func WithSource(s string) Option { return func(c *Config) { c.Source = s } }

// WithMiddleware wraps every subscription's handler, outside its own Use.
func WithMiddleware(mw ...Middleware) Option {
	return func(c *Config) { c.Middleware = append(c.Middleware, mw...) }
}

// WithDeadLetter sets the callback that receives each dead letter once
// (default: logged at ERROR). It runs on the worker that gave up, so it
// should not block for long.
func WithDeadLetter(f func(ctx context.Context, dl DeadLetter)) Option {
	return func(c *Config) { c.DeadLetter = f }
}

// WithDeadLetterKeep sets how many recent dead letters the bus keeps for
// DeadLetters and Replay (default DefaultDeadLetterKeep; 0 keeps none).
func WithDeadLetterKeep(n int) Option { return func(c *Config) { c.DeadLetterKeep = max(n, 0) } }

// WithPublishHook adds a hook that sees every published event (used by the
// tracing and metrics packages).
func WithPublishHook(h PublishHook) Option {
	return func(c *Config) { c.PublishHooks = append(c.PublishHooks, h) }
}

// WithClock injects the clock used to fill Event.Time (for tests).
func WithClock(now func() time.Time) Option { return func(c *Config) { c.Now = now } }
