// Package outbox is a transactional outbox and inbox over database/sql, for
// SQLite and PostgreSQL.
//
// The outbox: a service appends the events its state change causes in the
// same transaction as the change ([Outbox.Append]); a [Relay] publishes what
// committed to a bus, in commit order, at least once, and marks it sent. A
// crash between commit and publish loses nothing: the next relay publishes
// the rows still unsent.
//
// The inbox: a consumer records the id of each event it applies in the same
// transaction as its effect ([Outbox.MarkProcessed]) and skips events
// already recorded, so a redelivered event (at-least-once delivery) is
// applied once.
//
// Dead letters: a transport that gives up on an event (a handler failed it
// too often) hands it to its dead-letter callback, and the event is gone
// from the transport. Feed those of outbox events to [Outbox.Requeue]: the
// row becomes unsent again with a growing delay, and the relay publishes it
// again when due, to every subscriber (the inbox skips it where it was
// applied). So no event that committed is lost, even one no handler can
// take: it keeps coming back, slowly, and stays in the outbox.
//
// The tables are created by [Migrate]; the store that owns the database may
// instead run the statements of [Schema] from its own migrations.
package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/gigbus/gigbus/eventbus"
)

// Schema returns the statements that create the outbox and inbox tables
// (idempotent: CREATE ... IF NOT EXISTS). They create the current tables:
// an outbox table created before Requeue existed lacks its columns, and
// these statements fail on it; Migrate adds them.
func Schema(d Dialect) []string { return append(d.schema(), requeueIndexes...) }

// Migrate creates the outbox and inbox tables in db when missing, and
// brings an older outbox table up to date (the columns Requeue needs).
func Migrate(ctx context.Context, db *sql.DB, d Dialect) error {
	for _, q := range d.schema() {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("outbox: migrate: %w", err)
		}
	}
	hasColumn := func(name string) (bool, error) {
		var n int
		err := db.QueryRowContext(ctx, d.hasColumnQuery(), name).Scan(&n)
		return n > 0, err
	}
	for _, c := range requeueColumns {
		has, err := hasColumn(c.name)
		if err != nil {
			return fmt.Errorf("outbox: migrate: %w", err)
		}
		if has {
			continue
		}
		if _, err := db.ExecContext(ctx, `ALTER TABLE outbox ADD COLUMN `+c.name+` `+c.def); err != nil {
			// Another process starting at the same time may have added
			// it between the check and the ALTER: that is success too.
			if has, _ := hasColumn(c.name); !has {
				return fmt.Errorf("outbox: migrate: add %s: %w", c.name, err)
			}
		}
	}
	for _, q := range requeueIndexes {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("outbox: migrate: %w", err)
		}
	}
	return nil
}

// Querier is what Processed reads through: a *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Outbox writes and reads the outbox and inbox tables of one database with
// prepared statements. It is safe for concurrent use.
type Outbox struct {
	d      Dialect
	w, r   *sql.DB
	source string
	now    func() time.Time
	write  func(ctx context.Context, fn func(tx *sql.Tx) error) error
	hooks  []eventbus.PublishHook

	requeueDelay, requeueMax time.Duration

	insert, inbox, processed, batch *sql.Stmt
	batchAfter                      *sql.Stmt // serial dialects: unsent rows after a seq
	due                             *sql.Stmt // requeued unsent rows, by available_at

	// dueHint is the earliest available_at (Unix ns) of a requeued row the
	// relay may not have published yet; 0: none known. Requeue lowers it,
	// the relay's pass over requeued rows clears and recomputes it.
	dueHint atomic.Int64
	relay   atomic.Pointer[Relay] // the running relay, woken by Requeue
}

// Option configures an Outbox.
type Option func(*Outbox)

// WithReader sets a separate pool for reads (the relay's batch query and
// Processed), e.g. SQLite's read-only connections beside its one writer.
func WithReader(db *sql.DB) Option { return func(o *Outbox) { o.r = db } }

// WithSource sets the Source filled into appended events that have none
// (default "gigbus").
func WithSource(s string) Option { return func(o *Outbox) { o.source = s } }

// WithWriter sets how the relay runs its own writes (marking batches sent,
// pruning): through write, which runs fn in a transaction of the database
// given to New. A store that serialises or groups its write transactions
// passes its own; the default begins and commits a transaction on the
// database. The statements the relay runs in fn ignore ctx's cancellation
// (ctx only decides whether to start): an interrupted statement may make the
// database roll back the whole transaction, which a grouping writer shares.
func WithWriter(write func(ctx context.Context, fn func(tx *sql.Tx) error) error) Option {
	return func(o *Outbox) { o.write = write }
}

// WithAppendHook adds a hook that sees every appended event after it was
// filled, with the appender's context, before it is stored: what a bus's
// publish hooks do at Publish, done where the event is born, since the
// relay publishes with a context of its own. Pass, say, the tracing
// package's publish hook, so a trace continues through the outbox.
func WithAppendHook(h eventbus.PublishHook) Option {
	return func(o *Outbox) { o.hooks = append(o.hooks, h) }
}

// Requeue defaults: the first requeue of an event waits DefaultRequeueDelay,
// each further one twice as long as the previous, up to
// DefaultRequeueMaxDelay.
const (
	DefaultRequeueDelay    = 5 * time.Second
	DefaultRequeueMaxDelay = 5 * time.Minute
)

// WithRequeueBackoff sets how long a requeued event waits before the relay
// publishes it again: initial the first time, doubled per requeue, at most
// max (default DefaultRequeueDelay and DefaultRequeueMaxDelay).
func WithRequeueBackoff(initial, max time.Duration) Option {
	return func(o *Outbox) { o.requeueDelay, o.requeueMax = initial, max }
}

// WithClock injects the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *Outbox) { o.now = now } }

// New prepares the outbox's statements on db, the database whose
// transactions Append and MarkProcessed take. The tables must exist (Migrate).
func New(ctx context.Context, d Dialect, db *sql.DB, opts ...Option) (*Outbox, error) {
	o := &Outbox{d: d, w: db, r: db, source: "gigbus", now: time.Now,
		requeueDelay: DefaultRequeueDelay, requeueMax: DefaultRequeueMaxDelay}
	for _, opt := range opts {
		opt(o)
	}
	if o.write == nil {
		o.write = o.defaultWrite
	}
	for _, p := range []struct {
		db *sql.DB
		s  **sql.Stmt
		q  string
	}{
		{o.w, &o.insert, `INSERT INTO outbox (id, type, source, subject, time_ns, data, meta, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{o.w, &o.inbox, `INSERT INTO inbox (subscription, event_id, processed_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`},
		{o.r, &o.processed, `SELECT 1 FROM inbox WHERE subscription = ? AND event_id = ?`},
		// Requeued rows (requeues > 0) are left to the due query: they wait
		// for their time, and are marked sent only while not requeued again.
		{o.r, &o.batch, `SELECT ` + rowCols + ` FROM outbox WHERE published_at IS NULL AND requeues = 0 ORDER BY seq LIMIT ?`},
		{o.r, &o.batchAfter, `SELECT ` + rowCols + ` FROM outbox WHERE published_at IS NULL AND requeues = 0 AND seq > ? ORDER BY seq LIMIT ?`},
		{o.r, &o.due, `SELECT ` + rowCols + ` FROM outbox WHERE published_at IS NULL AND requeues > 0 ORDER BY available_at, seq LIMIT ?`},
	} {
		s, err := p.db.PrepareContext(ctx, d.rebind(p.q))
		if err != nil {
			o.Close()
			return nil, fmt.Errorf("outbox: prepare: %w", err)
		}
		*p.s = s
	}
	return o, nil
}

func (o *Outbox) defaultWrite(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := o.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Close releases the prepared statements. It does not close the databases.
func (o *Outbox) Close() error {
	var errs []error
	for _, s := range []*sql.Stmt{o.insert, o.inbox, o.processed, o.batch, o.batchAfter, o.due} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// Append validates events (eventbus.Validate), fills their empty ID, Time
// and Source (eventbus.Fill), runs the append hooks, and inserts them in tx, which must come from
// the database given to New. They are published once tx commits. Data is
// stored as JSON: []byte and json.RawMessage as they are (they must be
// JSON), anything else through json.Marshal.
func (o *Outbox) Append(ctx context.Context, tx *sql.Tx, events ...eventbus.Event) error {
	if len(events) == 0 {
		return nil
	}
	now := o.now()
	rows := make([][]any, len(events))
	for i, e := range events {
		if err := eventbus.Validate(e); err != nil {
			return fmt.Errorf("outbox: append: %w", err)
		}
		eventbus.Fill(&e, o.source, now)
		for _, h := range o.hooks {
			h(ctx, &e)
		}
		data, err := marshalData(e.Data)
		if err != nil {
			return fmt.Errorf("outbox: append %s: %w", e.Type, err)
		}
		// A new event is never a redelivery, even when a handler carried
		// over the Meta (trace context) of a redelivered event it handled.
		if _, ok := e.Meta[eventbus.MetaRedelivery]; ok {
			e.Meta = maps.Clone(e.Meta)
			delete(e.Meta, eventbus.MetaRedelivery)
		}
		var meta any
		if len(e.Meta) > 0 {
			b, err := json.Marshal(e.Meta)
			if err != nil {
				return fmt.Errorf("outbox: append %s: meta: %w", e.Type, err)
			}
			meta = string(b)
		}
		rows[i] = []any{e.ID, e.Type, e.Source, e.Subject, e.Time.UnixNano(), data, meta, now.UnixNano()}
	}
	stmt := tx.StmtContext(ctx, o.insert)
	defer stmt.Close()
	for _, args := range rows {
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("outbox: append: %w", err)
		}
	}
	return nil
}

func marshalData(v any) (any, error) {
	switch d := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, fmt.Errorf("%w: data is not valid JSON", eventbus.ErrInvalidEvent)
		}
		return []byte(d), nil
	case []byte:
		if !json.Valid(d) {
			return nil, fmt.Errorf("%w: data is not valid JSON", eventbus.ErrInvalidEvent)
		}
		return d, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: data: %v", eventbus.ErrInvalidEvent, err)
	}
	return b, nil
}

// MarkProcessed records in tx that subscription applied eventID. first is
// false when it was recorded before: the caller must skip the event (and
// may commit tx). tx must come from the database given to New.
func (o *Outbox) MarkProcessed(ctx context.Context, tx *sql.Tx, subscription, eventID string) (first bool, err error) {
	stmt := tx.StmtContext(ctx, o.inbox)
	defer stmt.Close()
	res, err := stmt.ExecContext(ctx, subscription, eventID, o.now().UnixNano())
	if err != nil {
		return false, fmt.Errorf("outbox: mark processed: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("outbox: mark processed: %w", err)
	}
	return n == 1, nil
}

// Processed reports whether subscription recorded eventID, reading through
// the reader pool (or q, when not nil, e.g. a transaction).
func (o *Outbox) Processed(ctx context.Context, q Querier, subscription, eventID string) (bool, error) {
	var row *sql.Row
	if q == nil {
		row = o.processed.QueryRowContext(ctx, subscription, eventID)
	} else {
		row = q.QueryRowContext(ctx, o.d.rebind(`SELECT 1 FROM inbox WHERE subscription = ? AND event_id = ?`), subscription, eventID)
	}
	var one int
	switch err := row.Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("outbox: processed: %w", err)
	}
	return true, nil
}

// Pending returns how many committed events are not published yet,
// requeued events waiting for their time included.
func (o *Outbox) Pending(ctx context.Context) (int, error) {
	var n int
	if err := o.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox: pending: %w", err)
	}
	return n, nil
}

// ErrUnknownEvent is returned by Requeue for an event id the outbox does
// not hold: an event published without the outbox, or pruned already.
var ErrUnknownEvent = errors.New("outbox: no such event in the outbox")

// Requeued says when a requeued event is published again.
type Requeued struct {
	Requeues  int       // times the event was requeued, this one included
	NotBefore time.Time // the relay publishes it again at this time or later
}

// Requeue puts the event with eventID back in the outbox, unsent, to be
// published again (to every subscriber: consumers skip what their inbox
// records) once its delay passed: the requeue backoff (see
// WithRequeueBackoff) of its requeue count. Feed it the dead letters of
// events that came from the outbox, so that an event a handler gave up on
// comes back later instead of being lost: a poison event keeps coming
// back, slowly, and is never dropped. It returns ErrUnknownEvent (wrapped)
// for an id the outbox does not hold.
//
// Requeued events do not keep their place in commit order: each is
// published when it is due, after what was committed meanwhile.
func (o *Outbox) Requeue(ctx context.Context, eventID string) (Requeued, error) {
	var rq Requeued
	err := o.write(ctx, func(tx *sql.Tx) error {
		ctx := context.WithoutCancel(ctx) // see WithWriter
		var (
			n     sql.NullInt64
			count int
		)
		if err := tx.QueryRowContext(ctx, o.d.rebind(`SELECT MAX(requeues), COUNT(*) FROM outbox WHERE id = ?`), eventID).Scan(&n, &count); err != nil {
			return err
		}
		if count == 0 {
			return fmt.Errorf("%w: %s", ErrUnknownEvent, eventID)
		}
		rq.Requeues = int(n.Int64) + 1
		rq.NotBefore = o.now().Add(o.requeueBackoff(rq.Requeues))
		_, err := tx.ExecContext(ctx, o.d.rebind(`UPDATE outbox SET published_at = NULL, available_at = ?, requeues = ? WHERE id = ?`),
			rq.NotBefore.UnixNano(), rq.Requeues, eventID)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrUnknownEvent) {
			return Requeued{}, fmt.Errorf("outbox: requeue: %w", err)
		}
		return Requeued{}, fmt.Errorf("outbox: requeue %s: %w", eventID, err)
	}
	o.lowerDue(rq.NotBefore.UnixNano())
	if r := o.relay.Load(); r != nil {
		r.Notify() // it sets its timer for the new due time
	}
	return rq, nil
}

// requeueBackoff is the delay of an event's n-th requeue.
func (o *Outbox) requeueBackoff(n int) time.Duration {
	d := o.requeueDelay
	for i := 1; i < n && d < o.requeueMax; i++ {
		d *= 2
	}
	return max(min(d, o.requeueMax), 0)
}

// lowerDue makes ns the due hint if it is earlier than the current one.
func (o *Outbox) lowerDue(ns int64) {
	ns = max(ns, 1) // 0 means none
	for {
		h := o.dueHint.Load()
		if h != 0 && h <= ns {
			return
		}
		if o.dueHint.CompareAndSwap(h, ns) {
			return
		}
	}
}
