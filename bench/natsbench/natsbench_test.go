package natsbench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/natsbus"
)

// The benchmarks compare natsbus with raw nats.go JetStream on one embedded
// server (started once per test binary, on first use), in the same run. An
// op is one event; events/s is b.N over the timed part. Every sub-benchmark
// uses a fresh stream (file storage, 2-minute duplicate window, as natsbus
// creates), deleted when it ends.
//
// Publish: raw publishes RawMsg (what natsbus puts on the wire) with
// PublishMsgAsync, at most 512 pending (natsbus's window per Publish call),
// then waits for PublishAsyncComplete; natsbus calls Publish with batches of
// 1000 events, which returns once the stream acknowledged them all.
//
// PublishToHandled: the same publishing, with the timer running until one
// consumer has handled every event. Raw: an ephemeral pull consumer
// configured like a plain natsbus subscription (explicit acks, MaxAckPending
// 1024, deliver new), Consume fetching 1024 at a time, whose callback decodes
// the JSON payload and Acks each message. natsbus: eventbus.On with a typed
// handler (default options: queue 1024, 1 worker; it acks each event).
//
// Each natsbus run also reports pct-of-raw, its events/s as a percentage of
// the median raw events/s of the same invocation (see pair). The goal is
// natsbus >= 70% of raw, for Publish and for PublishToHandled.

// batch is how many events one natsbus Publish call carries.
const batch = 1000

var srv struct {
	once sync.Once
	s    *server.Server
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if srv.s != nil {
		srv.s.Shutdown()
		srv.s.WaitForShutdown()
	}
	if srv.dir != "" {
		os.RemoveAll(srv.dir)
	}
	os.Exit(code)
}

// serverURL starts the shared server once and returns its client URL.
func serverURL(b *testing.B) string {
	b.Helper()
	srv.once.Do(func() {
		if srv.dir, srv.err = os.MkdirTemp("", "natsbench-"); srv.err != nil {
			return
		}
		srv.s, srv.err = StartServer(srv.dir)
	})
	if srv.err != nil {
		b.Fatalf("nats-server: %v", srv.err)
	}
	return srv.s.ClientURL()
}

// connect opens a connection of its own to the shared server, closed when
// the benchmark ends.
func connect(b *testing.B) *nats.Conn {
	b.Helper()
	nc, err := nats.Connect(serverURL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}

var streams atomic.Int64

func newStream() string { return fmt.Sprintf("B%d", streams.Add(1)) }

// deleteStreams removes the benchmark's streams when it ends, so every
// sub-benchmark finds the server in the same state.
func deleteStreams(b *testing.B, names ...string) {
	b.Cleanup(func() {
		nc, err := nats.Connect(serverURL(b))
		if err != nil {
			b.Error(err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			b.Error(err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, name := range names {
			if err := js.DeleteStream(ctx, name); err != nil {
				b.Errorf("deleting stream %s: %v", name, err)
			}
		}
	})
}

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

type raw struct {
	js     jetstream.JetStream
	stream string
	failed atomic.Int64
}

func newRaw(b *testing.B) *raw {
	r := &raw{stream: newStream()}
	var err error
	r.js, err = jetstream.New(connect(b), jetstream.WithPublishAsyncMaxPending(512),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { r.failed.Add(1) }))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.js.CreateStream(ctx, jetstream.StreamConfig{Name: r.stream, Subjects: []string{r.stream + ".>"},
		Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}); err != nil {
		b.Fatal(err)
	}
	deleteStreams(b, r.stream)
	return r
}

func (r *raw) publish(b *testing.B, ctx context.Context, n int) {
	for i := range n {
		if _, err := r.js.PublishMsgAsync(RawMsg(r.stream, i), jetstream.WithStallWait(time.Minute)); err != nil {
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

func newBus(b *testing.B) *natsbus.Bus {
	stream := newStream()
	nc := connect(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bus, err := natsbus.New(ctx, nc, stream, eventbus.WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	deleteStreams(b, stream, stream+"_DLQ") // runs after Close (cleanups run last-in first-out)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := bus.Close(ctx); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	return bus
}

func busPublish(b *testing.B, ctx context.Context, bus *natsbus.Bus, n int) {
	for done := 0; done < n; {
		k := min(batch, n-done)
		if err := bus.Publish(ctx, Events(k)...); err != nil {
			b.Fatal(err)
		}
		done += k
	}
}

func wait(b *testing.B, ctx context.Context, done <-chan struct{}) {
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
}

// pair runs the raw and natsbus sub-benchmarks and reports events/s for
// both, and for natsbus also pct-of-raw: its events/s as a percentage of the
// median events/s of the raw runs with the same b.N. (The testing package
// runs all -count runs of raw before those of natsbus, so the runs are not
// interleaved; the median keeps one noisy raw run from skewing every ratio.)
func pair(b *testing.B, rawF, busF func(b *testing.B)) {
	rawRates := make(map[int][]float64) // by b.N
	b.Run("raw", func(b *testing.B) {
		rawF(b)
		rate := float64(b.N) / b.Elapsed().Seconds()
		rawRates[b.N] = append(rawRates[b.N], rate)
		b.ReportMetric(rate, "events/s")
	})
	b.Run("natsbus", func(b *testing.B) {
		busF(b)
		rate := float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "events/s")
		if rs := rawRates[b.N]; len(rs) > 0 {
			b.ReportMetric(100*rate/median(rs), "pct-of-raw")
		}
	})
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// BenchmarkPublish: op = one event published and acknowledged by the stream.
func BenchmarkPublish(b *testing.B) {
	pair(b, func(b *testing.B) {
		ctx := benchCtx(b)
		r := newRaw(b)
		b.ResetTimer()
		r.publish(b, ctx, b.N)
		b.StopTimer()
	}, func(b *testing.B) {
		ctx := benchCtx(b)
		bus := newBus(b)
		b.ResetTimer()
		busPublish(b, ctx, bus, b.N)
		b.StopTimer()
	})
}

// BenchmarkPublishToHandled: op = one event published, delivered to one
// consumer, decoded and acked.
func BenchmarkPublishToHandled(b *testing.B) {
	pair(b, func(b *testing.B) {
		ctx := benchCtx(b)
		r := newRaw(b)
		c, err := r.js.CreateConsumer(ctx, r.stream, jetstream.ConsumerConfig{
			DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: 10 * time.Second, MaxDeliver: -1, MaxAckPending: eventbus.DefaultQueueSize,
			FilterSubject: r.stream + "." + EventType, InactiveThreshold: 5 * time.Minute,
		})
		if err != nil {
			b.Fatal(err)
		}
		var handled, failed atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		cc, err := c.Consume(func(m jetstream.Msg) {
			var p Payload
			if err := json.Unmarshal(m.Data(), &p); err != nil {
				failed.Add(1)
			}
			if err := m.Ack(); err != nil {
				failed.Add(1)
			}
			if handled.Add(1) == n {
				close(done)
			}
		}, jetstream.PullMaxMessages(eventbus.DefaultQueueSize))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Stop()
		b.ResetTimer()
		r.publish(b, ctx, b.N)
		wait(b, ctx, done)
		b.StopTimer()
		if f := failed.Load(); f > 0 {
			b.Fatalf("%d raw decodes or acks failed", f)
		}
	}, func(b *testing.B) {
		ctx := benchCtx(b)
		bus := newBus(b)
		var handled atomic.Int64
		done := make(chan struct{})
		n := int64(b.N)
		if _, err := eventbus.On(bus, EventType, func(_ context.Context, _ eventbus.Event, _ Payload) error {
			if handled.Add(1) == n {
				close(done)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		busPublish(b, ctx, bus, b.N)
		wait(b, ctx, done)
		b.StopTimer()
	})
}
