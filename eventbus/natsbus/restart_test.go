package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gigbus/gigbus/eventbus"
)

// embedded runs a JetStream server in this process, on a real port so that
// clients can reconnect after a restart; restart keeps its store.
type embedded struct {
	t    *testing.T
	mu   sync.Mutex
	opts server.Options
	s    *server.Server
}

func newEmbedded(t *testing.T) *embedded {
	e := &embedded{t: t, opts: server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}}
	e.start()
	e.opts.Port = e.s.Addr().(*net.TCPAddr).Port
	t.Cleanup(e.stop) // registered first: runs after the buses and connections are closed
	return e
}

func (e *embedded) start() {
	e.t.Helper()
	opts := e.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		e.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		e.t.Fatal("embedded server not ready")
	}
	e.mu.Lock()
	e.s = s
	e.mu.Unlock()
}

func (e *embedded) stop() {
	e.mu.Lock()
	s := e.s
	e.mu.Unlock()
	s.Shutdown()
	s.WaitForShutdown()
}

func (e *embedded) url() string { return e.s.ClientURL() }

func TestServerRestartLosesNothing(t *testing.T) {
	t.Parallel()
	// Deliveries lost in the restart come back after the ack wait (10s).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := newEmbedded(t)
	nc := connect(t, srv.url(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))
	b := newBusOn(t, nc, "RESTART")
	var durable, plain counter
	gate := make(chan struct{}) // holds the durable group's handlers until the server is back
	if _, err := b.Subscribe("Tick", func(ctx context.Context, e eventbus.Event) error {
		<-gate
		return durable.handle(ctx, e)
	}, eventbus.Durable("ticks"), eventbus.Concurrency(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe("Tick", plain.handle); err != nil {
		t.Fatal(err)
	}
	const n = 400
	publishN(t, ctx, b, "Tick", "before-", n)

	// The server goes away mid-stream (handlers are still busy with the
	// events above) and comes back with the same store.
	srv.stop()
	deadline := time.Now().Add(10 * time.Second)
	for nc.Status() == nats.CONNECTED && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // the client notices the disconnection
	}
	err := b.Publish(ctx, eventbus.Event{Type: "Tick", ID: "during-outage"})
	if err == nil {
		t.Error("Publish during the outage returned nil, want an error")
	} else if !errors.Is(err, nats.ErrDisconnected) {
		t.Logf("Publish during the outage: %v", err)
	}
	srv.start()
	close(gate)

	// Publishing succeeds again once the client reconnected.
	for i := 0; i < n; {
		err := b.Publish(ctx, eventbus.Event{Type: "Tick", ID: fmt.Sprintf("after-%d", i)})
		if err == nil {
			i++
			continue
		}
		if ctx.Err() != nil {
			t.Fatalf("Publish after the restart: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // reconnecting
	}
	flush(t, ctx, b)
	for name, c := range map[string]*counter{"durable": &durable, "plain": &plain} {
		got := c.snapshot()
		for _, prefix := range []string{"before-", "after-"} {
			for i := range n {
				if id := fmt.Sprint(prefix, i); got[id] == 0 {
					t.Errorf("%s subscription never handled %s", name, id)
					return
				}
			}
		}
		if got["during-outage"] != 0 {
			t.Errorf("%s subscription handled an event whose Publish failed", name)
		}
	}
}

func TestCloseGivesUpAtDeadline(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b, _ := newBus(t)
	started := make(chan struct{})
	if _, err := b.Subscribe("Stuck", func(ctx context.Context, e eventbus.Event) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}, eventbus.Durable("stuck")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, eventbus.Event{Type: "Stuck"}); err != nil {
		t.Fatal(err)
	}
	<-started
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.Close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want DeadlineExceeded", err)
	}
	if err := b.Publish(ctx, eventbus.Event{Type: "Stuck"}); !errors.Is(err, eventbus.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
}

// A server that comes back without its store (the streams and consumers are
// gone) gets them again: publishing works again, and subscriptions resume
// with new events.
func TestServerRestartWithoutState(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := newEmbedded(t)
	nc := connect(t, srv.url(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))
	b := newBusOn(t, nc, "FRESH")
	var durable, plain counter
	if _, err := b.Subscribe("Tick", durable.handle, eventbus.Durable("ticks")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe("Tick", plain.handle); err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, b, "Tick", "before-", 10)
	flush(t, ctx, b)

	srv.stop()
	srv.opts.StoreDir = t.TempDir()
	srv.start()

	for i := 0; ; i++ {
		_ = b.Publish(ctx, eventbus.Event{Type: "Tick", ID: fmt.Sprint("after-", i)})
		if durable.has("after-") && plain.has("after-") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("subscriptions did not resume on a server without state: durable %v, plain %v", durable.has("after-"), plain.has("after-"))
		}
		time.Sleep(20 * time.Millisecond) // the server restarts; the bus recreates what it lost
	}
	flush(t, ctx, b)
}
