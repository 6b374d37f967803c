package natsbus_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/natsbus"
)

// The shared test server runs in a child process (this test binary, started
// again with serverEnv set): the conformance suite checks that Close leaves no
// goroutine behind, and an embedded server's own goroutines (for consumers
// and streams) would be counted too. Tests that restart the server embed
// one of their own.
const serverEnv = "NATSBUS_TEST_SERVER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(serverEnv); dir != "" {
		os.Exit(childServer(dir))
	}
	code := m.Run()
	shared.stop()
	os.Exit(code)
}

// childServer runs a JetStream server on a random local port, prints its URL
// and serves until its stdin closes (the parent ended).
func childServer(dir string) int {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats server not ready")
		return 1
	}
	fmt.Println(s.ClientURL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
	s.WaitForShutdown()
	return 0
}

var shared sharedServer

type sharedServer struct {
	once  sync.Once
	url   string
	err   error
	cmd   *exec.Cmd
	stdin io.WriteCloser
	dir   string
}

// serverURL starts the shared child server once and returns its URL.
func serverURL(t testing.TB) string {
	t.Helper()
	s := &shared
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "natsbus-test-")
		if s.err != nil {
			return
		}
		s.cmd = exec.Command(os.Args[0], "-test.run=^$")
		s.cmd.Env = append(os.Environ(), serverEnv+"="+s.dir)
		s.cmd.Stderr = os.Stderr
		if s.stdin, s.err = s.cmd.StdinPipe(); s.err != nil {
			return
		}
		out, err := s.cmd.StdoutPipe()
		if err != nil {
			s.err = err
			return
		}
		if s.err = s.cmd.Start(); s.err != nil {
			return
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			s.err = fmt.Errorf("starting the test server: %w", err)
			return
		}
		s.url = strings.TrimSpace(line)
	})
	if s.err != nil {
		t.Fatalf("test server: %v", s.err)
	}
	return s.url
}

func (s *sharedServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.stdin.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(s.dir)
}

// connect returns a connection to url, closed when the test ends.
func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

var streams atomic.Int64

// newStream returns a fresh stream name.
func newStream() string { return fmt.Sprintf("T%d", streams.Add(1)) }

// newBus returns a bus on a fresh stream of the shared server, on a
// connection of its own; both are closed when the test ends.
func newBus(t testing.TB, opts ...eventbus.Option) (*natsbus.Bus, string) {
	t.Helper()
	stream := newStream()
	return newBusOn(t, connect(t, serverURL(t)), stream, opts...), stream
}

func newBusOn(t testing.TB, nc *nats.Conn, stream string, opts ...eventbus.Option) *natsbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := natsbus.New(ctx, nc, stream, append([]eventbus.Option{testLogger(t)}, opts...)...)
	if err != nil {
		t.Fatalf("natsbus.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testLogger sends the bus's log to the test's output (shown with -v or on
// failure).
func testLogger(t testing.TB) eventbus.Option {
	return eventbus.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil)))
}
