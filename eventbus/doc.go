// Package eventbus is gigbus's event bus: the vocabulary every transport
// shares (Event, Handler, Bus, the options, the errors) and the in-process
// transport, MemoryBus.
//
// # Publishing and subscribing
//
//	bus := eventbus.New(eventbus.WithSource("ticket-service"))
//	defer bus.Close(ctx)
//	bus.Subscribe("TicketPurchased", func(ctx context.Context, e eventbus.Event) error { ... })
//	bus.Publish(ctx, eventbus.Event{Type: "TicketPurchased", Subject: concertID, Data: purchased})
//
// On subscribes a typed handler; Decode gives the payload as a T whether Data
// holds a T (in-process) or JSON (after a wire).
//
// # Delivery guarantees
//
// These hold for every transport (the eventbustest suite checks them):
//
//   - Every subscription gets every event of its type ("*": of every type).
//     A Durable group shares its events: each reaches one member.
//   - Delivery is at least once: an accepted event is handled, or retried up
//     to MaxAttempts (3 by default, with exponential backoff and jitter),
//     then handed once to the dead-letter callback. A handler's panic is
//     recovered and counts as a failed attempt. Only Close giving up at its
//     deadline drops events the memory bus accepted; a stream transport
//     keeps them in the stream.
//   - Events with the same Subject are handled one at a time and in publish
//     order at each subscription, even with Concurrency(n > 1). Events
//     without a Subject are handled in publish order only with one worker.
//   - Handlers get the publisher's context values (trace, correlation id)
//     but not its cancellation: an HTTP request that ends does not cancel
//     the work its events cause. Their context is cancelled only when Close
//     gives up waiting.
//   - Publish from outside a handler waits while a subscription's queue is
//     full (QueueSize), or returns its context's error. Publish from inside a
//     handler never waits, so no cycle of handlers can deadlock. A handler
//     may publish, subscribe and unsubscribe.
//   - Flush waits until the bus is idle, including what handlers publish
//     meanwhile. Close stops outside publishers (ErrClosed), drains what was
//     accepted and leaves no goroutine behind.
//
// The memory bus keeps nothing across a restart; the outbox package makes a
// state change and its events commit together, and natsbus moves the bus onto
// NATS JetStream for more than one process, with the same Bus interface.
//
// # Observability
//
// Logging is middleware for log/slog; the metrics and otelbus subpackages add
// Prometheus metrics and OpenTelemetry trace propagation (Meta["traceparent"]).
// Topology reports who publishes and who handles which type, and renders it
// as a Mermaid diagram. DeadLetters and Replay keep failed events at hand.
package eventbus
