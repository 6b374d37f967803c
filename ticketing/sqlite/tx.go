package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
	sqlite3 "modernc.org/sqlite/lib"
)

// stmts are the hot statements, prepared once per pool.
type stmts struct {
	getConcert, listConcerts, getTicket *sql.Stmt
	// writer only
	insConcert, reserve, release, concertExists, insTicket, setStatus *sql.Stmt
}

const concertCols = `id, name, venue, date_ns, total_tickets, available_tickets, ticket_price_cents, currency, created_ns`

func (st *stmts) prepare(ctx context.Context, db *sql.DB, writer bool) error {
	list := []struct {
		s **sql.Stmt
		q string
	}{
		{&st.getConcert, `SELECT ` + concertCols + ` FROM concerts WHERE id = ?`},
		{&st.listConcerts, `SELECT ` + concertCols + ` FROM concerts ORDER BY date_ns, id`},
		{&st.getTicket, `SELECT id, concert_id, customer_name, customer_email, status, reason, purchased_ns, updated_ns FROM tickets WHERE id = ?`},
	}
	if writer {
		list = append(list, []struct {
			s **sql.Stmt
			q string
		}{
			{&st.insConcert, `INSERT INTO concerts (` + concertCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
			// The no-oversell primitive: the check and the decrement are one statement.
			{&st.reserve, `UPDATE concerts SET available_tickets = available_tickets - 1 WHERE id = ? AND available_tickets > 0 RETURNING ` + concertCols},
			{&st.release, `UPDATE concerts SET available_tickets = available_tickets + 1 WHERE id = ? AND available_tickets < total_tickets`},
			{&st.concertExists, `SELECT 1 FROM concerts WHERE id = ?`},
			{&st.insTicket, `INSERT INTO tickets (id, concert_id, customer_name, customer_email, status, reason, purchased_ns, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
			{&st.setStatus, `UPDATE tickets SET status = ?, reason = ?, updated_ns = ? WHERE id = ? AND status = ?`},
		}...)
	}
	for _, p := range list {
		s, err := db.PrepareContext(ctx, p.q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*p.s = s
	}
	return nil
}

func (st *stmts) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{st.getConcert, st.listConcerts, st.getTicket, st.insConcert, st.reserve, st.release, st.concertExists, st.insTicket, st.setStatus} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// readTx reads through the reader pool (tx nil) or a write transaction.
type readTx struct {
	s  *Store
	st *stmts
	tx *sql.Tx
}

// txCtx drops ctx's cancellation inside a write transaction: an
// interrupted statement would make SQLite roll back the whole transaction,
// which group commit shares with other callers. Write transactions are short.
func (r *readTx) txCtx(ctx context.Context) context.Context {
	if r.tx == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

func (r *readTx) stmt(ctx context.Context, s *sql.Stmt) *sql.Stmt {
	if r.tx == nil {
		return s
	}
	return r.tx.StmtContext(ctx, s) // closed with the transaction
}

type scanner interface{ Scan(dest ...any) error }

func scanConcert(row scanner) (ticketing.Concert, error) {
	var (
		c                 ticketing.Concert
		dateNS, createdNS int64
	)
	err := row.Scan(&c.ID, &c.Name, &c.Venue, &dateNS, &c.TotalTickets, &c.AvailableTickets, &c.TicketPriceCents, &c.Currency, &createdNS)
	c.Date, c.CreatedAt = fromNS(dateNS), fromNS(createdNS)
	return c, err
}

func (r *readTx) Concert(ctx context.Context, id string) (ticketing.Concert, error) {
	ctx = r.txCtx(ctx)
	c, err := scanConcert(r.stmt(ctx, r.st.getConcert).QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ticketing.Errorf(ticketing.ENOTFOUND, "concert %q not found", id)
	}
	return c, wrap("get concert", err)
}

func (r *readTx) Concerts(ctx context.Context) ([]ticketing.Concert, error) {
	ctx = r.txCtx(ctx)
	rows, err := r.stmt(ctx, r.st.listConcerts).QueryContext(ctx)
	if err != nil {
		return nil, wrap("list concerts", err)
	}
	defer rows.Close()
	cs := []ticketing.Concert{}
	for rows.Next() {
		c, err := scanConcert(rows)
		if err != nil {
			return nil, wrap("list concerts", err)
		}
		cs = append(cs, c)
	}
	return cs, wrap("list concerts", rows.Err())
}

func (r *readTx) Ticket(ctx context.Context, id string) (ticketing.Ticket, error) {
	ctx = r.txCtx(ctx)
	var (
		t                      ticketing.Ticket
		purchasedNS, updatedNS int64
	)
	err := r.stmt(ctx, r.st.getTicket).QueryRowContext(ctx, id).Scan(
		&t.ID, &t.ConcertID, &t.CustomerName, &t.CustomerEmail, &t.Status, &t.Reason, &purchasedNS, &updatedNS)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ticketing.Errorf(ticketing.ENOTFOUND, "ticket %q not found", id)
	}
	t.PurchasedAt, t.UpdatedAt = fromNS(purchasedNS), fromNS(updatedNS)
	return t, wrap("get ticket", err)
}

func (r *readTx) Processed(ctx context.Context, subscription, eventID string) (bool, error) {
	ctx = r.txCtx(ctx)
	if r.tx == nil {
		return r.s.ob.Processed(ctx, nil, subscription, eventID)
	}
	return r.s.ob.Processed(ctx, r.tx, subscription, eventID)
}

// writeTx is a ticketing.Tx on the writer connection.
type writeTx struct {
	readTx
	appended bool
}

func (w *writeTx) CreateConcert(ctx context.Context, c ticketing.Concert) error {
	ctx = w.txCtx(ctx)
	_, err := w.stmt(ctx, w.st.insConcert).ExecContext(ctx, c.ID, c.Name, c.Venue, c.Date.UnixNano(),
		c.TotalTickets, c.AvailableTickets, c.TicketPriceCents, c.Currency, c.CreatedAt.UnixNano())
	if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		return ticketing.Errorf(ticketing.ECONFLICT, "concert %q exists", c.ID)
	}
	return wrap("create concert", err)
}

func (w *writeTx) ReserveSeat(ctx context.Context, concertID string) (ticketing.Concert, bool, error) {
	ctx = w.txCtx(ctx)
	c, err := scanConcert(w.stmt(ctx, w.st.reserve).QueryRowContext(ctx, concertID))
	if err == nil {
		return c, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return c, false, wrap("reserve seat", err)
	}
	// No row changed: sold out, or no such concert (the cold path).
	c, err = w.Concert(ctx, concertID)
	return c, false, err
}

func (w *writeTx) ReleaseSeat(ctx context.Context, concertID string) (bool, error) {
	ctx = w.txCtx(ctx)
	res, err := w.stmt(ctx, w.st.release).ExecContext(ctx, concertID)
	if err != nil {
		return false, wrap("release seat", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return n == 1, wrap("release seat", err)
	}
	var one int
	err = w.stmt(ctx, w.st.concertExists).QueryRowContext(ctx, concertID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ticketing.Errorf(ticketing.ENOTFOUND, "concert %q not found", concertID)
	}
	return false, wrap("release seat", err)
}

func (w *writeTx) CreateTicket(ctx context.Context, t ticketing.Ticket) error {
	ctx = w.txCtx(ctx)
	_, err := w.stmt(ctx, w.st.insTicket).ExecContext(ctx, t.ID, t.ConcertID, t.CustomerName, t.CustomerEmail,
		string(t.Status), t.Reason, t.PurchasedAt.UnixNano(), t.UpdatedAt.UnixNano())
	if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		return ticketing.Errorf(ticketing.ECONFLICT, "ticket %q exists", t.ID)
	}
	return wrap("create ticket", err)
}

func (w *writeTx) SetTicketStatus(ctx context.Context, id string, from, to ticketing.TicketStatus, reason string, updatedAt time.Time) (bool, error) {
	ctx = w.txCtx(ctx)
	res, err := w.stmt(ctx, w.st.setStatus).ExecContext(ctx, string(to), reason, updatedAt.UnixNano(), id, string(from))
	if err != nil {
		return false, wrap("set ticket status", err)
	}
	n, err := res.RowsAffected()
	return n == 1, wrap("set ticket status", err)
}

func (w *writeTx) Append(ctx context.Context, events ...eventbus.Event) error {
	ctx = w.txCtx(ctx)
	if err := w.s.ob.Append(ctx, w.tx, events...); err != nil {
		return err
	}
	w.appended = w.appended || len(events) > 0
	return nil
}

func (w *writeTx) MarkProcessed(ctx context.Context, subscription, eventID string) (bool, error) {
	ctx = w.txCtx(ctx)
	return w.s.ob.MarkProcessed(ctx, w.tx, subscription, eventID)
}

func fromNS(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

func isConstraint(err error, code int) bool {
	var e interface{ Code() int }
	return errors.As(err, &e) && e.Code() == code
}
