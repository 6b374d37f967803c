package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// maxGroup bounds how many transactions share one commit.
const maxGroup = 16

// errGroupAborted is what the members of a group get when the group's
// transaction was lost (SQLite rolled it back on an I/O error, say).
var errGroupAborted = errors.New("sqlite: group commit aborted")

// committer runs write transactions one at a time on the one writer
// connection, and lets transactions that queue up behind each other share
// one SQLite transaction and one commit (group commit): each runs in its own
// SAVEPOINT, so it is still atomic and isolated from the others, and
// returns only after the shared commit. A commit writes the WAL frames of
// every page touched since BEGIN; sharing it among the transactions that
// arrive meanwhile is what keeps a busy writer's cost per transaction low.
//
// The last member of a group (the one that sees nobody waiting behind it),
// or the maxGroup-th, commits. Members' statements run without their
// caller's cancellation: an interrupted statement would make SQLite roll
// back the whole shared transaction.
type committer struct {
	db      *sql.DB
	enabled bool
	sp      struct{ begin, release, rollback *sql.Stmt }

	mu       sync.Mutex   // the baton: held while one member runs
	waiting  atomic.Int32 // writers waiting for mu
	cur      *group       // the open group, if any (guarded by mu)
	onAppend func()       // called after a commit that appended events

	transactions, commits atomic.Uint64
}

type group struct {
	tx       *sql.Tx
	members  int
	appended bool
	broken   error
	done     chan struct{}
	err      error
}

func (c *committer) prepare(ctx context.Context) error {
	for _, p := range []struct {
		s **sql.Stmt
		q string
	}{{&c.sp.begin, "SAVEPOINT member"}, {&c.sp.release, "RELEASE member"}, {&c.sp.rollback, "ROLLBACK TO member"}} {
		s, err := c.db.PrepareContext(ctx, p.q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*p.s = s
	}
	return nil
}

func (c *committer) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{c.sp.begin, c.sp.release, c.sp.rollback} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// write runs fn as one write transaction. appended reports whether fn
// appended events (read after fn returns nil). It returns fn's error, or the
// commit's.
func (c *committer) write(ctx context.Context, fn func(tx *sql.Tx) error, appended func() bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.enabled {
		return c.single(ctx, fn, appended)
	}
	c.waiting.Add(1)
	c.mu.Lock()
	c.waiting.Add(-1)
	g := c.cur
	if g == nil {
		tx, err := c.db.BeginTx(context.Background(), nil) // the group outlives any one caller
		if err != nil {
			c.mu.Unlock()
			return fmt.Errorf("sqlite: begin: %w", err)
		}
		g = &group{tx: tx, done: make(chan struct{})}
		c.cur = g
	}
	err, p := c.member(ctx, g, fn)
	if err == nil && p == nil {
		g.members++
		g.appended = g.appended || appended()
	}
	if g.broken != nil || c.waiting.Load() == 0 || g.members >= maxGroup {
		c.cur = nil
		c.end(g)
	}
	c.mu.Unlock()
	if p != nil {
		panic(p)
	}
	if err != nil {
		return err
	}
	<-g.done
	return g.err
}

// member runs fn inside a savepoint of g, rolling back to it when fn fails
// or panics (the panic value is returned, to re-panic after unlocking).
func (c *committer) member(ctx context.Context, g *group, fn func(tx *sql.Tx) error) (err error, p any) {
	bg := context.WithoutCancel(ctx)
	if _, err := g.tx.StmtContext(bg, c.sp.begin).ExecContext(bg); err != nil {
		g.broken = err
		return fmt.Errorf("sqlite: savepoint: %w", err), nil
	}
	func() {
		defer func() { p = recover() }()
		err = fn(g.tx)
	}()
	if err == nil && p == nil {
		if _, rerr := g.tx.StmtContext(bg, c.sp.release).ExecContext(bg); rerr != nil {
			g.broken = rerr
			return fmt.Errorf("sqlite: release savepoint: %w", rerr), nil
		}
		return nil, nil
	}
	if _, rerr := g.tx.StmtContext(bg, c.sp.rollback).ExecContext(bg); rerr != nil {
		g.broken = rerr
	} else if _, rerr := g.tx.StmtContext(bg, c.sp.release).ExecContext(bg); rerr != nil {
		g.broken = rerr
	}
	return err, p
}

// end commits g (or rolls it back when broken) and releases its members.
func (c *committer) end(g *group) {
	if g.broken != nil {
		g.tx.Rollback()
		g.err = fmt.Errorf("%w: %v", errGroupAborted, g.broken)
	} else if err := g.tx.Commit(); err != nil {
		g.err = fmt.Errorf("sqlite: commit: %w", err)
	} else {
		c.transactions.Add(uint64(g.members))
		c.commits.Add(1)
		if g.appended && c.onAppend != nil {
			c.onAppend()
		}
	}
	close(g.done)
}

// single runs fn in a transaction of its own (group commit disabled).
func (c *committer) single(ctx context.Context, fn func(tx *sql.Tx) error, appended func() bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	tx, err := c.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	c.transactions.Add(1)
	c.commits.Add(1)
	if appended() && c.onAppend != nil {
		c.onAppend()
	}
	return nil
}
