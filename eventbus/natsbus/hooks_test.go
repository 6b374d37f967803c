package natsbus_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/gigbus/gigbus/eventbus"
)

func TestPublishHooksAndMiddleware(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	var mu sync.Mutex
	var trail []string
	var hooked []string
	note := func(s string) {
		mu.Lock()
		trail = append(trail, s)
		mu.Unlock()
	}
	mw := func(name string) eventbus.Middleware {
		return func(next eventbus.Handler) eventbus.Handler {
			return func(ctx context.Context, e eventbus.Event) error {
				note(name)
				return next(ctx, e)
			}
		}
	}
	hook := func(_ context.Context, e *eventbus.Event) {
		mu.Lock()
		hooked = append(hooked, e.ID)
		mu.Unlock()
		meta := maps.Clone(e.Meta)
		if meta == nil {
			meta = map[string]string{}
		}
		meta["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		e.Meta = meta
	}
	b, _ := newBus(t, eventbus.WithMiddleware(mw("bus1"), mw("bus2")), eventbus.WithPublishHook(hook))
	got := make(chan eventbus.Event, 1)
	if _, err := b.Subscribe("Hooked", func(_ context.Context, e eventbus.Event) error {
		note("handler")
		got <- e
		return nil
	}, eventbus.Use(mw("use1"), mw("use2"))); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, eventbus.Event{Type: "Hooked", ID: "never"}, eventbus.Event{Type: "bad type"}); !errors.Is(err, eventbus.ErrInvalidEvent) {
		t.Fatalf("Publish of an invalid batch = %v", err)
	}
	if err := b.Publish(ctx, eventbus.Event{Type: "Hooked", ID: "h-1"}); err != nil {
		t.Fatal(err)
	}
	flush(t, ctx, b)
	e := <-got
	if e.Meta["traceparent"] == "" {
		t.Errorf("Meta = %v, want the traceparent the hook set", e.Meta)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(hooked, []string{"h-1"}) {
		t.Errorf("hooks saw %v, want only h-1 (a rejected batch is not seen)", hooked)
	}
	if want := []string{"bus1", "bus2", "use1", "use2", "handler"}; !slices.Equal(trail, want) {
		t.Errorf("middleware ran %v, want %v", trail, want)
	}
}
