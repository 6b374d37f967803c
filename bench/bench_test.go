package bench

import "testing"

func run(b *testing.B, scenario string) {
	for _, c := range Cases() {
		if c.Scenario == scenario {
			b.Run(c.Impl, c.F)
		}
	}
}

// BenchmarkThroughput1: op = one publish to 1 subscription; the timer
// includes handling every delivery.
func BenchmarkThroughput1(b *testing.B) { run(b, Throughput1) }

// BenchmarkThroughput10: op = one publish to 10 subscriptions; the timer
// includes handling every delivery (ns/delivery = ns/op / 10).
func BenchmarkThroughput10(b *testing.B) { run(b, Throughput10) }

// BenchmarkParallel: b.RunParallel publishers, 1 subscription.
func BenchmarkParallel(b *testing.B) { run(b, Parallel) }

// BenchmarkLatency: op = publish one event and wait until it is handled.
func BenchmarkLatency(b *testing.B) { run(b, Latency) }
