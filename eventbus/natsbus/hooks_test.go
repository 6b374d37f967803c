package natsbus_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
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

func TestTopology(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b, _ := newBus(t, eventbus.WithSource("ticket-service"))
	h := func(context.Context, eventbus.Event) error { return nil }
	for _, sub := range []struct {
		typ  string
		opts []eventbus.SubscribeOption
	}{
		{"TicketPurchased", []eventbus.SubscribeOption{eventbus.Durable("mailer"), eventbus.Concurrency(2)}},
		{"TicketPurchased", []eventbus.SubscribeOption{eventbus.Durable("mailer")}},
		{"*", nil},
	} {
		if _, err := b.Subscribe(sub.typ, h, sub.opts...); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, eventbus.Event{Type: "TicketPurchased"}, eventbus.Event{Type: "TicketPurchased", Source: "admin"}); err != nil {
		t.Fatal(err)
	}
	top := b.Topology()
	if len(top.Types) != 2 || top.Types[0].Type != "TicketPurchased" || top.Types[1].Type != "*" {
		t.Fatalf("Topology = %+v, want TicketPurchased then *", top)
	}
	tp := top.Types[0]
	if !slices.Equal(tp.Publishers, []string{"admin", "ticket-service"}) {
		t.Errorf("publishers = %v", tp.Publishers)
	}
	if len(tp.Subscriptions) != 1 || tp.Subscriptions[0] != (eventbus.SubscriptionInfo{Name: "mailer", Durable: true, Members: 2, Concurrency: 3, Queued: tp.Subscriptions[0].Queued}) {
		t.Errorf("subscriptions = %+v, want the mailer group with 2 members and 3 workers", tp.Subscriptions)
	}
	if !strings.Contains(top.Mermaid(), "mailer") {
		t.Errorf("Mermaid = %s", top.Mermaid())
	}
}
