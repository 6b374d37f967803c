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
	var r *ticketing.IdempotentResponse
	err := s.write(ctx, func(tx *sql.Tx) error {
		r = nil
		bg := context.WithoutCancel(ctx)
		res, err := tx.StmtContext(bg, s.idem.insert).ExecContext(bg, scope, key, fingerprint, now.UnixNano())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		rec := &ticketing.IdempotentResponse{Scope: scope, Key: key}
		var (
			header    sql.NullString
			createdNS int64
		)
		err = tx.StmtContext(bg, s.idem.get).QueryRowContext(bg, scope, key).Scan(&rec.Fingerprint, &rec.Done, &rec.Status, &header, &rec.Body, &createdNS)
		if err != nil {
			return err
		}
		rec.CreatedAt = fromNS(createdNS)
		if !rec.Done && now.Sub(rec.CreatedAt) > s.cfg.lease {
			_, err := tx.StmtContext(bg, s.idem.takeOver).ExecContext(bg, fingerprint, now.UnixNano(), scope, key)
			return err
		}
		if header.Valid && header.String != "" {
			if err := json.Unmarshal([]byte(header.String), &rec.Header); err != nil {
				return fmt.Errorf("header: %w", err)
			}
		}
		r = rec
		return nil
	})
	if err != nil {
		return nil, wrap("idempotency reserve", err)
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
	return wrap("idempotency complete", s.write(ctx, func(tx *sql.Tx) error {
		bg := context.WithoutCancel(ctx)
		res, err := tx.StmtContext(bg, s.idem.complete).ExecContext(bg, status, h, body, scope, key)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err == nil {
				err = ticketing.Errorf(ticketing.ENOTFOUND, "idempotency key %q not reserved", key)
			}
			return err
		}
		return nil
	}))
}

// Release forgets a reserved, not completed key.
func (s *Store) Release(ctx context.Context, scope, key string) error {
	return wrap("idempotency release", s.write(ctx, func(tx *sql.Tx) error {
		bg := context.WithoutCancel(ctx)
		_, err := tx.StmtContext(bg, s.idem.release).ExecContext(bg, scope, key)
		return err
	}))
}

// Purge deletes keys created before before.
func (s *Store) Purge(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(context.WithoutCancel(ctx), `DELETE FROM idempotency_keys WHERE created_ns < ?`, before.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, wrap("idempotency purge", err)
}
