// Command ticketd is the concert-ticketing service of gigbus.
//
//	ticketd [serve] [-addr :8080] [-db ./data/ticketd.db] [-nats nats://...]
//	ticketd demo
//	ticketd load -url http://127.0.0.1:8080 -buyers 64 -requests 20000 -seats 20000
//
// The admin token is read from TICKETD_ADMIN_TOKEN; when unset, serve
// generates one and prints it once, when the server listens.
//
// An event a handler gave up on (the bus's dead letter) is requeued in the
// outbox with a growing delay and published again (ticketing.RequeueDeadLetters).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/metrics"
	"github.com/gigbus/gigbus/eventbus/natsbus"
	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/httpapi"
	"github.com/gigbus/gigbus/ticketing/httpapi/web"
	"github.com/gigbus/gigbus/ticketing/notify"
	"github.com/gigbus/gigbus/ticketing/sqlite"
)

// shutdownBudget bounds the whole graceful shutdown: streams, HTTP, relay, bus.
const shutdownBudget = 9 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ticketd:", err)
		}
		os.Exit(1)
	}
}

// run is the whole program: main only adds the process (signals, exit
// code), so tests run exactly this.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "demo":
		return demo(ctx, args, stdout, stderr)
	case "load":
		return load(ctx, args, getenv, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}

const usage = `usage:
  ticketd [serve] [-addr :8080] [-db ./data/ticketd.db] [-nats nats://host:4222]   the HTTP server
  ticketd demo                                                                    the seed's scenario on a temporary database
  ticketd load -url http://127.0.0.1:8080 -buyers 64 -requests N -seats S         a purchase rush against a running server
Run "ticketd <command> -h" for a command's flags. TICKETD_ADMIN_TOKEN is the admin token.
`

// serve runs the HTTP server until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ticketd serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "listen address")
	dbPath := fs.String("db", sqlite.DefaultPath, "SQLite file path (postgres:// is not supported yet)")
	natsURL := fs.String("nats", "", "NATS server URL for JetStream, e.g. nats://127.0.0.1:4222 (empty: in-memory bus)")
	natsStream := fs.String("nats-stream", "GIGBUS", "JetStream stream holding the events (with -nats)")
	purchaseWait := fs.Duration("purchase-wait", httpapi.DefaultPurchaseWait, "how long a purchase waits for its outcome before answering 202")
	heartbeat := fs.Duration("sse-heartbeat", httpapi.DefaultHeartbeat, "interval of the event stream's heartbeat comments")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); empty: off")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	store, err := openStore(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer store.Close()
	// A generated token is printed once the server listens: a failed start
	// prints none.
	token, generated := getenv("TICKETD_ADMIN_TOKEN"), false
	if token == "" {
		token, generated = newToken(), true
	}
	if *natsURL != "" {
		logger.Info("ticketd: with -nats, every instance consuming the stream must share this database "+
			"(its inbox, outbox and tickets); with SQLite, run one ticketd per stream",
			"db", *dbPath, "stream", *natsStream)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	busMetrics, err := metrics.New(reg)
	if err != nil {
		return err
	}
	// Dead letters are requeued in the store's outbox: the store exists
	// before the bus, so the callback is bound from the start (no dead
	// letter can arrive before it), and it outlives the System, as the
	// store is closed after the bus.
	deadLetter := ticketing.RequeueDeadLetters(store, logger)
	bus, err := openBus(ctx, *natsURL, *natsStream, busMetrics,
		eventbus.WithLogger(logger), eventbus.WithSource("ticketd"), eventbus.WithDeadLetter(deadLetter))
	if err != nil {
		return err
	}
	// The bus closes last, after the relay stopped publishing into it. This
	// deferred close only matters on an early error return.
	busClosed := false
	defer func() {
		if !busClosed {
			bus.Close(context.Background())
		}
	}()

	sys, err := ticketing.Start(ticketing.Config{Store: store, Bus: bus, Sender: notify.Log(logger), Logger: logger})
	if err != nil {
		return err
	}
	api, err := httpapi.New(httpapi.Config{
		Concerts:     sys.Concerts,
		Tickets:      sys.Tickets,
		Idempotency:  store,
		Bus:          bus,
		AdminToken:   token,
		PurchaseWait: *purchaseWait,
		Heartbeat:    *heartbeat,
		Registry:     reg,
		Page: web.New(web.Config{
			Concerts: sys.Concerts,
			Tickets:  sys.Tickets,
			Topology: bus.Topology,
			Logger:   logger,
		}),
		Logger: logger,
	})
	if err != nil {
		sys.Close(ctx)
		return err
	}

	purgeCtx, stopPurge := context.WithCancel(ctx)
	purgeDone := make(chan struct{})
	go func() {
		defer close(purgeDone)
		purgeIdempotencyKeys(purgeCtx, store, logger)
	}()
	defer func() { stopPurge(); <-purgeDone }() // before the store closes

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		api.Close()
		sys.Close(ctx)
		return err
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// Longer than a purchase's wait; event streams extend it per write.
		WriteTimeout: *purchaseWait + 15*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if generated {
		fmt.Fprintf(stdout, "ticketd: TICKETD_ADMIN_TOKEN is unset; admin token for this run: %s\n", token)
	}
	fmt.Fprintf(stdout, "ticketd: listening on http://%s (db %s, bus %s)\n", ln.Addr(), *dbPath, busName(*natsURL))

	if *pprofAddr != "" {
		stopPprof, err := servePprof(*pprofAddr, logger)
		if err != nil {
			logger.Error("pprof", "err", err)
		} else {
			defer stopPprof()
			fmt.Fprintf(stdout, "ticketd: pprof on http://%s/debug/pprof/\n", *pprofAddr)
		}
	}

	var errs []error
	select {
	case <-ctx.Done():
	case err := <-serveErr: // the listener failed: shut down, and say so
		errs = append(errs, fmt.Errorf("http server: %w", err))
	}

	// Graceful shutdown, in dependency order, within one budget: end the
	// event streams (they would hold Shutdown), let in-flight requests
	// finish, then publish and handle what the services committed, then
	// drain the bus.
	fmt.Fprintln(stdout, "ticketd: shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownBudget)
	defer cancel()
	errs = append(errs, api.Close())
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		srv.Close()
	}
	if err := sys.Close(sctx); err != nil {
		errs = append(errs, fmt.Errorf("ticketing: %w", err))
	}
	busClosed = true
	if err := bus.Close(sctx); err != nil {
		errs = append(errs, fmt.Errorf("bus: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ticketd: stopped")
	return nil
}

// openStore opens the store -db names.
func openStore(ctx context.Context, dsn string) (*sqlite.Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return nil, errors.New("-db: PostgreSQL store not built yet; use a SQLite file path")
	}
	store, err := sqlite.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dsn, err)
	}
	return store, nil
}

// topologyBus is what ticketd needs of its bus: both transports report
// their Topology for the page, and both close what they own (natsbus.Dial's
// bus closes its connection too).
type topologyBus interface {
	eventbus.Bus
	Topology() eventbus.Topology
}

// openBus returns the in-memory bus, or the JetStream bus for a NATS URL
// (which puts a dead letter in its dead-letter stream, then calls deadLetter
// too). Both hand each dead letter to deadLetter.
func openBus(ctx context.Context, natsURL, stream string, m *metrics.Metrics, opts ...eventbus.Option) (topologyBus, error) {
	opts = append(opts, m.Option())
	var bus topologyBus
	if natsURL == "" {
		bus = eventbus.New(opts...)
	} else {
		// natsbus.Dial keeps reconnecting for as long as it takes:
		// consumers resume when the server is back, and Publish fails
		// clearly meanwhile (the outbox keeps what was committed).
		nb, err := natsbus.Dial(ctx, natsURL, stream, opts...)
		if err != nil {
			return nil, fmt.Errorf("-nats: %w", err)
		}
		bus = nb
	}
	m.WatchQueues(bus)
	return bus, nil
}

// idempotencyKeyTTL is how long an Idempotency-Key answer is kept at least
// (DESIGN.md: 24 hours); keys are purged hourly once they are older.
const idempotencyKeyTTL = 24 * time.Hour

// purgeIdempotencyKeys deletes expired idempotency keys every hour until
// ctx ends.
func purgeIdempotencyKeys(ctx context.Context, store ticketing.IdempotencyStore, logger *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := store.Purge(ctx, time.Now().Add(-idempotencyKeyTTL))
		if err != nil && ctx.Err() == nil {
			logger.Warn("purge idempotency keys", "err", err)
		} else if n > 0 {
			logger.Info("purged idempotency keys", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func busName(natsURL string) string {
	if natsURL == "" {
		return "in-memory"
	}
	return natsURL
}

func newToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// servePprof serves the runtime profiles on their own listener, so they are
// never exposed on the public address.
func servePprof(addr string, logger *slog.Logger) (stop func(), err error) {
	// Sample contention too: where goroutines wait is what limits a
	// pipeline that does not fill the CPUs.
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("pprof server", "err", err)
		}
	}()
	return func() { srv.Close() }, nil
}
