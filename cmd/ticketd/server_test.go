package main

import (
	"bufio"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testToken is the admin token of every test server.
const testToken = "test-admin-token"

// testServer is ticketd serving on 127.0.0.1:0 with a temporary database:
// run's own code path, so what the tests see is what main does. Tests of
// this package (the API tests, the load tool's, the browser test) start one
// with startTestServer and talk to URL.
type testServer struct {
	URL   string // http://127.0.0.1:port
	Token string // the admin token
	DB    string // the SQLite file

	cancel  context.CancelFunc
	done    chan error
	doneErr error
	out     *lines
}

// startTestServer starts ticketd serve with args added to the defaults
// (-addr 127.0.0.1:0, -db in t.TempDir()) and stops it when the test ends.
func startTestServer(t testing.TB, args ...string) *testServer {
	t.Helper()
	db := filepath.Join(t.TempDir(), "ticketd.db")
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{Token: testToken, DB: db, cancel: cancel, done: make(chan error, 1), out: newLines()}
	getenv := func(k string) string {
		if k == "TICKETD_ADMIN_TOKEN" {
			return testToken
		}
		return ""
	}
	all := append([]string{"serve", "-addr", "127.0.0.1:0", "-db", db, "-log-level", "warn"}, args...)
	stderr := &testLog{t: t}
	go func() {
		s.done <- run(ctx, all, getenv, s.out, stderr)
		s.out.Close()
	}()
	line, ok := s.out.waitFor("ticketd: listening on ", 10*time.Second)
	if !ok {
		cancel()
		t.Fatalf("ticketd did not start; output:\n%s (run: %v)", s.out.String(), <-s.done)
	}
	s.URL = strings.Fields(strings.TrimPrefix(line, "ticketd: listening on "))[0]
	t.Cleanup(func() {
		stderr.stop()
		s.Stop()
	})
	return s
}

// Stop shuts the server down as SIGINT would and returns run's error. It may
// be called more than once.
func (s *testServer) Stop() error {
	s.cancel()
	err, ok := <-s.done
	if ok {
		close(s.done)
		s.doneErr = err
	}
	return s.doneErr
}

// Output is what the server printed on stdout so far.
func (s *testServer) Output() string { return s.out.String() }

// lines is a stdout that tests can wait on, line by line.
type lines struct {
	mu     sync.Mutex
	buf    strings.Builder
	change chan struct{}
}

func newLines() *lines {
	l := &lines{change: make(chan struct{})}
	return l
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.change)
	l.change = make(chan struct{})
	return len(p), nil
}

func (l *lines) Close() {}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor returns the first complete line starting with prefix, waiting for
// it at most timeout.
func (l *lines) waitFor(prefix string, timeout time.Duration) (string, bool) {
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		sc := bufio.NewScanner(strings.NewReader(l.buf.String()))
		change := l.change
		l.mu.Unlock()
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix) {
				return sc.Text(), true
			}
		}
		select {
		case <-change:
		case <-deadline:
			return "", false
		}
	}
}

// testLog sends the server's log to t.Log until the test ends.
type testLog struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}
