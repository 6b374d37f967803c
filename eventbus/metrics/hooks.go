package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gigbus/gigbus/eventbus"
)

// Option returns the bus option that installs both the publish hook and the
// middleware: eventbus.New(m.Option()), or the same for another transport.
func (m *Metrics) Option() eventbus.Option {
	hook, mw := eventbus.WithPublishHook(m.PublishHook()), eventbus.WithMiddleware(m.Middleware())
	return func(c *eventbus.Config) {
		hook(c)
		mw(c)
	}
}

// PublishHook counts each published event in eventbus_published_total.
func (m *Metrics) PublishHook() eventbus.PublishHook {
	return func(_ context.Context, e *eventbus.Event) {
		m.publishedFor(e.Type).Inc()
	}
}

// Middleware measures each handler attempt: its duration, and whether it was
// handled, failed, or failed for the last time (dead-lettered). The last
// attempt is known from eventbus.DeliveryFrom, or an eventbus.Permanent error.
// A panic counts as a failure and goes on to the bus unrecovered.
//
// Installed with Option it runs outside each subscription's own middleware,
// so what it measures includes them (a typed handler's decoding, say).
//
// An event that the bus gives up on without a last attempt (its subscription
// ended, or Close gave up, while it waited to be retried) is dead-lettered but
// not counted here.
func (m *Metrics) Middleware() eventbus.Middleware {
	return func(next eventbus.Handler) eventbus.Handler {
		return func(ctx context.Context, e eventbus.Event) (err error) {
			start := time.Now()
			returned := false
			defer func() {
				if !returned { // panicking: the bus recovers it, as a failed attempt
					m.observe(ctx, e.Type, time.Since(start), errPanicked)
				}
			}()
			err = next(ctx, e)
			returned = true
			m.observe(ctx, e.Type, time.Since(start), err)
			return err
		}
	}
}

// errPanicked stands for the error a recovered panic becomes.
var errPanicked = errors.New("handler panicked")

func (m *Metrics) observe(ctx context.Context, typ string, took time.Duration, err error) {
	d, _ := eventbus.DeliveryFrom(ctx)
	s := m.seriesFor(d.Subscription, typ)
	s.duration.Observe(took.Seconds())
	if err == nil {
		s.handled.Inc()
		return
	}
	s.failed.Inc()
	if d.GivesUp(err) {
		s.deadLettered.Inc()
	}
}

type seriesKey struct{ sub, typ string }

// series is one subscription and type's handles.
type series struct {
	handled, failed, deadLettered prometheus.Counter
	duration                      prometheus.Observer
}

func (m *Metrics) seriesFor(sub, typ string) *series {
	k := seriesKey{subscriptionLabel(sub), typ}
	if s, ok := m.bySub.Load(k); ok {
		return s.(*series)
	}
	s := &series{
		handled:      m.handled.WithLabelValues(k.sub, k.typ),
		failed:       m.failed.WithLabelValues(k.sub, k.typ),
		deadLettered: m.deadLettered.WithLabelValues(k.sub, k.typ),
		duration:     m.duration.WithLabelValues(k.sub, k.typ),
	}
	v, _ := m.bySub.LoadOrStore(k, s)
	return v.(*series)
}

func (m *Metrics) publishedFor(typ string) prometheus.Counter {
	if c, ok := m.byType.Load(typ); ok {
		return c.(prometheus.Counter)
	}
	v, _ := m.byType.LoadOrStore(typ, m.published.WithLabelValues(typ))
	return v.(prometheus.Counter)
}
