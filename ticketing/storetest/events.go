package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
)

func testInbox(t *testing.T, newStore NewStore) {
	t.Run("mark processed once per subscription", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		for i, want := range []bool{true, false} {
			update(t, s, func(tx ticketing.Tx) error {
				first, err := tx.MarkProcessed(t.Context(), "sub-a", "e1")
				if err != nil || first != want {
					t.Fatalf("MarkProcessed #%d = %v, %v; want %v", i+1, first, err, want)
				}
				return nil
			})
		}
		update(t, s, func(tx ticketing.Tx) error {
			if first, _ := tx.MarkProcessed(t.Context(), "sub-b", "e1"); !first {
				t.Fatal("another subscription's first MarkProcessed = false, want true")
			}
			if done, _ := tx.Processed(t.Context(), "sub-b", "e1"); !done {
				t.Fatal("Processed in the same transaction = false, want true")
			}
			return nil
		})
		_ = s.View(t.Context(), func(tx ticketing.ReadTx) error {
			for _, c := range []struct {
				sub, id string
				want    bool
			}{{"sub-a", "e1", true}, {"sub-b", "e1", true}, {"sub-a", "e2", false}} {
				if got, err := tx.Processed(t.Context(), c.sub, c.id); got != c.want || err != nil {
					t.Errorf("Processed(%s, %s) = %v, %v; want %v", c.sub, c.id, got, err, c.want)
				}
			}
			return nil
		})
	})
	t.Run("concurrent marks of one event: exactly one first", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			firsts int
		)
		for range 8 {
			wg.Go(func() {
				err := s.Update(context.Background(), func(tx ticketing.Tx) error {
					first, err := tx.MarkProcessed(context.Background(), "sub", "e")
					if first {
						mu.Lock()
						firsts++
						mu.Unlock()
					}
					return err
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if firsts != 1 {
			t.Fatalf("%d transactions saw first=true, want 1", firsts)
		}
	})
}

func testOutbox(t *testing.T, newStore NewStore) {
	t.Run("relay publishes in commit order", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		bus := eventbus.New(eventbus.WithLogger(nil))
		t.Cleanup(func() { bus.Close(context.Background()) })
		var (
			mu  sync.Mutex
			got []eventbus.Event
		)
		if _, err := bus.Subscribe("*", func(_ context.Context, e eventbus.Event) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, e)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		relay, err := s.StartRelay(bus)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { relay.Close(context.Background()) })

		// Committed from several goroutines: the order to check is the commit
		// order, which the committers record under a lock held across Update.
		var (
			commitMu sync.Mutex
			want     []string
			wg       sync.WaitGroup
		)
		for g := range 4 {
			wg.Go(func() {
				for i := range 25 {
					commitMu.Lock()
					id := fmt.Sprintf("g%d-%02d", g, i)
					err := s.Update(context.Background(), func(tx ticketing.Tx) error {
						return tx.Append(context.Background(), eventbus.Event{ID: id, Type: "Ordered", Subject: "one", Data: map[string]string{"id": id}})
					})
					if err == nil {
						want = append(want, id)
					}
					commitMu.Unlock()
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if _, err := relay.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := bus.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != len(want) {
			t.Fatalf("got %d events, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].ID != want[i] {
				t.Fatalf("event %d = %s, want %s", i, got[i].ID, want[i])
			}
			d, err := eventbus.Decode[map[string]string](got[i])
			if err != nil || d["id"] != want[i] {
				t.Fatalf("event %d data = %v, %v", i, d, err)
			}
		}
	})
	t.Run("events of a failed transaction are never published", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		bus := eventbus.New(eventbus.WithLogger(nil))
		t.Cleanup(func() { bus.Close(context.Background()) })
		var (
			mu  sync.Mutex
			got []string
		)
		bus.Subscribe("*", func(_ context.Context, e eventbus.Event) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, e.ID)
			return nil
		})
		relay, err := s.StartRelay(bus)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { relay.Close(context.Background()) })
		_ = s.Update(t.Context(), func(tx ticketing.Tx) error {
			_ = tx.Append(t.Context(), eventbus.Event{ID: "rolled-back", Type: "X"})
			return errRollback
		})
		update(t, s, func(tx ticketing.Tx) error { return tx.Append(t.Context(), eventbus.Event{ID: "committed", Type: "X"}) })
		relay.Flush(t.Context())
		bus.Flush(t.Context())
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 1 || got[0] != "committed" {
			t.Fatalf("got %v, want [committed]", got)
		}
	})
	t.Run("requeue puts a published event back with a growing delay", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		bus := eventbus.New(eventbus.WithLogger(nil))
		t.Cleanup(func() { bus.Close(context.Background()) })
		var got atomic.Int32
		bus.Subscribe("*", func(context.Context, eventbus.Event) error { got.Add(1); return nil })
		relay, err := s.StartRelay(bus)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { relay.Close(context.Background()) })
		if _, _, err := s.Requeue(t.Context(), "never-appended"); ticketing.ErrorCode(err) != ticketing.ENOTFOUND {
			t.Fatalf("Requeue of an unknown event = %v, want ENOTFOUND", err)
		}
		update(t, s, func(tx ticketing.Tx) error { return tx.Append(t.Context(), eventbus.Event{ID: "rq", Type: "X"}) })
		relay.Flush(t.Context())
		bus.Flush(t.Context())
		before := time.Now()
		n1, at1, err1 := s.Requeue(t.Context(), "rq")
		n2, at2, err2 := s.Requeue(t.Context(), "rq")
		if err1 != nil || err2 != nil || n1 != 1 || n2 != 2 || !at1.After(before) || at2.Sub(before) <= at1.Sub(before) {
			t.Fatalf("Requeue twice = (%d, %v, %v), (%d, %v, %v); want 1 then 2, later each time", n1, at1, err1, n2, at2, err2)
		}
		// Not due yet: not published again.
		relay.Flush(t.Context())
		bus.Flush(t.Context())
		if n := got.Load(); n != 1 {
			t.Fatalf("published %d times, want once until the requeue is due", n)
		}
	})
	t.Run("append rejects an invalid event", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		err := s.Update(t.Context(), func(tx ticketing.Tx) error { return tx.Append(t.Context(), eventbus.Event{}) })
		if err == nil {
			t.Fatal("Append of an event without a Type succeeded")
		}
	})
}
