package metrics_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/metrics"
)

// BenchmarkOverhead measures what the metrics add to each event: one publish
// hook call and one handler attempt through the middleware.
func BenchmarkOverhead(b *testing.B) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	hook := m.PublishHook()
	h := m.Middleware()(func(context.Context, eventbus.Event) error { return nil })
	ctx := eventbus.WithDelivery(context.Background(), eventbus.Delivery{Subscription: "mailer", Attempt: 1, MaxAttempts: 3})
	e := eventbus.Event{ID: "1", Type: "TicketPurchased"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			hook(ctx, &e)
			if err := h(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
