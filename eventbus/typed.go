package eventbus

import "context"

// On subscribes a typed handler: the event's Data is decoded into a T with
// Decode before h runs, so h works the same in-process and after a wire. An
// event whose Data does not decode is dead-lettered at once (retrying would
// not help).
//
//	eventbus.On(bus, "TicketPurchased", func(ctx context.Context, e eventbus.Event, p TicketPurchased) error {
//		return notify(ctx, p.Email)
//	})
func On[T any](b Bus, eventType string, h func(ctx context.Context, e Event, v T) error, opts ...SubscribeOption) (Subscription, error) {
	return b.Subscribe(eventType, func(ctx context.Context, e Event) error {
		v, err := Decode[T](e)
		if err != nil {
			return Permanent(err)
		}
		return h(ctx, e, v)
	}, opts...)
}
