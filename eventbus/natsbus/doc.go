// Package natsbus is the eventbus.Bus transport over NATS JetStream, for
// more than one process. Handlers written for the in-memory bus run
// unchanged; it is the only package of gigbus that imports nats.go.
//
//	nc, _ := nats.Connect(url)
//	bus, err := natsbus.New(ctx, nc, "GIGBUS", eventbus.WithSource("ticket-service"))
//	...
//	defer nc.Close()
//	defer bus.Close(ctx)
//
// # On the wire
//
// One stream holds every event; an event of type T has the subject
// "<stream>.T", so types are NATS subject tokens ([A-Za-z0-9_-], separated by
// dots). Each event is a CloudEvent 1.0 in NATS binary mode: the attributes
// are "ce-" headers (ce-id, ce-type, ce-source, ce-subject, ce-time in RFC
// 3339, ce-specversion 1.0, and one ce-<key> per Meta entry, whose keys are
// therefore lowercase a-z0-9), the payload is the JSON of Data with
// Content-Type application/json. Nats-Msg-Id is the event id, so publishing
// an event again within the stream's duplicate window stores it once.
// Handlers get Data as a json.RawMessage; eventbus.Decode and eventbus.On
// read it as in-process.
//
// # Guarantees
//
//   - Publish returns once the stream stored the events (JetStream's
//     acknowledgement), never waiting for consumers: there is no
//     backpressure from subscriptions. During an outage it fails with an
//     error; it never drops an event silently.
//   - Delivery is at least once, across restarts: an event is acked after its
//     handler succeeded, retried in place with the subscription's backoff,
//     and after MaxAttempts attempts (counted from JetStream's NumDelivered,
//     so redeliveries count too; the handler always runs at least once)
//     published to the dead-letter stream "<stream>_DLQ" (subject
//     "<stream>_DLQ.<consumer>.<type>") with its original headers plus
//     Natsbus-Subscription, Natsbus-Error, Natsbus-Attempts and the others
//     below (message id "<event id>/<consumer>"), handed to the dead-letter
//     callback once, and terminated. An operator replays a dead letter by
//     publishing it again to "<stream>.<type>", which reaches every
//     subscription of the type.
//   - Durable(name) is a durable pull consumer shared by every instance that
//     subscribes with that name and type: each event reaches one instance.
//     A group created for the first time starts with new events; afterwards
//     it resumes where it stopped, and Unsubscribe never deletes it. A plain
//     subscription is an ephemeral consumer: every event from now on, in
//     every instance.
//   - Events with the same Subject are handled one at a time, in publish
//     order, within one instance, even with Concurrency(n): the instance
//     partitions what it fetches by Subject, and retries in place. Across the
//     instances of a durable group JetStream gives no per-Subject order.
//   - QueueSize bounds what one instance holds (fetched and not yet acked)
//     and is the consumer's MaxAckPending.
//   - Publisher context values do not cross the wire; Meta does (put the
//     trace context in Meta["traceparent"]). Handlers' contexts are the bus's
//     lifetime, cancelled only when Close gives up.
//   - Flush waits until every consumer of this bus acked everything stored
//     for it, nothing is in flight here, and the stream did not grow while
//     checking, so chains of handlers are waited for.
//   - Close: durable subscriptions stop fetching, handle what this instance
//     holds and leave the rest to their group; plain ones handle everything
//     stored for them before Close began and what the bus's handlers publish
//     meanwhile; then the bus leaves no goroutine behind. The connection
//     stays the caller's.
//   - After a disconnection or a server restart, consumption resumes when the
//     connection is back (use nats.MaxReconnects(-1) or similar). Deliveries
//     lost on the way, or held by an instance that died, come back after the
//     consumers' ack wait (10s); handlers running longer are kept alive
//     with InProgress. If the server comes back without its store, the bus
//     creates the streams and its consumers again (they start with new
//     events: what the server lost is lost) and logs it.
package natsbus
