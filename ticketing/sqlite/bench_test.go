package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/sqlite"
)

// BenchmarkPurchase measures confirmed purchases through the services on the
// SQLite store and the in-memory bus, without HTTP: PurchaseTicket then
// AwaitOutcome, from 64 concurrent buyers. Each purchase is four write
// transactions (ticket, reservation, confirmation, notification inbox) plus
// the relay's batched marks.
func BenchmarkPurchase(b *testing.B) {
	for _, group := range []bool{true, false} {
		for _, buyers := range []int{2, 64} {
			b.Run(fmt.Sprintf("group=%v/buyers=%d", group, buyers), func(b *testing.B) {
				s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.WithGroupCommit(group), sqlite.WithRelayOptions(outbox.RelayLogger(nil)))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				bus := eventbus.New(eventbus.WithLogger(nil))
				defer bus.Close(context.Background())
				sys, err := ticketing.Start(ticketing.Config{Store: s, Bus: bus})
				if err != nil {
					b.Fatal(err)
				}
				defer sys.Close(context.Background())
				c, err := sys.Concerts.AddConcert(context.Background(), ticketing.NewConcert{
					Name: "Bench", Venue: "Hall", Date: time.Now().AddDate(1, 0, 0), TotalTickets: ticketing.MaxTotalTickets, Currency: "EUR"})
				if err != nil {
					b.Fatal(err)
				}
				var (
					n, confirmed atomic.Int64
					latMu        sync.Mutex
					lat          []time.Duration
				)
				b.SetParallelism(max(1, buyers/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				start := time.Now()
				cpu0 := cpuTime()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						i := n.Add(1)
						t0 := time.Now()
						tk, err := sys.Tickets.PurchaseTicket(ctx, c.ID, ticketing.NewTicket{CustomerName: "Buyer", CustomerEmail: fmt.Sprintf("b%d@example.com", i)})
						if err != nil {
							b.Error(err)
							return
						}
						wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
						tk, err = sys.Tickets.AwaitOutcome(wctx, tk.ID)
						cancel()
						if err != nil || tk.Status != ticketing.StatusConfirmed {
							b.Errorf("outcome %v %v", tk.Status, err)
							return
						}
						confirmed.Add(1)
						d := time.Since(t0)
						latMu.Lock()
						lat = append(lat, d)
						latMu.Unlock()
					}
				})
				b.ReportMetric(float64(confirmed.Load())/time.Since(start).Seconds(), "confirmed/s")
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(confirmed.Load()), "cpu-µs/purchase")
				slices.Sort(lat)
				if len(lat) > 0 {
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				}
				st := s.Stats()
				b.ReportMetric(float64(st.Transactions)/float64(st.Commits), "tx/commit")
			})
		}
	}
}

// cpuTime returns the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
