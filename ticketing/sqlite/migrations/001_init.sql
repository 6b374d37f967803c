-- ConcertService's table. available_tickets is changed only by the
-- conditional UPDATEs of ReserveSeat and ReleaseSeat; the CHECKs are a
-- second line of defence against any oversell.
CREATE TABLE concerts (
	id                 TEXT PRIMARY KEY,
	name               TEXT NOT NULL,
	venue              TEXT NOT NULL,
	date_ns            INTEGER NOT NULL,
	total_tickets      INTEGER NOT NULL CHECK (total_tickets >= 0),
	available_tickets  INTEGER NOT NULL CHECK (available_tickets >= 0 AND available_tickets <= total_tickets),
	ticket_price_cents INTEGER NOT NULL CHECK (ticket_price_cents >= 0),
	currency           TEXT NOT NULL,
	created_ns         INTEGER NOT NULL
) WITHOUT ROWID;

-- TicketService's table. Ids are UUIDv7, so inserts append to the b-tree.
CREATE TABLE tickets (
	id             TEXT PRIMARY KEY,
	concert_id     TEXT NOT NULL,
	customer_name  TEXT NOT NULL,
	customer_email TEXT NOT NULL,
	status         TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected', 'cancelled')),
	reason         TEXT NOT NULL DEFAULT '',
	purchased_ns   INTEGER NOT NULL,
	updated_ns     INTEGER NOT NULL
) WITHOUT ROWID;

-- The HTTP layer's Idempotency-Key records.
CREATE TABLE idempotency_keys (
	scope       TEXT NOT NULL,
	key         TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	done        INTEGER NOT NULL DEFAULT 0,
	status      INTEGER NOT NULL DEFAULT 0,
	header      TEXT,
	body        BLOB,
	created_ns  INTEGER NOT NULL,
	PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_ns);
