package outbox

import (
	"strconv"
	"strings"
)

// Dialect is the seam between the outbox and a SQL database: how it writes
// placeholders and its schema. The queries are otherwise portable
// (INSERT ... ON CONFLICT DO NOTHING, partial indexes).
type Dialect struct {
	name   string
	dollar bool // $1, $2, ... instead of ?
	seq    string
	blob   string
	// clustered is appended to CREATE TABLE for tables clustered on their
	// primary key (SQLite: WITHOUT ROWID, one b-tree instead of two).
	clustered string
	// serial: commits are serialised in seq order (one writer), so a batch
	// can be marked sent by its seq range.
	serial bool
}

var (
	// SQLite is the dialect of SQLite 3.35 and later (modernc.org/sqlite).
	// Its writers are serialised, so seq order is commit order.
	SQLite = Dialect{name: "sqlite", seq: "INTEGER PRIMARY KEY", blob: "BLOB", serial: true, clustered: " WITHOUT ROWID"}
	// PostgreSQL is the dialect of PostgreSQL 12 and later (pgx's stdlib).
	// Sequences are taken at insert, not at commit, so with concurrent
	// writers a relay may see a lower seq commit after a higher one; the
	// relay never skips it (it selects by published_at, not by position),
	// but publishes it later than its seq suggests. Run one writer per
	// Subject (or one relay per database) where commit order matters.
	PostgreSQL = Dialect{name: "postgres", dollar: true, seq: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", blob: "BYTEA"}
)

// Name returns the dialect's name ("sqlite", "postgres").
func (d Dialect) Name() string { return d.name }

// rebind turns ? placeholders into the dialect's.
func (d Dialect) rebind(q string) string {
	if !d.dollar {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// schema returns the statements that create the outbox and inbox tables.
func (d Dialect) schema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS outbox (
	seq          ` + d.seq + `,
	id           TEXT NOT NULL,
	type         TEXT NOT NULL,
	source       TEXT NOT NULL,
	subject      TEXT NOT NULL,
	time_ns      BIGINT NOT NULL,
	data         ` + d.blob + `,
	meta         TEXT,
	created_at   BIGINT NOT NULL,
	published_at BIGINT,
	available_at BIGINT,
	requeues     INTEGER NOT NULL DEFAULT 0
)`,
		`CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL`,
		`CREATE TABLE IF NOT EXISTS inbox (
	subscription TEXT NOT NULL,
	event_id     TEXT NOT NULL,
	processed_at BIGINT NOT NULL,
	PRIMARY KEY (subscription, event_id)
)` + d.clustered,
		`CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox (processed_at)`,
	}
}

// requeueColumns are the columns Requeue added to the outbox table after
// its first release; upgrade adds them to older tables.
var requeueColumns = []struct{ name, def string }{
	{"available_at", "BIGINT"},
	{"requeues", "INTEGER NOT NULL DEFAULT 0"},
}

// requeueIndexes are created after the columns exist: Requeue finds an
// event by id, and the relay finds requeued rows by when they are due.
var requeueIndexes = []string{
	`CREATE INDEX IF NOT EXISTS outbox_event_id ON outbox (id)`,
	`CREATE INDEX IF NOT EXISTS outbox_requeued ON outbox (available_at) WHERE published_at IS NULL AND requeues > 0`,
}

// hasColumnQuery returns a query counting the outbox table's columns named ?.
func (d Dialect) hasColumnQuery() string {
	if d.dollar {
		return `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'outbox' AND column_name = $1`
	}
	return `SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = ?`
}
