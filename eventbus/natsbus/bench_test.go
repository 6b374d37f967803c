package natsbus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/natsbus"
)

// The benchmarks compare natsbus with raw nats.go JetStream on the same
// server (the shared test server, over loopback TCP), in the same run. An op
// is one event. Raw publishes the same messages natsbus does (the same ce-
// headers, payload and Nats-Msg-Id, since de-duplication has a cost of its
// own) with PublishMsgAsync, at most 512 pending as in natsbus, then waits
// for PublishAsyncComplete; natsbus publishes batches of 1000 events per
// Publish call. Raw consuming is a pull Consume with one Ack per message;
// natsbus consumes with a typed handler (eventbus.On).
//
//	go test -run '^$' -bench . -benchtime 50000x -count 3 ./eventbus/natsbus
//
// A fixed -benchtime gives raw and natsbus the same number of events.

const benchBatch = 1000

type benchPayload struct {
	N    int    `json:"n"`
	Name string `json:"name"`
}

func benchEvents(n int) []eventbus.Event {
	events := make([]eventbus.Event, n)
	for i := range events {
		events[i] = eventbus.Event{Type: "Bench", Subject: fmt.Sprint(i % 16), Data: benchPayload{i, "concert"}}
	}
	return events
}

// rawMsg builds what natsbus would publish for one event.
func rawMsg(stream string, i int) *nats.Msg {
	id := uuid.Must(uuid.NewV7()).String()
	data, _ := json.Marshal(benchPayload{i, "concert"})
	h := nats.Header{}
	h["ce-specversion"] = []string{"1.0"}
	h["ce-id"] = []string{id}
	h["ce-type"] = []string{"Bench"}
	h["ce-source"] = []string{"eventbus"}
	h["ce-time"] = []string{time.Now().Format(time.RFC3339Nano)}
	h["ce-subject"] = []string{fmt.Sprint(i % 16)}
	h["Content-Type"] = []string{"application/json"}
	h["Nats-Msg-Id"] = []string{id}
	return &nats.Msg{Subject: stream + ".Bench", Header: h, Data: data}
}

func rawPublish(b *testing.B, ctx context.Context, r *raw, n int) {
	for i := range n {
		if _, err := r.js.PublishMsgAsync(rawMsg(r.stream, i), jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-r.js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
	if n := r.failed.Load(); n > 0 {
		b.Fatalf("%d raw publishes failed", n)
	}
}

func busPublish(b *testing.B, ctx context.Context, bus *natsbus.Bus, n int) {
	for done := 0; done < n; {
		k := min(benchBatch, n-done)
		if err := bus.Publish(ctx, benchEvents(k)...); err != nil {
			b.Fatal(err)
		}
		done += k
	}
}

type raw struct {
	js     jetstream.JetStream
	stream string
	failed atomic.Int64
}

func rawJetStream(b *testing.B) *raw {
	nc := connect(b, serverURL(b))
	r := &raw{stream: newStream()}
	var err error
	r.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(512),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { r.failed.Add(1) }))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.js.CreateStream(ctx, jetstream.StreamConfig{Name: r.stream, Subjects: []string{r.stream + ".>"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}); err != nil {
		b.Fatal(err)
	}
	return r
}

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkPublish(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		ctx := benchCtx(b)
		r := rawJetStream(b)
		b.ResetTimer()
		rawPublish(b, ctx, r, b.N)
		reportRate(b)
	})
	b.Run("natsbus", func(b *testing.B) {
		ctx := benchCtx(b)
		bus, _ := newBus(b)
		b.ResetTimer()
		busPublish(b, ctx, bus, b.N)
		reportRate(b)
	})
}

func BenchmarkPublishToHandled(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		ctx := benchCtx(b)
		r := rawJetStream(b)
		c, err := r.js.CreateConsumer(ctx, r.stream, jetstream.ConsumerConfig{
			AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
			FilterSubject: r.stream + ".Bench", MaxAckPending: eventbus.DefaultQueueSize,
		})
		if err != nil {
			b.Fatal(err)
		}
		var handled atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		cc, err := c.Consume(func(m jetstream.Msg) {
			var p benchPayload
			_ = json.Unmarshal(m.Data(), &p)
			_ = m.Ack()
			if handled.Add(1) == n {
				close(done)
			}
		}, jetstream.PullMaxMessages(eventbus.DefaultQueueSize))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Stop()
		b.ResetTimer()
		rawPublish(b, ctx, r, b.N)
		select {
		case <-done:
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		}
		reportRate(b)
	})
	b.Run("natsbus", func(b *testing.B) {
		ctx := benchCtx(b)
		bus, _ := newBus(b)
		var handled atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		if _, err := eventbus.On(bus, "Bench", func(_ context.Context, _ eventbus.Event, _ benchPayload) error {
			if handled.Add(1) == n {
				close(done)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		busPublish(b, ctx, bus, b.N)
		select {
		case <-done:
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		}
		reportRate(b)
	})
}
