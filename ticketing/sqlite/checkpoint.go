package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"sync/atomic"
	"time"
)

// checkpointEvery is how often the checkpointer copies the WAL back into
// the database file.
const checkpointEvery = 250 * time.Millisecond

// autoCheckpointPages is the writer's own checkpoint threshold (32 MiB of
// WAL). Under steady writes the background checkpoint never sees the WAL
// fully copied at the moment a write begins, so SQLite cannot restart the
// WAL from its start; the writer's own checkpoint at this threshold then
// copies only the last few frames the checkpointer left, and the WAL
// restarts. The WAL file stays around this size.
const autoCheckpointPages = 8000

// checkpointer runs WAL checkpoints on a connection of its own. SQLite's
// automatic checkpoint runs inside the commit that crosses the threshold,
// so that commit (and, with group commit, every transaction in it) waits
// for thousands of pages to be copied and the file to be synced: a latency
// spike every few seconds under load. A PASSIVE checkpoint on another
// connection does the same work beside the writer, which keeps appending
// to the WAL meanwhile.
type checkpointer struct {
	db          *sql.DB
	stop        chan struct{}
	done        chan struct{}
	checkpoints atomic.Uint64
}

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		var busy, log, done int
		err := c.db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done)
		if err != nil {
			slog.Warn("sqlite: checkpoint failed", "err", err)
			continue
		}
		if done > 0 {
			c.checkpoints.Add(1)
		}
	}
}

func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
