package natsbus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/natsbus"
)

func TestDialOwnsItsConnection(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b, err := natsbus.Dial(ctx, serverURL(t), newStream(), testLogger(t))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	got := make(chan string, 1)
	if _, err := b.Subscribe("Dialled", func(_ context.Context, e eventbus.Event) error { got <- e.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, eventbus.Event{Type: "Dialled", ID: "d-1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "d-1" {
			t.Errorf("handled %q, want d-1", id)
		}
	case <-ctx.Done():
		t.Fatal("the event was not handled")
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Publish(ctx, eventbus.Event{Type: "Dialled"}); !errors.Is(err, eventbus.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
}

func TestDialFailsClearly(t *testing.T) {
	t.Parallel()
	_, err := natsbus.Dial(testCtx(t), "nats://127.0.0.1:1", "S")
	if err == nil {
		t.Fatal("Dial to a port with no server succeeded")
	}
}
