package ticketing

import (
	"context"
	"time"

	"github.com/gigbus/gigbus/eventbus"
)

// Store is the persistence the services need. It is shared by the three
// services, but each changes only its own tables (ConcertService: concerts;
// TicketService: tickets; all: their inbox records), and only in its own
// methods and handlers. Implementations: ticketing/sqlite (and PostgreSQL);
// ticketing/storetest is the suite every implementation passes.
//
// A Store is safe for concurrent use.
type Store interface {
	// Update runs fn in a write transaction: it commits when fn returns nil and
	// rolls back when fn returns an error (which Update returns) or panics.
	// Transactions are serialisable with respect to each other (SQLite: BEGIN
	// IMMEDIATE on one writer), so a check and a write in fn are atomic. Keep
	// fn short: no I/O other than through tx, and never a nested Update (it
	// would wait for itself). Use tx only inside fn. Update returns once the
	// change is committed and visible to View. When the commit included
	// appended events, Update notifies the store's relay. Statements in fn
	// may ignore ctx's cancellation once fn started (a store may share one
	// database transaction among concurrent Updates).
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn with read access to committed data. Each read sees the
	// latest commit; several reads in one View need not share a snapshot.
	View(ctx context.Context, fn func(tx ReadTx) error) error
	// StartRelay starts publishing the events transactions append to bus, in
	// commit order, at least once, until the relay is closed. Call it at most
	// once per Store at a time.
	StartRelay(bus eventbus.Bus) (Relay, error)
	// Requeue puts an event the relay published back in the outbox, unsent:
	// the relay publishes it again (to every subscriber; the inbox skips it
	// where it was applied) at notBefore or later, a delay that grows with
	// each requeue of the event (requeues counts them, this one included).
	// It is how a dead-lettered event comes back instead of being lost.
	// err is an ENOTFOUND *Error for an event the outbox does not hold.
	Requeue(ctx context.Context, eventID string) (requeues int, notBefore time.Time, err error)
}

// ReadTx reads committed state. Getters return an ENOTFOUND *Error for an
// unknown id.
type ReadTx interface {
	Concert(ctx context.Context, id string) (Concert, error)
	// Concerts returns every concert, by date then id.
	Concerts(ctx context.Context) ([]Concert, error)
	Ticket(ctx context.Context, id string) (Ticket, error)
	// Processed reports whether subscription already recorded eventID (see Tx.MarkProcessed).
	Processed(ctx context.Context, subscription, eventID string) (bool, error)
}

// Tx is a write transaction: the repository primitives plus the outbox and
// the inbox. Inserting an existing id returns an ECONFLICT *Error.
type Tx interface {
	ReadTx

	CreateConcert(ctx context.Context, c Concert) error
	// ReserveSeat takes one seat of the concert if one is left, atomically
	// (a conditional decrement), and returns the concert as it is after that.
	// ok is false when none is left; err is ENOTFOUND for an unknown concert.
	ReserveSeat(ctx context.Context, concertID string) (c Concert, ok bool, err error)
	// ReleaseSeat gives one seat back unless all are available already; ok
	// says whether it did. err is ENOTFOUND for an unknown concert.
	ReleaseSeat(ctx context.Context, concertID string) (ok bool, err error)

	CreateTicket(ctx context.Context, t Ticket) error
	// SetTicketStatus moves the ticket from status from to status to (with
	// reason and updatedAt) if it is in from; ok says whether it moved.
	SetTicketStatus(ctx context.Context, id string, from, to TicketStatus, reason string, updatedAt time.Time) (ok bool, err error)

	// Append adds events to the outbox, to be published after this
	// transaction commits. Empty ID, Time and Source are filled.
	Append(ctx context.Context, events ...eventbus.Event) error
	// MarkProcessed records that subscription applied eventID. first is false
	// when it was recorded before: the caller must then skip the event.
	MarkProcessed(ctx context.Context, subscription, eventID string) (first bool, err error)
}

// Relay publishes what a Store's transactions appended. It is safe for
// concurrent use.
type Relay interface {
	// Notify wakes the relay: something was committed. It never blocks.
	Notify()
	// Flush returns once every event committed before the call has been
	// published (or with the error that stopped it), together with the count
	// of events the relay has published since it started.
	Flush(ctx context.Context) (published uint64, err error)
	// Close publishes what is committed (bounded by ctx), then stops the
	// relay. Events left unpublished are published by the next relay.
	Close(ctx context.Context) error
}

// IdempotentResponse is what IdempotencyStore keeps for a key: the answer
// to the first request that used it.
type IdempotentResponse struct {
	Scope, Key  string
	Fingerprint string // of the first request (e.g. a hash of its body)
	Done        bool   // false while the first request still runs
	Status      int
	Header      map[string]string
	Body        []byte
	CreatedAt   time.Time
}

// IdempotencyStore keeps idempotency keys for the HTTP layer
// (Idempotency-Key). It is safe for concurrent use.
type IdempotencyStore interface {
	// Reserve claims key in scope. It returns (nil, nil) when the key is new
	// (the caller now owns it and must Complete or Release it), or the stored
	// record (Done=false while the first request still runs). A reservation
	// neither completed nor released within the store's lease (a crashed
	// request) is taken over as if new.
	Reserve(ctx context.Context, scope, key, fingerprint string) (*IdempotentResponse, error)
	// Complete stores the answer for a key the caller reserved.
	Complete(ctx context.Context, scope, key string, status int, header map[string]string, body []byte) error
	// Release forgets a reserved key: the first request ended without an
	// answer worth keeping.
	Release(ctx context.Context, scope, key string) error
	// Purge deletes keys created before before and returns how many.
	Purge(ctx context.Context, before time.Time) (int64, error)
}
