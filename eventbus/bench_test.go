package eventbus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/gigbus/gigbus/eventbus"
)

type benchPayload struct {
	ID    uint64
	TS    int64
	Value float64
}

// BenchmarkThroughput measures publish-to-handled throughput: each op is one
// Publish, and the timer includes handling every delivery (Flush at the end).
func BenchmarkThroughput(b *testing.B) {
	for _, subs := range []int{1, 10} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			bus := eventbus.New(eventbus.WithLogger(nil))
			defer bus.Close(context.Background())
			var handled atomic.Int64
			for range subs {
				bus.Subscribe("Bench", func(context.Context, eventbus.Event) error { handled.Add(1); return nil })
			}
			ctx := context.Background()
			data := any(benchPayload{ID: 1, Value: 2})
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := bus.Publish(ctx, eventbus.Event{Type: "Bench", ID: "x", Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			if err := bus.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if got := handled.Load(); got != int64(b.N*subs) {
				b.Fatalf("handled %d, want %d", got, b.N*subs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
		})
	}
}

// BenchmarkThroughputParallel publishes from GOMAXPROCS goroutines to one
// subscription.
func BenchmarkThroughputParallel(b *testing.B) {
	bus := eventbus.New(eventbus.WithLogger(nil))
	defer bus.Close(context.Background())
	bus.Subscribe("Bench", func(context.Context, eventbus.Event) error { return nil })
	ctx := context.Background()
	data := any(benchPayload{ID: 1})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := bus.Publish(ctx, eventbus.Event{Type: "Bench", ID: "x", Data: data}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := bus.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLatency measures one event's round trip: Publish, then wait until
// the handler has run.
func BenchmarkLatency(b *testing.B) {
	bus := eventbus.New(eventbus.WithLogger(nil))
	defer bus.Close(context.Background())
	done := make(chan struct{}, 1)
	bus.Subscribe("Bench", func(context.Context, eventbus.Event) error { done <- struct{}{}; return nil })
	ctx := context.Background()
	data := any(benchPayload{ID: 1})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := bus.Publish(ctx, eventbus.Event{Type: "Bench", ID: "x", Data: data}); err != nil {
			b.Fatal(err)
		}
		<-done
	}
}

// BenchmarkPublish measures the publisher's side alone (the sync path):
// validation, filling, routing and queueing, with no subscription, one
// subscription, and with Publish filling ID and Time itself.
func BenchmarkPublish(b *testing.B) {
	for _, tc := range []struct {
		name string
		subs int
		id   string
	}{{"no-subscription", 0, "x"}, {"one-subscription", 1, "x"}, {"generated-id", 1, ""}} {
		b.Run(tc.name, func(b *testing.B) {
			bus := eventbus.New(eventbus.WithLogger(nil))
			defer bus.Close(context.Background())
			for range tc.subs {
				bus.Subscribe("Bench", func(context.Context, eventbus.Event) error { return nil }, eventbus.QueueSize(1<<20))
			}
			ctx := context.Background()
			data := any(benchPayload{ID: 1})
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := bus.Publish(ctx, eventbus.Event{Type: "Bench", ID: tc.id, Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			bus.Flush(ctx)
		})
	}
}
