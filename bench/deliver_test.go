package bench

import (
	"fmt"
	"sync"
	"testing"
)

// TestImplsDeliver checks that every implementation, as the benchmarks set it
// up, hands every event to every subscription, so the benchmarks measure
// complete deliveries.
func TestImplsDeliver(t *testing.T) {
	t.Parallel()
	const events = 500
	for _, im := range Impls() {
		for _, subs := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/subs=%d", im.Name, subs), func(t *testing.T) {
				t.Parallel()
				cs, hs := newCounters(subs, events)
				var mu sync.Mutex
				seen := make([]map[uint64]bool, subs)
				for i := range hs {
					seen[i] = map[uint64]bool{}
					count := hs[i]
					hs[i] = func(p Payload) {
						mu.Lock()
						seen[i][p.ID] = true
						mu.Unlock()
						count(p)
					}
				}
				conn := im.Setup(t, hs)
				for i := range events {
					conn.Publish(payload(i))
				}
				if conn.Drain != nil {
					conn.Drain()
				}
				for _, c := range cs {
					<-c.done
				}
				if conn.Close != nil {
					conn.Close()
				}
				mu.Lock()
				defer mu.Unlock()
				for i, s := range seen {
					if len(s) != events {
						t.Errorf("subscription %d saw %d distinct events, want %d", i, len(s), events)
					}
				}
			})
		}
	}
}
