package eventbus

import (
	"context"
	"log/slog"
	"time"
)

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
				if d.Last() {
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
