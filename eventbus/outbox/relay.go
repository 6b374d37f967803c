package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gigbus/gigbus/eventbus"
)

// ErrRelayClosed is returned by Flush after the relay stopped.
var ErrRelayClosed = errors.New("outbox: relay closed")

// Publisher is where a relay publishes: any eventbus.Bus.
type Publisher interface {
	Publish(ctx context.Context, events ...eventbus.Event) error
}

// Relay defaults.
const (
	DefaultBatchSize      = 256
	DefaultPollInterval   = time.Second
	DefaultRetention      = 24 * time.Hour
	DefaultInboxRetention = 7 * 24 * time.Hour
	DefaultPruneInterval  = 10 * time.Minute
)

// RelayOption configures a relay.
type RelayOption func(*relayConfig)

type relayConfig struct {
	batch          int
	poll           time.Duration
	retention      time.Duration
	inboxRetention time.Duration
	pruneEvery     time.Duration
	redeliver      time.Duration
	logger         *slog.Logger
}

// BatchSize sets how many events the relay publishes per Publish call and
// marks sent per UPDATE (default DefaultBatchSize).
func BatchSize(n int) RelayOption { return func(c *relayConfig) { c.batch = max(n, 1) } }

// PollInterval sets how often the relay looks for unsent events without
// being notified (default DefaultPollInterval): after a crash, or for
// commits made by another process.
func PollInterval(d time.Duration) RelayOption { return func(c *relayConfig) { c.poll = d } }

// Retention sets how long sent events stay in the outbox (default
// DefaultRetention) and how long inbox records are kept (default
// DefaultInboxRetention; it must exceed the longest redelivery delay).
func Retention(outbox, inbox time.Duration) RelayOption {
	return func(c *relayConfig) { c.retention, c.inboxRetention = outbox, inbox }
}

// PruneInterval sets how often the relay prunes (default DefaultPruneInterval).
func PruneInterval(d time.Duration) RelayOption { return func(c *relayConfig) { c.pruneEvery = d } }

// Redeliver makes a starting relay publish again the events it had sent
// during the last window of activity before it stopped (window ending at
// the newest sent event). A transport that loses what it had accepted when
// the process dies, such as the in-memory bus, needs it: those events were
// marked sent but may never have been handled. Consumers skip what they
// already applied (the inbox), so the cost is the replay. Default 0 (off).
func Redeliver(window time.Duration) RelayOption {
	return func(c *relayConfig) { c.redeliver = window }
}

// RelayLogger sets the relay's logger (default slog.Default()).
func RelayLogger(l *slog.Logger) RelayOption { return func(c *relayConfig) { c.logger = l } }

// Relay publishes committed outbox rows to a bus in commit order, in
// batches, at least once: a row is marked sent only after Publish accepted
// it, so a crash in between publishes it again (consumers dedupe with the
// inbox). It wakes on Notify, and polls as a fallback. Run one relay per
// database. Its methods are safe for concurrent use.
//
// On a serial dialect (SQLite) the relay does not wait for a batch's mark
// to commit before reading the next one: it remembers the last seq it
// published and marks in the background, since a write transaction may
// wait for the store's other writers. On PostgreSQL a lower seq may commit
// after a higher one, so each batch is marked by its seqs before the next.
//
// Requeued rows (Outbox.Requeue) stay out of that path: the relay publishes
// each when its time has come (it keeps a timer for the earliest, and looks
// at every poll), marks it sent unless it was requeued again meanwhile, and
// never lets the marks of its commit-order batches mark one sent.
type Relay struct {
	o         *Outbox
	bus       Publisher
	cfg       relayConfig
	wake      chan struct{}
	flush     chan chan error
	stop      chan struct{}
	stopOnce  sync.Once
	done      chan struct{}
	cancel    context.CancelFunc
	published atomic.Uint64
	mark      *sql.Stmt // serial dialects: mark sent up to a seq

	after      int64        // serial: the last seq published (run's goroutine only)
	toMark     atomic.Int64 // serial: marks wanted up to this seq
	markWake   chan struct{}
	markMu     sync.Mutex    // serialises marks
	marked     int64         // marked sent up to this seq (guarded by markMu)
	markerStop chan struct{} // closed when run ends: stops the marker and the pruner
	markerDone chan struct{}
	prunerDone chan struct{}
}

// StartRelay starts a relay publishing o's outbox to bus. Close it to stop.
func (o *Outbox) StartRelay(bus Publisher, opts ...RelayOption) (*Relay, error) {
	cfg := relayConfig{
		batch: DefaultBatchSize, poll: DefaultPollInterval,
		retention: DefaultRetention, inboxRetention: DefaultInboxRetention,
		pruneEvery: DefaultPruneInterval, logger: slog.Default(),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		o: o, bus: bus, cfg: cfg,
		wake:  make(chan struct{}, 1),
		flush: make(chan chan error),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),

		markWake:   make(chan struct{}, 1),
		markerStop: make(chan struct{}),
		markerDone: make(chan struct{}),
		prunerDone: make(chan struct{}),
	}
	if o.d.serial {
		// requeues = 0: a row requeued after it was published waits for
		// its time again (the due pass publishes and marks it).
		s, err := o.w.Prepare(o.d.rebind(`UPDATE outbox SET published_at = ? WHERE published_at IS NULL AND requeues = 0 AND seq <= ?`))
		if err != nil {
			return nil, fmt.Errorf("outbox: prepare: %w", err)
		}
		r.mark = s
	}
	if cfg.redeliver > 0 {
		if err := o.unsend(context.Background(), cfg.redeliver); err != nil {
			if r.mark != nil {
				r.mark.Close()
			}
			return nil, err
		}
	}
	// Requeued rows left by a previous run (or another process) are due
	// for a look at once.
	o.lowerDue(1)
	o.relay.Store(r)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.marker(ctx)
	go r.pruner(ctx)
	go r.run(ctx)
	return r, nil
}

// Notify tells the relay something was committed. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Published returns how many events the relay has published.
func (r *Relay) Published() uint64 { return r.published.Load() }

// Flush returns once every event committed before the call has been
// published and marked sent, with the count Published returns then. It returns the error
// that stopped publishing, ctx's error, or ErrRelayClosed.
func (r *Relay) Flush(ctx context.Context) (uint64, error) {
	ch := make(chan error, 1)
	select {
	case r.flush <- ch:
	case <-ctx.Done():
		return r.Published(), ctx.Err()
	case <-r.done:
		return r.Published(), ErrRelayClosed
	}
	select {
	case err := <-ch:
		return r.Published(), err
	case <-ctx.Done():
		return r.Published(), ctx.Err()
	}
}

// Close publishes what is committed, then stops the relay. If ctx ends
// first, the relay stops at once (what it did not mark sent is published by
// the next relay) and Close returns ctx's error. Calling it again returns
// when the relay stopped.
func (r *Relay) Close(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stop) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		r.cancel()
		<-r.done
		return ctx.Err()
	}
}

func (r *Relay) run(ctx context.Context) {
	defer close(r.done)
	defer r.o.relay.CompareAndSwap(r, nil)
	defer r.cancel()
	defer func() {
		close(r.markerStop)
		<-r.markerDone
		<-r.prunerDone
		if r.mark != nil {
			r.mark.Close()
		}
	}()
	poll := time.NewTicker(r.cfg.poll)
	defer poll.Stop()
	// due fires when the earliest requeued row known is due.
	due := time.NewTimer(0)
	defer due.Stop()
	var flushes []chan error
	polled := false
	reply := func(err error) {
		for _, f := range flushes {
			f <- err
		}
		flushes = flushes[:0]
	}
	for {
		select {
		case <-ctx.Done():
			reply(ErrRelayClosed)
			return
		case <-r.stop:
			err := r.drain(ctx, false)
			if err == nil {
				err = r.markUpTo(ctx, r.after)
			}
			reply(err)
			return
		case <-r.wake:
		case <-poll.C:
			// Also look for requeued rows: another process may have
			// requeued them.
			polled = true
		case <-due.C:
		case f := <-r.flush:
			flushes = append(flushes, f)
		}
		err := r.drain(ctx, polled)
		polled = false
		if err == nil && len(flushes) > 0 {
			err = r.markUpTo(ctx, r.after)
		}
		reply(err)
		if h := r.o.dueHint.Load(); h != 0 {
			due.Reset(max(time.Duration(h-r.o.now().UnixNano()), time.Millisecond))
		}
		if err != nil && ctx.Err() == nil {
			r.cfg.logger.Error("outbox: relay: publish failed; retrying", "err", err)
			// Back off instead of spinning on a failing bus or database.
			t := time.NewTimer(min(r.cfg.poll, 200*time.Millisecond))
			select {
			case <-t.C:
			case <-ctx.Done():
			case <-r.stop: // the loop's stop case does the final pass
			}
			t.Stop()
		}
	}
}

// pruner prunes every PruneInterval, starting soon after the relay starts,
// on a goroutine of its own: pruning a big backlog takes many small
// transactions, and publishing must not wait for them.
func (r *Relay) pruner(ctx context.Context) {
	defer close(r.prunerDone)
	if r.cfg.pruneEvery <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.markerStop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := r.o.now()
		o, i, err := r.o.Prune(ctx, now.Add(-r.cfg.retention), now.Add(-r.cfg.inboxRetention))
		if err != nil && ctx.Err() == nil {
			r.cfg.logger.Error("outbox: relay: prune failed", "err", err)
		} else if o+i > 0 {
			r.cfg.logger.Debug("outbox: relay: pruned", "outbox", o, "inbox", i)
		}
		t.Reset(r.cfg.pruneEvery)
	}
}

// drain publishes batches until no committed row is left unsent, and the
// requeued rows that are due (all of them are looked for when all is true,
// else only when one is known to be due).
func (r *Relay) drain(ctx context.Context, all bool) error {
	if err := r.publishDue(ctx, all); err != nil {
		return err
	}
	for {
		n, err := r.publishBatch(ctx)
		if err != nil || n < r.cfg.batch {
			return err
		}
	}
}

func (r *Relay) publishBatch(ctx context.Context) (int, error) {
	events, keys, err := r.o.unsent(ctx, r.o.batchAfter, r.o.batch, r.cfg.batch, r.after, r.mark != nil)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	seqs := make([]int64, len(keys))
	for i, k := range keys {
		seqs[i] = k.seq
	}
	if err := r.bus.Publish(ctx, events...); err != nil {
		return 0, fmt.Errorf("outbox: relay: publish: %w", err)
	}
	if r.mark != nil {
		r.after = seqs[len(seqs)-1]
		r.toMark.Store(r.after)
		select {
		case r.markWake <- struct{}{}:
		default:
		}
	} else if err := r.markSeqs(ctx, seqs); err != nil {
		return 0, err
	}
	r.published.Add(uint64(len(events)))
	return len(events), nil
}

// publishDue publishes the requeued rows whose time has come, in the order
// they became due, and marks each sent unless it was requeued again
// meanwhile. It runs when the due hint says a row is due, or always when
// all is true; it leaves the hint at the earliest row not due yet.
func (r *Relay) publishDue(ctx context.Context, all bool) error {
	now := r.o.now().UnixNano()
	if h := r.o.dueHint.Load(); !all && (h == 0 || h > now) {
		return nil
	}
	// Clear the hint before reading: a Requeue that lowers it after this
	// committed before it, so the read sees its row, or it lowers the hint
	// again for the next pass.
	r.o.dueHint.Store(0)
	for {
		events, keys, err := r.o.unsent(ctx, nil, r.o.due, r.cfg.batch, 0, false)
		if err != nil {
			r.o.lowerDue(1) // look again next time
			return err
		}
		n := 0
		for n < len(keys) && keys[n].availableAt <= now {
			n++
		}
		if n > 0 {
			for i := range n {
				events[i] = redelivery(events[i], keys[i].requeues)
			}
			if err := r.bus.Publish(ctx, events[:n]...); err != nil {
				r.o.lowerDue(1)
				return fmt.Errorf("outbox: relay: publish: %w", err)
			}
			r.published.Add(uint64(n))
			if err := r.markDue(ctx, keys[:n]); err != nil {
				r.o.lowerDue(1)
				return err
			}
		}
		if n < len(keys) {
			r.o.lowerDue(keys[n].availableAt)
			return nil
		}
		if len(keys) < r.cfg.batch {
			return nil
		}
	}
}

// redelivery marks e as its requeues-th deliberate redelivery, so that a
// transport that drops repeated IDs (JetStream's duplicate window) stores it
// again; consumers still skip it by ID if they applied it.
func redelivery(e eventbus.Event, requeues int) eventbus.Event {
	meta := make(map[string]string, len(e.Meta)+1)
	for k, v := range e.Meta {
		meta[k] = v
	}
	meta[eventbus.MetaRedelivery] = strconv.Itoa(requeues)
	e.Meta = meta
	return e
}

// markDue marks requeued rows sent, each only if it was not requeued again
// since it was read (a new requeue must not be marked sent).
func (r *Relay) markDue(ctx context.Context, keys []rowKey) error {
	now := r.o.now().UnixNano()
	q := r.o.d.rebind(`UPDATE outbox SET published_at = ? WHERE seq = ? AND requeues = ? AND published_at IS NULL`)
	err := r.o.write(ctx, func(tx *sql.Tx) error {
		ctx := context.WithoutCancel(ctx) // see WithWriter
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, q, now, k.seq, k.requeues); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("outbox: relay: mark sent: %w", err)
	}
	return nil
}

// marker marks published batches sent in the background (serial dialects),
// one UPDATE for whatever was published since the last one.
func (r *Relay) marker(ctx context.Context) {
	defer close(r.markerDone)
	for {
		select {
		case <-r.markerStop:
			return
		case <-r.markWake:
		}
		if err := r.markUpTo(ctx, r.toMark.Load()); err != nil && ctx.Err() == nil {
			r.cfg.logger.Error("outbox: relay: mark sent failed; retrying", "err", err)
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-t.C:
			case <-r.markerStop:
			}
			t.Stop()
			select {
			case r.markWake <- struct{}{}:
			default:
			}
		}
	}
}

// markUpTo marks every unsent row up to seq hi sent (serial dialects).
func (r *Relay) markUpTo(ctx context.Context, hi int64) error {
	if r.mark == nil {
		return nil
	}
	r.markMu.Lock()
	defer r.markMu.Unlock()
	if hi <= r.marked {
		return nil
	}
	now := r.o.now().UnixNano()
	err := r.o.write(ctx, func(tx *sql.Tx) error {
		ctx := context.WithoutCancel(ctx) // see WithWriter
		_, err := tx.StmtContext(ctx, r.mark).ExecContext(ctx, now, hi)
		return err
	})
	if err != nil {
		return fmt.Errorf("outbox: relay: mark sent: %w", err)
	}
	r.marked = hi
	return nil
}

// markSeqs marks a batch sent by its seqs, with one UPDATE.
func (r *Relay) markSeqs(ctx context.Context, seqs []int64) error {
	args := make([]any, 0, len(seqs)+1)
	args = append(args, r.o.now().UnixNano())
	for _, s := range seqs {
		args = append(args, s)
	}
	// requeues = 0: a row requeued since it was read waits for its time.
	q := `UPDATE outbox SET published_at = ? WHERE requeues = 0 AND seq IN (?` + strings.Repeat(", ?", len(seqs)-1) + `)`
	err := r.o.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(context.WithoutCancel(ctx), r.o.d.rebind(q), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("outbox: relay: mark sent: %w", err)
	}
	return nil
}

// unsend marks unsent again the events sent in the last window before the
// newest sent one.
func (o *Outbox) unsend(ctx context.Context, window time.Duration) error {
	err := o.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(context.WithoutCancel(ctx), o.d.rebind(`UPDATE outbox SET published_at = NULL
WHERE published_at >= (SELECT MAX(published_at) FROM outbox WHERE published_at IS NOT NULL) - ?`), window.Nanoseconds())
		return err
	})
	if err != nil {
		return fmt.Errorf("outbox: redeliver: %w", err)
	}
	return nil
}

// rowCols are the columns unsent scans.
const rowCols = `seq, id, type, source, subject, time_ns, data, meta, requeues, COALESCE(available_at, 0)`

// rowKey identifies a read row for marking it sent.
type rowKey struct {
	seq, availableAt int64
	requeues         int
}

// unsent reads up to n rows with stmt (with afterStmt after seq after, when
// useAfter).
func (o *Outbox) unsent(ctx context.Context, afterStmt, stmt *sql.Stmt, n int, after int64, useAfter bool) ([]eventbus.Event, []rowKey, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if useAfter {
		rows, err = afterStmt.QueryContext(ctx, after, n)
	} else {
		rows, err = stmt.QueryContext(ctx, n)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: read unsent: %w", err)
	}
	defer rows.Close()
	var (
		events []eventbus.Event
		keys   []rowKey
	)
	for rows.Next() {
		var (
			e      eventbus.Event
			k      rowKey
			timeNS int64
			data   []byte
			meta   sql.NullString
		)
		if err := rows.Scan(&k.seq, &e.ID, &e.Type, &e.Source, &e.Subject, &timeNS, &data, &meta, &k.requeues, &k.availableAt); err != nil {
			return nil, nil, fmt.Errorf("outbox: read unsent: %w", err)
		}
		e.Time = time.Unix(0, timeNS).UTC()
		if data != nil {
			e.Data = json.RawMessage(data)
		}
		if meta.Valid && meta.String != "" {
			if err := json.Unmarshal([]byte(meta.String), &e.Meta); err != nil {
				return nil, nil, fmt.Errorf("outbox: read unsent %s: meta: %w", e.ID, err)
			}
		}
		events = append(events, e)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("outbox: read unsent: %w", err)
	}
	return events, keys, nil
}

// Prune deletes sent outbox rows published before outboxBefore and inbox
// records processed before inboxBefore, in small batches so it never holds
// the writer for long. It returns how many rows of each it deleted.
func (o *Outbox) Prune(ctx context.Context, outboxBefore, inboxBefore time.Time) (outbox, inbox int64, err error) {
	const chunk = 256 // small: each chunk holds the writer
	del := func(q string, before time.Time) (int64, error) {
		var total int64
		for {
			var n int64
			err := o.write(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(context.WithoutCancel(ctx), o.d.rebind(q), before.UnixNano(), chunk)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return total, fmt.Errorf("outbox: prune: %w", err)
			}
			total += n
			if n < chunk {
				return total, nil
			}
		}
	}
	// The newest row is kept: SQLite gives a new row the largest seq plus
	// one, and a relay reads after the last seq it published.
	outbox, err = del(`DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE published_at IS NOT NULL AND published_at < ?
AND seq < (SELECT MAX(seq) FROM outbox) LIMIT ?)`, outboxBefore)
	if err != nil {
		return outbox, 0, err
	}
	// An inbox record is kept while its event is being requeued: the
	// redeliveries reach every subscriber again, and the ones that applied
	// the event must still recognise it, however long that takes.
	inbox, err = del(`DELETE FROM inbox WHERE (subscription, event_id) IN (SELECT subscription, event_id FROM inbox i WHERE processed_at < ?
AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = i.event_id AND o.requeues > 0) LIMIT ?)`, inboxBefore)
	return outbox, inbox, err
}
