package eventbus

import (
	"context"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"time"
)

// Chain wraps h in mw, mw[0] outermost. Transports build a subscription's
// handler as Chain(h, append(busMiddleware, subscriptionMiddleware...)...).
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// HandlerName names h after its function, without the package path:
// "ticketing.(*ConcertService).reserve". Transports use it to name plain
// subscriptions for logs, dead letters and Topology.
func HandlerName(h Handler) string {
	f := runtime.FuncForPC(reflect.ValueOf(h).Pointer())
	if f == nil {
		return "handler"
	}
	fn := f.Name()
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		fn = fn[i+1:]
	}
	return strings.TrimSuffix(fn, "-fm")
}

// Logging returns middleware that logs each failed attempt at WARN (ERROR on
// the last attempt) and each success at DEBUG, with the event's id, type and
// subject, the subscription, the attempt and the time taken.
func Logging(l *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, e Event) error {
			start := time.Now()
			err := next(ctx, e)
			d, _ := DeliveryFrom(ctx)
			level := slog.LevelDebug
			msg := "eventbus: handled"
			if err != nil {
				level, msg = slog.LevelWarn, "eventbus: handler failed"
				if d.GivesUp(err) {
					level = slog.LevelError
				}
			}
			if !l.Enabled(ctx, level) {
				return err
			}
			attrs := []slog.Attr{
				slog.String("event_id", e.ID), slog.String("event_type", e.Type),
				slog.String("subscription", d.Subscription), slog.Int("attempt", d.Attempt),
				slog.Duration("took", time.Since(start)),
			}
			if e.Subject != "" {
				attrs = append(attrs, slog.String("subject", e.Subject))
			}
			if err != nil {
				attrs = append(attrs, slog.Any("err", err))
			}
			l.LogAttrs(ctx, level, msg, attrs...)
			return err
		}
	}
}
