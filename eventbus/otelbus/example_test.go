package otelbus_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/otelbus"
)

// A trace started by a request goes on in the handler of the event the
// request publishes, and in the handler of the event that handler publishes.
func Example() {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(ctx)

	bus := eventbus.New(otelbus.New(tp).Option())
	defer bus.Close(ctx)
	bus.Subscribe("TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
		// ctx holds the handler's span: what it publishes continues the trace.
		return bus.Publish(ctx, eventbus.Event{Type: "ReceiptSent"})
	})
	bus.Subscribe("ReceiptSent", func(ctx context.Context, e eventbus.Event) error { return nil })

	reqCtx, req := tp.Tracer("httpapi").Start(ctx, "POST /purchases")
	bus.Publish(reqCtx, eventbus.Event{Type: "TicketPurchased"})
	req.End()
	bus.Flush(ctx)

	// Walk the trace from the request down: spans end in any order.
	child := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		child[s.Parent.SpanID().String()] = s
	}
	for parent := req.SpanContext(); ; {
		s, ok := child[parent.SpanID().String()]
		if !ok {
			break
		}
		fmt.Printf("%s (%s), same trace: %v\n", s.Name, s.SpanKind, s.SpanContext.TraceID() == parent.TraceID())
		parent = s.SpanContext
	}
	// Output:
	// process TicketPurchased (consumer), same trace: true
	// process ReceiptSent (consumer), same trace: true
}
