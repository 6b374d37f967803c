package storetest

import (
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/gigbus/gigbus/ticketing"
)

func testIdempotency(t *testing.T, newStore NewStore) {
	get := func(t *testing.T) ticketing.IdempotencyStore {
		s, ok := newStore(t).(ticketing.IdempotencyStore)
		if !ok {
			t.Skip("the store is not a ticketing.IdempotencyStore")
		}
		return s
	}
	t.Run("reserve, complete, replay", func(t *testing.T) {
		t.Parallel()
		s := get(t)
		ctx := t.Context()
		r, err := s.Reserve(ctx, "concert-1", "key-1", "fp-a")
		if r != nil || err != nil {
			t.Fatalf("first Reserve = %+v, %v; want nil, nil", r, err)
		}
		r, err = s.Reserve(ctx, "concert-1", "key-1", "fp-b")
		if err != nil || r == nil || r.Done || r.Fingerprint != "fp-a" {
			t.Fatalf("Reserve while running = %+v, %v; want Done=false with the first fingerprint", r, err)
		}
		if r, _ := s.Reserve(ctx, "concert-2", "key-1", "fp-a"); r != nil {
			t.Fatalf("Reserve in another scope = %+v, want nil (scopes are separate)", r)
		}
		header := map[string]string{"Location": "/api/tickets/t1", "Content-Type": "application/json"}
		body := []byte(`{"id":"t1"}`)
		if err := s.Complete(ctx, "concert-1", "key-1", 201, header, body); err != nil {
			t.Fatalf("Complete: %v", err)
		}
		r, err = s.Reserve(ctx, "concert-1", "key-1", "fp-a")
		if err != nil || r == nil || !r.Done || r.Status != 201 || string(r.Body) != string(body) || !maps.Equal(r.Header, header) {
			t.Fatalf("Reserve after Complete = %+v, %v; want the stored 201", r, err)
		}
		if r.Scope != "concert-1" || r.Key != "key-1" || r.CreatedAt.IsZero() {
			t.Errorf("record identity = %q %q %v", r.Scope, r.Key, r.CreatedAt)
		}
		// Release does not forget a completed answer.
		if err := s.Release(ctx, "concert-1", "key-1"); err != nil {
			t.Fatal(err)
		}
		if r, _ := s.Reserve(ctx, "concert-1", "key-1", "fp-a"); r == nil || !r.Done {
			t.Fatal("Release dropped a completed key")
		}
	})
	t.Run("release frees the key", func(t *testing.T) {
		t.Parallel()
		s := get(t)
		ctx := t.Context()
		if r, err := s.Reserve(ctx, "s", "k", "fp"); r != nil || err != nil {
			t.Fatal(r, err)
		}
		if err := s.Release(ctx, "s", "k"); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Reserve(ctx, "s", "k", "fp2"); r != nil || err != nil {
			t.Fatalf("Reserve after Release = %+v, %v; want nil, nil", r, err)
		}
	})
	t.Run("concurrent reserves: exactly one owner", func(t *testing.T) {
		t.Parallel()
		s := get(t)
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			owners int
		)
		for range 8 {
			wg.Go(func() {
				r, err := s.Reserve(t.Context(), "s", "k", "fp")
				if err != nil {
					t.Error(err)
				}
				if r == nil {
					mu.Lock()
					owners++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if owners != 1 {
			t.Fatalf("%d owners, want 1", owners)
		}
	})
	t.Run("purge deletes old keys", func(t *testing.T) {
		t.Parallel()
		s := get(t)
		ctx := t.Context()
		s.Reserve(ctx, "s", "k1", "fp")
		s.Reserve(ctx, "s", "k2", "fp")
		if n, err := s.Purge(ctx, time.Now().Add(-time.Hour)); n != 0 || err != nil {
			t.Fatalf("Purge(an hour ago) = %d, %v; want 0", n, err)
		}
		if n, err := s.Purge(ctx, time.Now().Add(time.Hour)); n != 2 || err != nil {
			t.Fatalf("Purge(in an hour) = %d, %v; want 2", n, err)
		}
		if r, _ := s.Reserve(ctx, "s", "k1", "fp"); r != nil {
			t.Fatal("a purged key is still reserved")
		}
	})
}
