//go:build !nogigbus

package bench

import (
	"context"
	"testing"

	"github.com/gigbus/gigbus/eventbus"
)

func gigbusImpls() []Impl {
	return []Impl{
		{Name: ImplGigbus, Setup: func(tb testing.TB, hs []func(Payload)) Conn { return setupGigbus(tb, hs, "x") }},
		{Name: ImplGigbusGenID, Setup: func(tb testing.TB, hs []func(Payload)) Conn { return setupGigbus(tb, hs, "") }},
	}
}

// setupGigbus: eventbus.New(WithLogger(nil)) with default subscription
// options, one Subscribe("T", h) per handler. id is the Event.ID every
// publish carries; "" lets Publish generate one (a UUIDv7).
func setupGigbus(tb testing.TB, hs []func(Payload), id string) Conn {
	ctx := context.Background()
	bus := eventbus.New(eventbus.WithLogger(nil))
	for _, h := range hs {
		_, err := bus.Subscribe("T", func(_ context.Context, e eventbus.Event) error {
			h(e.Data.(Payload))
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return Conn{
		Publish: func(p Payload) {
			if err := bus.Publish(ctx, eventbus.Event{Type: "T", ID: id, Data: p}); err != nil {
				panic(err)
			}
		},
		Drain: func() {
			if err := bus.Flush(ctx); err != nil {
				tb.Error(err)
			}
		},
		Close: func() {
			if err := bus.Close(ctx); err != nil {
				tb.Error(err)
			}
		},
	}
}
