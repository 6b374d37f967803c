package bench

import (
	"context"
	"encoding/binary"
	"math"
	"sync"
	"testing"

	evbus "github.com/asaskevich/EventBus"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// Implementation names, as they appear in benchmark names and tables.
const (
	ImplDirect       = "direct"
	ImplChan         = "chan"
	ImplWatermill    = "watermill"
	ImplAsaskAsync   = "asaskevich-async"
	ImplAsaskSync    = "asaskevich-sync"
	ImplGigbus       = "gigbus"
	ImplGigbusGenID  = "gigbus-genid"
	chanCap          = 1024
	watermillBuffer  = 1024
	watermillMsgUUID = "0190b7a4-7f2e-7c3a-9d2b-5f0e1c2a3b4d" // constant: UUID generation is not measured
)

// Impls returns every implementation in table order.
func Impls() []Impl {
	return append([]Impl{
		{Name: ImplDirect, Setup: setupDirect},
		{Name: ImplChan, Setup: setupChan},
		{Name: ImplWatermill, Setup: setupWatermill},
		{Name: ImplAsaskAsync, Setup: setupAsaskAsync},
		{Name: ImplAsaskSync, Setup: setupAsaskSync},
	}, gigbusImpls()...)
}

// setupDirect is the floor: Publish calls every handler in turn on the
// publisher's goroutine.
func setupDirect(_ testing.TB, hs []func(Payload)) Conn {
	return Conn{Publish: func(p Payload) {
		for _, h := range hs {
			h(p)
		}
	}}
}

// setupChan is the async floor: a buffered channel (cap 1024) and one
// consumer goroutine per subscriber.
func setupChan(_ testing.TB, hs []func(Payload)) Conn {
	chans := make([]chan Payload, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		ch := make(chan Payload, chanCap)
		chans[i] = ch
		wg.Go(func() {
			for p := range ch {
				h(p)
			}
		})
	}
	return Conn{
		Publish: func(p Payload) {
			for _, ch := range chans {
				ch <- p
			}
		},
		Close: func() {
			for _, ch := range chans {
				close(ch)
			}
			wg.Wait()
		},
	}
}

func encodePayload(p Payload) []byte {
	b := make([]byte, 0, 24)
	b = binary.LittleEndian.AppendUint64(b, p.ID)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.TS))
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Value))
}

func decodePayload(b []byte) Payload {
	return Payload{
		ID:    binary.LittleEndian.Uint64(b),
		TS:    int64(binary.LittleEndian.Uint64(b[8:])),
		Value: math.Float64frombits(binary.LittleEndian.Uint64(b[16:])),
	}
}

// setupWatermill: Watermill's GoChannel with an output buffer of 1024, one
// consumer goroutine per subscription that decodes the payload, calls the
// handler and Acks. Messages carry a constant UUID.
func setupWatermill(tb testing.TB, hs []func(Payload)) Conn {
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: watermillBuffer}, watermill.NopLogger{})
	var wg sync.WaitGroup
	for _, h := range hs {
		msgs, err := ps.Subscribe(context.Background(), "T")
		if err != nil {
			tb.Fatal(err)
		}
		wg.Go(func() {
			for msg := range msgs {
				h(decodePayload(msg.Payload))
				msg.Ack()
			}
		})
	}
	return Conn{
		Publish: func(p Payload) {
			if err := ps.Publish("T", message.NewMessage(watermillMsgUUID, encodePayload(p))); err != nil {
				panic(err)
			}
		},
		Close: func() {
			if err := ps.Close(); err != nil {
				tb.Error(err)
			}
			wg.Wait()
		},
	}
}

// setupAsaskAsync: asaskevich/EventBus SubscribeAsync(topic, fn, false), one
// goroutine per handler per event; Drain is WaitAsync.
func setupAsaskAsync(tb testing.TB, hs []func(Payload)) Conn {
	bus := evbus.New()
	for _, h := range hs {
		if err := bus.SubscribeAsync("T", func(p Payload) { h(p) }, false); err != nil {
			tb.Fatal(err)
		}
	}
	return Conn{
		Publish: func(p Payload) { bus.Publish("T", p) },
		Drain:   bus.WaitAsync,
	}
}

// setupAsaskSync: asaskevich/EventBus Subscribe + Publish, handlers run on the
// publisher's goroutine (under the bus lock).
func setupAsaskSync(tb testing.TB, hs []func(Payload)) Conn {
	bus := evbus.New()
	for _, h := range hs {
		if err := bus.Subscribe("T", func(p Payload) { h(p) }); err != nil {
			tb.Fatal(err)
		}
	}
	return Conn{Publish: func(p Payload) { bus.Publish("T", p) }}
}
