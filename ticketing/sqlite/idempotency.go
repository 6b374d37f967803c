package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gigbus/gigbus/ticketing"
)

type idemStmts struct {
	insert, get, takeOver, complete, release *sql.Stmt
}

func (st *idemStmts) prepare(ctx context.Context, w, _ *sql.DB) error {
	for _, p := range []struct {
		s **sql.Stmt
		q string
	}{
		{&st.insert, `INSERT INTO idempotency_keys (scope, key, fingerprint, created_ns) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`},
		{&st.get, `SELECT fingerprint, done, status, header, body, created_ns FROM idempotency_keys WHERE scope = ? AND key = ?`},
		{&st.takeOver, `UPDATE idempotency_keys SET fingerprint = ?, created_ns = ? WHERE scope = ? AND key = ? AND done = 0`},
		{&st.complete, `UPDATE idempotency_keys SET done = 1, status = ?, header = ?, body = ? WHERE scope = ? AND key = ?`},
		{&st.release, `DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND done = 0`},
	} {
		s, err := w.PrepareContext(ctx, p.q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*p.s = s
	}
	return nil
}

func (st *idemStmts) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{st.insert, st.get, st.takeOver, st.complete, st.release} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// Reserve claims key in scope: (nil, nil) when the key is new or its first
// request abandoned it (not completed within the lease), else the stored
// record. Claim and read are one write transaction, so of two concurrent
// Reserves exactly one owns the key.
func (s *Store) Reserve(ctx context.Context, scope, key, fingerprint string) (*ticketing.IdempotentResponse, error) {
	now := s.cfg.now()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap("idempotency reserve", err)
	}
	defer tx.Rollback()
	res, err := tx.StmtContext(ctx, s.idem.insert).ExecContext(ctx, scope, key, fingerprint, now.UnixNano())
	if err != nil {
		return nil, wrap("idempotency reserve", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		if err == nil {
			err = tx.Commit()
		}
		return nil, wrap("idempotency reserve", err)
	}
	r := &ticketing.IdempotentResponse{Scope: scope, Key: key}
	var (
		header    sql.NullString
		createdNS int64
	)
	err = tx.StmtContext(ctx, s.idem.get).QueryRowContext(ctx, scope, key).Scan(&r.Fingerprint, &r.Done, &r.Status, &header, &r.Body, &createdNS)
	if err != nil {
		return nil, wrap("idempotency reserve", err)
	}
	r.CreatedAt = fromNS(createdNS)
	if !r.Done && now.Sub(r.CreatedAt) > s.cfg.lease {
		if _, err := tx.StmtContext(ctx, s.idem.takeOver).ExecContext(ctx, fingerprint, now.UnixNano(), scope, key); err != nil {
			return nil, wrap("idempotency reserve", err)
		}
		return nil, wrap("idempotency reserve", tx.Commit())
	}
	if header.Valid && header.String != "" {
		if err := json.Unmarshal([]byte(header.String), &r.Header); err != nil {
			return nil, wrap("idempotency reserve: header", err)
		}
	}
	return r, nil
}

// Complete stores the answer for a reserved key.
func (s *Store) Complete(ctx context.Context, scope, key string, status int, header map[string]string, body []byte) error {
	var h any
	if len(header) > 0 {
		b, err := json.Marshal(header)
		if err != nil {
			return wrap("idempotency complete", err)
		}
		h = string(b)
	}
	if body == nil {
		body = []byte{}
	}
	res, err := s.idem.complete.ExecContext(ctx, status, h, body, scope, key)
	if err != nil {
		return wrap("idempotency complete", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = ticketing.Errorf(ticketing.ENOTFOUND, "idempotency key %q not reserved", key)
		}
		return wrap("idempotency complete", err)
	}
	return nil
}

// Release forgets a reserved, not completed key.
func (s *Store) Release(ctx context.Context, scope, key string) error {
	_, err := s.idem.release.ExecContext(ctx, scope, key)
	return wrap("idempotency release", err)
}

// Purge deletes keys created before before.
func (s *Store) Purge(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_ns < ?`, before.UnixNano())
	if err != nil {
		return 0, wrap("idempotency purge", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("idempotency purge", err)
}
