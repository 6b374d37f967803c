// Package otelbus carries OpenTelemetry traces across an event bus, so that a
// trace started at an HTTP request continues in every handler of the events
// it causes, through chains of handlers and across a wire:
//
//	tracing := otelbus.New(tp)
//	bus := eventbus.New(tracing.Option())
//
// The publish hook writes the publisher's span context into the event's Meta
// as W3C Trace Context ("traceparent", "tracestate"), which every transport
// carries (natsbus as the CloudEvents extensions ce-traceparent and
// ce-tracestate). The middleware reads it back and runs each handler attempt
// in a consumer span, a child of the publisher's span, named
// "process <event type>", with the messaging semantic conventions' attributes.
// A handler that publishes passes its context on, and the trace goes on.
//
// Give tracing.Option() before other bus options that add middleware (metrics,
// eventbus.Logging), so that they run inside the span and their logs carry
// its trace id.
package otelbus

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gigbus/gigbus/eventbus"
)

// ScopeName is the instrumentation scope of the spans otelbus starts.
const ScopeName = "github.com/gigbus/gigbus/eventbus/otelbus"

// System is the messaging.system attribute of the spans.
const System = "gigbus"

// Tracing propagates traces through events. Create it with New; it is safe
// for concurrent use.
type Tracing struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

// Option configures New.
type Option func(*Tracing)

// WithPropagator sets how the span context is written to and read from Meta
// (default propagation.TraceContext{}, the W3C "traceparent" and
// "tracestate"). Pass otel.GetTextMapPropagator() to use the global one, with
// baggage say.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(t *Tracing) { t.propagator = p }
}

// New returns tracing that starts spans with tp (the global TracerProvider if
// nil).
func New(tp trace.TracerProvider, opts ...Option) *Tracing {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t := &Tracing{
		tracer:     tp.Tracer(ScopeName),
		propagator: propagation.TraceContext{},
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Option returns the bus option that installs both the publish hook and the
// middleware: eventbus.New(t.Option()), or the same for another transport.
func (t *Tracing) Option() eventbus.Option {
	hook, mw := eventbus.WithPublishHook(t.PublishHook()), eventbus.WithMiddleware(t.Middleware())
	return func(c *eventbus.Config) {
		hook(c)
		mw(c)
	}
}

// PublishHook writes the span context of the publisher's ctx into the event's
// Meta. The Meta map is copied first: the publisher's map is never changed. An
// event published without a span in ctx keeps the trace context its Meta
// already has (one relayed from an outbox, say).
func (t *Tracing) PublishHook() eventbus.PublishHook {
	return func(ctx context.Context, e *eventbus.Event) {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return
		}
		meta := make(map[string]string, len(e.Meta)+2)
		for k, v := range e.Meta {
			meta[k] = v
		}
		t.propagator.Inject(ctx, propagation.MapCarrier(meta))
		e.Meta = meta
	}
}

// Middleware runs each handler attempt in a consumer span whose parent is the
// span context found in the event's Meta (or, without one, the span of the
// handler's context, if any). The handler gets the span's context, so what it
// publishes continues the trace. A failed attempt records its error on the
// span, and a panic marks the span as failed before the bus recovers it; the
// last failed attempt is marked gigbus.delivery.dead_lettered.
func (t *Tracing) Middleware() eventbus.Middleware {
	return func(next eventbus.Handler) eventbus.Handler {
		return func(ctx context.Context, e eventbus.Event) (err error) {
			ctx = t.propagator.Extract(ctx, propagation.MapCarrier(e.Meta))
			attrs := make([]attribute.KeyValue, 0, 8)
			attrs = append(attrs,
				semconv.MessagingSystemKey.String(System),
				semconv.MessagingOperationTypeProcess,
				semconv.MessagingOperationName("process"),
				semconv.MessagingDestinationName(e.Type),
				semconv.MessagingMessageID(e.ID),
			)
			d, inBus := eventbus.DeliveryFrom(ctx)
			if inBus {
				attrs = append(attrs,
					semconv.MessagingDestinationSubscriptionName(d.Subscription),
					attribute.Int("gigbus.delivery.attempt", d.Attempt))
			}
			if e.Subject != "" {
				attrs = append(attrs, attribute.String("gigbus.event.subject", e.Subject))
			}
			ctx, span := t.tracer.Start(ctx, "process "+e.Type,
				trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
			returned := false
			defer func() {
				if !returned {
					// The bus recovers the panic and retries; the span
					// only needs to show that this attempt failed.
					span.SetStatus(codes.Error, "handler panicked")
					if inBus && d.Last() {
						span.SetAttributes(attribute.Bool("gigbus.delivery.dead_lettered", true))
					}
				}
				span.End()
			}()
			err = next(ctx, e)
			returned = true
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
				if d.GivesUp(err) {
					span.SetAttributes(attribute.Bool("gigbus.delivery.dead_lettered", true))
				}
			}
			return err
		}
	}
}
