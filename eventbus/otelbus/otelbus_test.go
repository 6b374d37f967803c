package otelbus_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/otelbus"
)

// setup returns a tracer provider recording into an in-memory exporter and a
// memory bus traced with it; both are shut down when the test ends.
func setup(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter, *eventbus.MemoryBus) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	bus := newBus(t, tp)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp, bus
}

func newBus(t *testing.T, tp trace.TracerProvider) *eventbus.MemoryBus {
	t.Helper()
	bus := eventbus.New(otelbus.New(tp).Option(), eventbus.WithLogger(nil), eventbus.WithDeadLetterKeep(0))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := bus.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return bus
}

func subscribe(t *testing.T, bus eventbus.Bus, typ string, h eventbus.Handler, opts ...eventbus.SubscribeOption) {
	t.Helper()
	if _, err := bus.Subscribe(typ, h, opts...); err != nil {
		t.Fatalf("Subscribe(%q): %v", typ, err)
	}
}

func publish(t *testing.T, ctx context.Context, bus eventbus.Bus, events ...eventbus.Event) {
	t.Helper()
	if err := bus.Publish(ctx, events...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := bus.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// span returns the one recorded span named name.
func span(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("spans named %q: got %d, want 1 (all: %v)", name, len(found), names(exp.GetSpans()))
	}
	return found[0]
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attr(s tracetest.SpanStub, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func TestHandlerSpanIsChildOfPublisherSpan(t *testing.T) {
	t.Parallel()
	tp, exp, bus := setup(t)
	var handlerSpan trace.SpanContext
	subscribe(t, bus, "TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
		handlerSpan = trace.SpanContextFromContext(ctx)
		return nil
	}, eventbus.Durable("mailer"))

	ctx, req := tp.Tracer("test").Start(context.Background(), "POST /purchases")
	publish(t, ctx, bus, eventbus.Event{ID: "ev-1", Type: "TicketPurchased", Subject: "concert-1"})
	req.End()

	parent := span(t, exp, "POST /purchases")
	got := span(t, exp, "process TicketPurchased")
	if got.Parent.SpanID() != parent.SpanContext.SpanID() || got.SpanContext.TraceID() != parent.SpanContext.TraceID() {
		t.Errorf("handler span parent = %v in trace %v, want %v in trace %v",
			got.Parent.SpanID(), got.SpanContext.TraceID(), parent.SpanContext.SpanID(), parent.SpanContext.TraceID())
	}
	if !got.Parent.IsRemote() {
		t.Errorf("handler span's parent is not remote: it did not come from Meta")
	}
	if handlerSpan.SpanID() != got.SpanContext.SpanID() {
		t.Errorf("handler's context has span %v, want the consumer span %v", handlerSpan.SpanID(), got.SpanContext.SpanID())
	}
	if got.SpanKind != trace.SpanKindConsumer {
		t.Errorf("span kind = %v, want consumer", got.SpanKind)
	}
	for key, want := range map[attribute.Key]string{
		"messaging.system":                        "gigbus",
		"messaging.operation.type":                "process",
		"messaging.destination.name":              "TicketPurchased",
		"messaging.message.id":                    "ev-1",
		"messaging.destination.subscription.name": "mailer",
		"gigbus.event.subject":                    "concert-1",
	} {
		if got := attr(got, key).String(); got != want {
			t.Errorf("attribute %s = %q, want %q", key, got, want)
		}
	}
	if got.Status.Code != codes.Unset {
		t.Errorf("status = %v, want unset", got.Status)
	}
}

func TestHandlerThatPublishesContinuesTheTrace(t *testing.T) {
	t.Parallel()
	tp, exp, bus := setup(t)
	subscribe(t, bus, "TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
		return bus.Publish(ctx, eventbus.Event{Type: "SeatReserved"})
	})
	subscribe(t, bus, "SeatReserved", func(ctx context.Context, e eventbus.Event) error {
		return bus.Publish(ctx, eventbus.Event{Type: "ReceiptSent"})
	})
	subscribe(t, bus, "ReceiptSent", func(context.Context, eventbus.Event) error { return nil })

	ctx, req := tp.Tracer("test").Start(context.Background(), "POST /purchases")
	publish(t, ctx, bus, eventbus.Event{Type: "TicketPurchased"})
	req.End()

	chain := []string{"POST /purchases", "process TicketPurchased", "process SeatReserved", "process ReceiptSent"}
	for i := 1; i < len(chain); i++ {
		parent, child := span(t, exp, chain[i-1]), span(t, exp, chain[i])
		if child.SpanContext.TraceID() != parent.SpanContext.TraceID() {
			t.Errorf("%q is in trace %v, want %v", chain[i], child.SpanContext.TraceID(), parent.SpanContext.TraceID())
		}
		if child.Parent.SpanID() != parent.SpanContext.SpanID() {
			t.Errorf("%q has parent %v, want %q (%v)", chain[i], child.Parent.SpanID(), chain[i-1], parent.SpanContext.SpanID())
		}
	}
}

func TestPublisherMetaIsNotMutated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		meta map[string]string
	}{
		{"nil", nil},
		{"empty", map[string]string{}},
		{"with entries", map[string]string{"correlationid": "c-1"}},
		{"with a stale traceparent", map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tp, _, bus := setup(t)
			var seen map[string]string
			subscribe(t, bus, "TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
				seen = e.Meta
				return nil
			})
			before := maps.Clone(tt.meta)
			ctx, req := tp.Tracer("test").Start(context.Background(), "request")
			publish(t, ctx, bus, eventbus.Event{Type: "TicketPurchased", Meta: tt.meta})
			req.End()

			if !maps.Equal(tt.meta, before) || (tt.meta == nil) != (before == nil) {
				t.Errorf("publisher's Meta = %v after Publish, want %v", tt.meta, before)
			}
			want := "00-" + req.SpanContext().TraceID().String() + "-" + req.SpanContext().SpanID().String() + "-01"
			if got := seen["traceparent"]; got != want {
				t.Errorf("handler's traceparent = %q, want %q", got, want)
			}
			for k, v := range before {
				if k != "traceparent" && seen[k] != v {
					t.Errorf("handler's Meta[%q] = %q, want %q", k, seen[k], v)
				}
			}
		})
	}
}

func TestWithoutASpanMetaIsKept(t *testing.T) {
	t.Parallel()
	_, exp, bus := setup(t)
	var seen map[string]string
	subscribe(t, bus, "TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
		seen = e.Meta
		return nil
	})

	// No span in the context, no trace in Meta: the handler's span starts a trace.
	publish(t, context.Background(), bus, eventbus.Event{Type: "TicketPurchased"})
	if seen != nil {
		t.Errorf("Meta = %v, want nil (nothing to propagate)", seen)
	}
	if s := span(t, exp, "process TicketPurchased"); s.Parent.IsValid() {
		t.Errorf("handler span has parent %v, want a root span", s.Parent.SpanID())
	}
}

// An event relayed with a context of no span (from an outbox, or off a wire
// into another process's bus) keeps the trace its Meta carries.
func TestTraceCrossesBusesThroughMeta(t *testing.T) {
	t.Parallel()
	tp, exp, bus := setup(t)
	other := newBus(t, tp)
	var relayed eventbus.Event
	subscribe(t, bus, "TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
		relayed = e
		return nil
	})
	subscribe(t, other, "TicketPurchased", func(context.Context, eventbus.Event) error { return nil },
		eventbus.Durable("remote"))

	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	publish(t, ctx, bus, eventbus.Event{Type: "TicketPurchased"})
	req.End()
	publish(t, context.Background(), other, relayed)

	var remote tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if attr(s, "messaging.destination.subscription.name").AsString() == "remote" {
			remote = s
		}
	}
	if remote.Parent.SpanID() != req.SpanContext().SpanID() {
		t.Errorf("relayed handler span's parent = %v, want the request span %v", remote.Parent.SpanID(), req.SpanContext().SpanID())
	}
}

func TestFailedAttemptsAreRecorded(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	tests := []struct {
		name        string
		handler     eventbus.Handler
		maxAttempts int
		wantSpans   int
		wantEvents  int // exception events recorded, per span
	}{
		{"error, retried", func(context.Context, eventbus.Event) error { return errBoom }, 2, 2, 1},
		{"permanent error", func(context.Context, eventbus.Event) error { return eventbus.Permanent(errBoom) }, 3, 1, 1},
		{"panic", func(context.Context, eventbus.Event) error { panic("boom") }, 2, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, exp, bus := setup(t)
			subscribe(t, bus, "TicketPurchased", tt.handler,
				eventbus.MaxAttempts(tt.maxAttempts), eventbus.Backoff(0, 0))
			publish(t, context.Background(), bus, eventbus.Event{Type: "TicketPurchased"})

			spans := exp.GetSpans()
			if len(spans) != tt.wantSpans {
				t.Fatalf("spans = %d, want %d (one per attempt)", len(spans), tt.wantSpans)
			}
			for i, s := range spans {
				if s.Status.Code != codes.Error {
					t.Errorf("span %d status = %v, want error", i, s.Status)
				}
				if len(s.Events) != tt.wantEvents {
					t.Errorf("span %d has %d events, want %d", i, len(s.Events), tt.wantEvents)
				}
				if got := attr(s, "gigbus.delivery.attempt").AsInt64(); got != int64(i+1) {
					t.Errorf("span %d attempt = %d, want %d", i, got, i+1)
				}
				last := i == len(spans)-1
				if got := attr(s, "gigbus.delivery.dead_lettered").AsBool(); got != last {
					t.Errorf("span %d dead_lettered = %v, want %v", i, got, last)
				}
			}
		})
	}
}
