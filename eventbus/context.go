package eventbus

import (
	"context"
	"time"
)

// handlerCtx is the context a handler gets: the publisher's values (trace,
// correlation id, ...) without its cancellation, which belongs to the
// publisher's request and not to the event (context.WithoutCancel), and the
// bus's lifetime as its cancellation: it is done only when Close gives up
// waiting. It also tells which bus, subscription and attempt it serves.
type handlerCtx struct {
	parent  context.Context // values only
	bus     *MemoryBus
	sub     string
	attempt int
	max     int
}

func (c *handlerCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *handlerCtx) Done() <-chan struct{}       { return c.bus.life.Done() }
func (c *handlerCtx) Err() error                  { return c.bus.life.Err() }

func (c *handlerCtx) Value(key any) any {
	switch key {
	case deliveryKey{}:
		return Delivery{Subscription: c.sub, Attempt: c.attempt, MaxAttempts: c.max}
	case busKey{}:
		return c.bus
	}
	// The lifetime context holds no values but its own cancellation, which
	// lets context.WithCancel(handlerCtx) hook onto it without a goroutine.
	if v := c.bus.life.Value(key); v != nil {
		return v
	}
	return c.parent.Value(key)
}

func (c *handlerCtx) String() string { return "eventbus.handlerContext(" + c.sub + ")" }

type deliveryKey struct{}
type busKey struct{}

// Delivery describes the delivery a handler is running for.
type Delivery struct {
	Subscription string // the subscription's Durable or generated name
	Attempt      int    // 1 for the first attempt
	MaxAttempts  int    // the subscription's MaxAttempts
}

// Last reports whether this is the last attempt before a dead letter.
func (d Delivery) Last() bool { return d.Attempt >= d.MaxAttempts }

// GivesUp reports whether err, returned by this attempt, makes the bus give
// the event up to the dead-letter callback: a Permanent error, or any error
// on the last attempt. Middleware that logs or counts dead letters uses it.
// For the zero Delivery (outside a bus) only a Permanent error gives up.
func (d Delivery) GivesUp(err error) bool {
	return err != nil && (IsPermanent(err) || d.MaxAttempts > 0 && d.Last())
}

// DeliveryFrom returns the delivery of a handler's context, for middleware
// that logs or measures. ok is false outside handlers.
func DeliveryFrom(ctx context.Context) (d Delivery, ok bool) {
	d, ok = ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// WithDelivery returns ctx carrying d. Transports other than the memory bus
// use it so that DeliveryFrom works in their handlers too.
func WithDelivery(ctx context.Context, d Delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, d)
}

var (
	bgCtx   = context.Background()
	todoCtx = context.TODO()
)

// isBackground reports whether ctx is context.Background() or TODO(). It is
// written so that it never compares two values of one non-comparable type.
func isBackground(ctx context.Context) bool { return ctx == bgCtx || ctx == todoCtx }
