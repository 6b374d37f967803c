// Package bench runs the same in-process publish/subscribe scenarios side by
// side against gigbus's memory bus and its peers: a direct function call (the
// floor), a buffered Go channel per subscriber, Watermill's GoChannel and
// asaskevich/EventBus.
//
// It is a separate module so that the gigbus module never depends on the
// libraries it is compared with. The benchmarks live in bench_test.go
// (`go test -run XXX -bench . -benchmem`); cmd/benchtable runs the same cases
// through testing.Benchmark, or reads `go test -bench` output, and prints a
// markdown table with the ratios the project's performance goal names.
package bench

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// Payload is the event body every implementation carries: a small struct value.
type Payload struct {
	ID    uint64
	TS    int64
	Value float64
}

// Conn is one implementation set up with its subscriptions.
type Conn struct {
	// Publish delivers p to every subscription. It must be safe for
	// concurrent use (the parallel scenario calls it from several goroutines).
	Publish func(p Payload)
	// Drain returns once the implementation says everything published so far
	// has been handled (gigbus: Flush; asaskevich async: WaitAsync). Nil when
	// the implementation has no such call; the harness then waits on the
	// handlers' own counters, which it also does after Drain.
	Drain func()
	// Close releases the implementation's goroutines. Nil when there are none.
	Close func()
}

// Impl is one implementation under test.
type Impl struct {
	Name string
	// Setup subscribes subs handlers to the one topic "T"; handler i calls
	// hs[i] for every payload it receives.
	Setup func(tb testing.TB, hs []func(Payload)) Conn
}

// Scenario names, in table order.
const (
	Throughput1  = "Throughput1"
	Throughput10 = "Throughput10"
	Parallel     = "Parallel"
	Latency      = "Latency"
)

// Scenarios lists the scenarios in table order.
var Scenarios = []string{Throughput1, Throughput10, Parallel, Latency}

// Case is one (scenario, implementation) benchmark.
type Case struct {
	Scenario string
	Impl     string
	F        func(b *testing.B)
}

// Cases returns every benchmark, scenario by scenario, implementations in
// table order.
func Cases() []Case {
	var cs []Case
	for _, sc := range Scenarios {
		for _, im := range Impls() {
			cs = append(cs, Case{Scenario: sc, Impl: im.Name, F: scenarioFunc(sc, im)})
		}
	}
	return cs
}

func scenarioFunc(sc string, im Impl) func(b *testing.B) {
	switch sc {
	case Throughput1:
		return func(b *testing.B) { benchThroughput(b, im, 1) }
	case Throughput10:
		return func(b *testing.B) { benchThroughput(b, im, 10) }
	case Parallel:
		return func(b *testing.B) { benchParallel(b, im) }
	case Latency:
		return func(b *testing.B) { benchLatency(b, im) }
	}
	panic(fmt.Sprintf("bench: unknown scenario %q", sc))
}

// counter is one subscription's handler in the throughput scenarios: it counts
// deliveries and closes done when the target is reached. The count is atomic
// because asaskevich's non-transactional async handlers run concurrently.
type counter struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
	_      [40]byte // keep counters of different subscribers off one cache line
}

func newCounters(subs, target int) ([]*counter, []func(Payload)) {
	cs := make([]*counter, subs)
	hs := make([]func(Payload), subs)
	for i := range cs {
		c := &counter{target: int64(target), done: make(chan struct{})}
		cs[i] = c
		hs[i] = c.handle
	}
	return cs, hs
}

func (c *counter) handle(p Payload) {
	if c.n.Add(1) == c.target {
		close(c.done)
	}
}

func payload(i int) Payload {
	return Payload{ID: uint64(i), TS: int64(i), Value: float64(i)}
}

// finish drains the implementation and waits until every subscription has
// handled every event; it reports an error if Drain returned early.
func finish(b *testing.B, conn Conn, cs []*counter) {
	if conn.Drain != nil {
		conn.Drain()
		for _, c := range cs {
			select {
			case <-c.done:
			default:
				b.Errorf("Drain returned with %d of %d events handled", c.n.Load(), c.target)
			}
		}
	}
	for _, c := range cs {
		<-c.done
	}
}

// benchThroughput: op = one publish; the timer runs until every delivery to
// every subscription has been handled.
func benchThroughput(b *testing.B, im Impl, subs int) {
	cs, hs := newCounters(subs, b.N)
	conn := im.Setup(b, hs)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		conn.Publish(payload(i))
	}
	finish(b, conn, cs)
	b.StopTimer()
	if subs > 1 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
	}
	if conn.Close != nil {
		conn.Close()
	}
}

// benchParallel: b.RunParallel publishers (GOMAXPROCS of them), one
// subscription; the timer runs until every event has been handled.
func benchParallel(b *testing.B, im Impl) {
	cs, hs := newCounters(1, b.N)
	conn := im.Setup(b, hs)
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(1) << 32)
		for pb.Next() {
			conn.Publish(payload(i))
			i++
		}
	})
	finish(b, conn, cs)
	b.StopTimer()
	if conn.Close != nil {
		conn.Close()
	}
}

// benchLatency: one event at a time; op = publish, then wait until the one
// subscription's handler has run (it signals a channel).
func benchLatency(b *testing.B, im Impl) {
	done := make(chan struct{}, 1)
	conn := im.Setup(b, []func(Payload){func(Payload) { done <- struct{}{} }})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		conn.Publish(payload(i))
		<-done
	}
	b.StopTimer()
	if conn.Drain != nil {
		conn.Drain()
	}
	if conn.Close != nil {
		conn.Close()
	}
}
