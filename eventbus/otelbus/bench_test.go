package otelbus_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/otelbus"
)

// BenchmarkOverhead measures what tracing adds to each event: the publish
// hook's injection into a copy of Meta and one handler attempt in a span.
func BenchmarkOverhead(b *testing.B) {
	run := func(b *testing.B, t *otelbus.Tracing, ctx context.Context) {
		hook := t.PublishHook()
		h := t.Middleware()(func(context.Context, eventbus.Event) error { return nil })
		hctx := eventbus.WithDelivery(context.Background(), eventbus.Delivery{Subscription: "mailer", Attempt: 1, MaxAttempts: 3})
		b.ReportAllocs()
		for b.Loop() {
			e := eventbus.Event{ID: "1", Type: "TicketPurchased", Meta: map[string]string{"correlationid": "c"}}
			hook(ctx, &e)
			if err := h(hctx, e); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("sdk-sampled", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider() // no exporter: spans are recorded, then dropped
		defer tp.Shutdown(context.Background())
		ctx, span := tp.Tracer("bench").Start(context.Background(), "request")
		defer span.End()
		run(b, otelbus.New(tp), ctx)
	})
	b.Run("noop", func(b *testing.B) {
		tp := noop.NewTracerProvider()
		run(b, otelbus.New(tp), context.Background())
	})
}
