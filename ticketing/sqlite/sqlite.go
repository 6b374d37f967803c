// Package sqlite is the ticketing.Store on SQLite (modernc.org/sqlite, pure
// Go): one file (DefaultPath by default, created with its directory), WAL
// mode with synchronous=NORMAL, embedded migrations recorded in
// schema_migrations, one writer connection and a pool of read-only
// connections. It also keeps the transactional outbox and inbox
// (eventbus/outbox) and the HTTP layer's idempotency keys
// (ticketing.IdempotencyStore).
//
// Write transactions run one at a time on the writer (BEGIN IMMEDIATE), and
// those that queue up share one commit (group commit, each in its own
// SAVEPOINT): under load a commit's cost is spread over many transactions.
// WAL checkpoints run on a connection of their own every 250ms, not inside
// the commit that crosses a threshold, so no commit waits for one.
// The relay that StartRelay starts is notified after each commit that
// appended events, and at start publishes again the last DefaultRedeliver
// of sent events, which an in-memory bus may have lost in a crash.
// Requeue puts a dead-lettered event back in the outbox with a growing
// delay (outbox.Requeue; set the delays with
// WithOutboxOptions(outbox.WithRequeueBackoff(...))).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
	"github.com/gigbus/gigbus/ticketing"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DefaultPath is where Open puts the database when given an empty path.
const DefaultPath = "./data/ticketd.db"

// DefaultIdempotencyLease is how long a reserved idempotency key stays
// owned by its first request before Reserve treats it as abandoned.
const DefaultIdempotencyLease = time.Minute

//go:embed migrations/*.sql
var migrations embed.FS

var (
	_ ticketing.Store            = (*Store)(nil)
	_ ticketing.IdempotencyStore = (*Store)(nil)
)

// Store is a ticketing.Store and ticketing.IdempotencyStore on one SQLite
// file. It is safe for concurrent use; Close it when done.
type Store struct {
	w, r   *sql.DB
	ob     *outbox.Outbox
	relay  atomic.Pointer[outbox.Relay]
	cfg    config
	wstmts stmts // on the writer, used through transactions
	rstmts stmts // on the readers
	idem   idemStmts
	commit committer
	ckpt   *checkpointer
}

// Option configures a Store.
type Option func(*config)

type config struct {
	now       func() time.Time
	lease     time.Duration
	readers   int
	group     bool
	relayOpts []outbox.RelayOption
	obOpts    []outbox.Option
}

// WithNow injects the clock (default time.Now).
func WithNow(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithIdempotencyLease sets how long a reserved idempotency key stays owned
// by its first request (default DefaultIdempotencyLease).
func WithIdempotencyLease(d time.Duration) Option { return func(c *config) { c.lease = d } }

// WithGroupCommit sets whether concurrent write transactions share commits
// (default true). Each keeps its atomicity and isolation through a
// SAVEPOINT; sharing only saves the commit's cost.
func WithGroupCommit(on bool) Option { return func(c *config) { c.group = on } }

// WithReaders sets the size of the read-only pool (default max(4, 2×GOMAXPROCS)).
func WithReaders(n int) Option { return func(c *config) { c.readers = max(n, 1) } }

// WithOutboxOptions adds options to the store's outbox, such as
// outbox.WithAppendHook(tracing.PublishHook()) so traces continue through it.
func WithOutboxOptions(opts ...outbox.Option) Option {
	return func(c *config) { c.obOpts = append(c.obOpts, opts...) }
}

// DefaultRedeliver is the relay's default outbox.Redeliver window: at start
// it publishes again what it sent in the last 2 minutes of activity before
// the previous stop, since the in-memory bus loses what it held when the
// process dies, including events still queued or being retried then (a
// handler's retries take seconds: ticketing.DefaultHandlerMaxAttempts tries
// with backoff up to ticketing.DefaultHandlerBackoffMax). The cost is at
// start: every event of that window is published again and each handler
// looks it up in its inbox and skips it (at 1,000 events/s of activity,
// 120,000 events to skip).
const DefaultRedeliver = 2 * time.Minute

// WithRelayOptions sets the options of the relay StartRelay starts (after
// the defaults: outbox.Redeliver(DefaultRedeliver)).
func WithRelayOptions(opts ...outbox.RelayOption) Option {
	return func(c *config) { c.relayOpts = append(c.relayOpts, opts...) }
}

// Open opens (creating it and its directory when missing) the database at
// path (DefaultPath when empty) and brings its schema up to date.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{now: time.Now, lease: DefaultIdempotencyLease, readers: max(4, 2*runtime.GOMAXPROCS(0)), group: true}
	for _, opt := range opts {
		opt(&cfg)
	}
	if path == "" {
		path = DefaultPath
	}
	if strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: open %q: want a plain file path", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	const pragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	s := &Store{cfg: cfg}
	var err error
	// One writer: database/sql hands it to one transaction at a time, and
	// BEGIN IMMEDIATE takes SQLite's write lock at the start, so a
	// transaction never fails half-way on a lock upgrade.
	s.w, err = sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&"+pragmas+
		"&_pragma=wal_autocheckpoint("+strconv.Itoa(autoCheckpointPages)+")&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := s.migrate(ctx); err != nil {
		s.w.Close()
		return nil, err
	}
	s.r, err = sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		s.w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	s.r.SetMaxOpenConns(cfg.readers)
	s.r.SetMaxIdleConns(cfg.readers)
	s.r.SetConnMaxIdleTime(0)
	ckpt, err := sql.Open("sqlite", path+"?"+pragmas)
	if err != nil {
		s.r.Close()
		s.w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	ckpt.SetMaxOpenConns(1)
	s.ckpt = startCheckpointer(ckpt)
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the relay if one runs (at once: what it did not publish stays
// in the outbox) and closes the database. Close the relay first (usually
// through ticketing.System.Close) to publish what is committed.
func (s *Store) Close() error {
	var errs []error
	if r := s.relay.Load(); r != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = r.Close(ctx) // already cancelled: stop without a final pass
	}
	if s.ob != nil {
		errs = append(errs, s.ob.Close())
	}
	for _, st := range []*stmts{&s.wstmts, &s.rstmts} {
		errs = append(errs, st.close())
	}
	errs = append(errs, s.idem.close(), s.commit.close())
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// Stats counts the store's write transactions and the commits they took.
type Stats struct {
	Transactions uint64 // committed write transactions
	Commits      uint64 // SQLite commits (fewer with group commit)
	Checkpoints  uint64 // background WAL checkpoints that copied pages
}

// Stats returns the counts since Open.
func (s *Store) Stats() Stats {
	st := Stats{Transactions: s.commit.transactions.Load(), Commits: s.commit.commits.Load()}
	if s.ckpt != nil {
		st.Checkpoints = s.ckpt.checkpoints.Load()
	}
	return st
}

// DB returns the writer and the reader pools, for tools and tests. Writing
// through them bypasses the services' rules.
func (s *Store) DB() (writer, reader *sql.DB) { return s.w, s.r }

// Outbox returns the store's outbox.
func (s *Store) Outbox() *outbox.Outbox { return s.ob }

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction, in file name order, and
// then the outbox's tables.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_ns INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := s.apply(ctx, name); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", name, err)
		}
	}
	return outbox.Migrate(ctx, s.w, outbox.SQLite)
}

func (s *Store) apply(ctx context.Context, name string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	b, err := migrations.ReadFile(name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(b)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_ns) VALUES (?, ?)`, name, s.cfg.now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *Store) prepare(ctx context.Context) error {
	s.commit.db, s.commit.enabled = s.w, s.cfg.group
	s.commit.onAppend = func() {
		if r := s.relay.Load(); r != nil {
			r.Notify()
		}
	}
	if err := s.commit.prepare(ctx); err != nil {
		return err
	}
	var err error
	obOpts := append([]outbox.Option{outbox.WithClock(s.cfg.now)}, s.cfg.obOpts...)
	obOpts = append(obOpts, outbox.WithReader(s.r), outbox.WithWriter(s.write))
	s.ob, err = outbox.New(ctx, outbox.SQLite, s.w, obOpts...)
	if err != nil {
		return err
	}
	if err := s.wstmts.prepare(ctx, s.w, true); err != nil {
		return err
	}
	if err := s.rstmts.prepare(ctx, s.r, false); err != nil {
		return err
	}
	return s.idem.prepare(ctx, s.w, s.r)
}

// Update runs fn in a write transaction on the one writer connection and
// notifies the relay after a commit that appended events. Concurrent
// Updates share commits (see WithGroupCommit); each still commits or rolls
// back as a whole, and returns once its changes are durable and visible.
func (s *Store) Update(ctx context.Context, fn func(tx ticketing.Tx) error) error {
	var tx *writeTx
	return s.commit.write(ctx, func(sqlTx *sql.Tx) error {
		tx = &writeTx{readTx: readTx{s: s, st: &s.wstmts, tx: sqlTx}}
		return fn(tx)
	}, func() bool { return tx.appended })
}

// write runs fn in a write transaction of the committer, for the store's
// own writes (idempotency keys, the relay's marks and prunes).
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.commit.write(ctx, fn, func() bool { return false })
}

// View runs fn on the read-only pool.
func (s *Store) View(ctx context.Context, fn func(tx ticketing.ReadTx) error) error {
	return fn(&readTx{s: s, st: &s.rstmts})
}

// StartRelay starts the relay that publishes this store's outbox to bus;
// Update notifies it after each commit that appended events. One relay at a
// time: close it before starting another.
func (s *Store) StartRelay(bus eventbus.Bus) (ticketing.Relay, error) {
	opts := append([]outbox.RelayOption{outbox.Redeliver(DefaultRedeliver)}, s.cfg.relayOpts...)
	r, err := s.ob.StartRelay(bus, opts...)
	if err != nil {
		return nil, err
	}
	if !s.relay.CompareAndSwap(nil, r) {
		r.Close(context.Background())
		return nil, errors.New("sqlite: a relay is already running")
	}
	return &relay{Relay: r, s: s}, nil
}

// relay forgets itself in the store when closed, so another may start.
type relay struct {
	*outbox.Relay
	s *Store
}

func (r *relay) Close(ctx context.Context) error {
	err := r.Relay.Close(ctx)
	r.s.relay.CompareAndSwap(r.Relay, nil)
	return err
}

// Requeue puts the event with eventID back in the outbox, to be published
// again after the outbox's requeue backoff (see ticketing.Store).
func (s *Store) Requeue(ctx context.Context, eventID string) (int, time.Time, error) {
	rq, err := s.ob.Requeue(ctx, eventID)
	if errors.Is(err, outbox.ErrUnknownEvent) {
		return 0, time.Time{}, ticketing.Errorf(ticketing.ENOTFOUND, "event %q is not in the outbox", eventID)
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sqlite: %w", err)
	}
	return rq.Requeues, rq.NotBefore, nil
}
