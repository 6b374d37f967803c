package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
)

func testRepository(t *testing.T, newStore NewStore) {
	t.Run("concert round trip", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		want := testConcert("c1", 10)
		update(t, s, func(tx ticketing.Tx) error { return tx.CreateConcert(t.Context(), want) })
		got := concertOf(t, s, "c1")
		if !got.Date.Equal(want.Date) || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("times: got %v %v, want %v %v", got.Date, got.CreatedAt, want.Date, want.CreatedAt)
		}
		got.Date, got.CreatedAt = want.Date, want.CreatedAt
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("list concerts by date", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var empty []ticketing.Concert
		_ = s.View(t.Context(), func(tx ticketing.ReadTx) (err error) { empty, err = tx.Concerts(t.Context()); return err })
		if len(empty) != 0 {
			t.Fatalf("empty store lists %d concerts", len(empty))
		}
		late, early := testConcert("a-late", 1), testConcert("b-early", 1)
		late.Date = early.Date.AddDate(0, 1, 0)
		update(t, s, func(tx ticketing.Tx) error {
			return errors.Join(tx.CreateConcert(t.Context(), late), tx.CreateConcert(t.Context(), early))
		})
		var cs []ticketing.Concert
		if err := s.View(t.Context(), func(tx ticketing.ReadTx) (err error) { cs, err = tx.Concerts(t.Context()); return err }); err != nil {
			t.Fatal(err)
		}
		if len(cs) != 2 || cs[0].ID != "b-early" || cs[1].ID != "a-late" {
			t.Fatalf("got %v, want [b-early a-late]", ids(cs))
		}
	})
	t.Run("unknown ids are ENOTFOUND", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		_ = s.View(t.Context(), func(tx ticketing.ReadTx) error {
			_, err := tx.Concert(t.Context(), "nope")
			wantCode(t, "Concert", err, ticketing.ENOTFOUND)
			_, err = tx.Ticket(t.Context(), "nope")
			wantCode(t, "Ticket", err, ticketing.ENOTFOUND)
			return nil
		})
		_ = s.Update(t.Context(), func(tx ticketing.Tx) error {
			_, _, err := tx.ReserveSeat(t.Context(), "nope")
			wantCode(t, "ReserveSeat", err, ticketing.ENOTFOUND)
			_, err = tx.ReleaseSeat(t.Context(), "nope")
			wantCode(t, "ReleaseSeat", err, ticketing.ENOTFOUND)
			ok, err := tx.SetTicketStatus(t.Context(), "nope", ticketing.StatusPending, ticketing.StatusConfirmed, "", Future)
			if ok || err != nil {
				t.Errorf("SetTicketStatus(unknown) = %v, %v; want false, nil", ok, err)
			}
			return nil
		})
	})
	t.Run("duplicate ids are ECONFLICT", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		update(t, s, func(tx ticketing.Tx) error {
			return errors.Join(tx.CreateConcert(t.Context(), testConcert("c", 1)), tx.CreateTicket(t.Context(), testTicket("t", "c")))
		})
		err := s.Update(t.Context(), func(tx ticketing.Tx) error { return tx.CreateConcert(t.Context(), testConcert("c", 1)) })
		wantCode(t, "CreateConcert twice", err, ticketing.ECONFLICT)
		err = s.Update(t.Context(), func(tx ticketing.Tx) error { return tx.CreateTicket(t.Context(), testTicket("t", "c")) })
		wantCode(t, "CreateTicket twice", err, ticketing.ECONFLICT)
	})
	t.Run("reserve and release seats within bounds", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		update(t, s, func(tx ticketing.Tx) error { return tx.CreateConcert(t.Context(), testConcert("c", 2)) })
		for i, want := range []bool{true, true, false, false} {
			update(t, s, func(tx ticketing.Tx) error {
				c, ok, err := tx.ReserveSeat(t.Context(), "c")
				if err != nil || ok != want {
					t.Fatalf("reserve %d: ok=%v err=%v, want ok=%v", i, ok, err, want)
				}
				if wantLeft := max(1-i, 0); c.AvailableTickets != wantLeft || c.Name != "Rock Festival" {
					t.Fatalf("reserve %d returned %+v, want %d left and the concert's fields", i, c, wantLeft)
				}
				return nil
			})
		}
		for i, want := range []bool{true, true, false} {
			update(t, s, func(tx ticketing.Tx) error {
				ok, err := tx.ReleaseSeat(t.Context(), "c")
				if err != nil || ok != want {
					t.Fatalf("release %d: ok=%v err=%v, want ok=%v", i, ok, err, want)
				}
				return nil
			})
		}
		if c := concertOf(t, s, "c"); c.AvailableTickets != 2 {
			t.Fatalf("available = %d, want 2 (never above total)", c.AvailableTickets)
		}
	})
	t.Run("ticket status moves only from the expected status", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		update(t, s, func(tx ticketing.Tx) error { return tx.CreateTicket(t.Context(), testTicket("t", "c")) })
		if got := ticketOf(t, s, "t"); got.Status != ticketing.StatusPending || got.CustomerEmail != "ada@example.com" {
			t.Fatalf("got %+v, want a pending ticket for ada@example.com", got)
		}
		at := Future
		update(t, s, func(tx ticketing.Tx) error {
			ok, err := tx.SetTicketStatus(t.Context(), "t", ticketing.StatusPending, ticketing.StatusRejected, ticketing.RejectSoldOut, at)
			if !ok || err != nil {
				t.Fatalf("pending->rejected = %v, %v; want true", ok, err)
			}
			ok, err = tx.SetTicketStatus(t.Context(), "t", ticketing.StatusPending, ticketing.StatusConfirmed, "", at)
			if ok || err != nil {
				t.Fatalf("pending->confirmed of a rejected ticket = %v, %v; want false", ok, err)
			}
			return nil
		})
		got := ticketOf(t, s, "t")
		if got.Status != ticketing.StatusRejected || got.Reason != ticketing.RejectSoldOut || !got.UpdatedAt.Equal(at) {
			t.Fatalf("got %+v, want rejected, sold_out, updated at %v", got, at)
		}
	})
	t.Run("a failing transaction commits nothing", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		err := s.Update(t.Context(), func(tx ticketing.Tx) error {
			if err := tx.CreateConcert(t.Context(), testConcert("c", 1)); err != nil {
				return err
			}
			if err := tx.Append(t.Context(), eventbus.Event{Type: "X"}); err != nil {
				return err
			}
			if _, err := tx.MarkProcessed(t.Context(), "s", "e"); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("Update = %v, want the closure's error", err)
		}
		_ = s.View(t.Context(), func(tx ticketing.ReadTx) error {
			_, err := tx.Concert(t.Context(), "c")
			wantCode(t, "Concert after rollback", err, ticketing.ENOTFOUND)
			if done, _ := tx.Processed(t.Context(), "s", "e"); done {
				t.Error("inbox record survived the rollback")
			}
			return nil
		})
		func() {
			defer func() { _ = recover() }()
			_ = s.Update(t.Context(), func(tx ticketing.Tx) error {
				_ = tx.CreateConcert(t.Context(), testConcert("p", 1))
				panic("boom")
			})
		}()
		// The store is still usable, and the panicking transaction left nothing.
		update(t, s, func(tx ticketing.Tx) error {
			_, err := tx.Concert(t.Context(), "p")
			wantCode(t, "Concert after panic", err, ticketing.ENOTFOUND)
			return nil
		})
	})
	t.Run("concurrent transactions commit or roll back each on its own", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		const n = 60
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				defer func() { _ = recover() }()
				id := fmt.Sprintf("c%02d", i)
				err := s.Update(context.Background(), func(tx ticketing.Tx) error {
					if err := tx.CreateConcert(context.Background(), testConcert(id, 1)); err != nil {
						return err
					}
					switch i % 3 {
					case 1: // a failing statement, then the closure fails
						if err := tx.CreateConcert(context.Background(), testConcert(id, 1)); ticketing.ErrorCode(err) != ticketing.ECONFLICT {
							t.Errorf("duplicate CreateConcert = %v, want ECONFLICT", err)
						}
						return errRollback
					case 2:
						panic("boom")
					}
					return nil
				})
				if (err == nil) != (i%3 == 0) {
					t.Errorf("Update %d = %v", i, err)
				}
			})
		}
		wg.Wait()
		var cs []ticketing.Concert
		if err := s.View(t.Context(), func(tx ticketing.ReadTx) (err error) { cs, err = tx.Concerts(t.Context()); return err }); err != nil {
			t.Fatal(err)
		}
		if len(cs) != n/3 {
			t.Fatalf("%d concerts committed, want %d", len(cs), n/3)
		}
		for _, c := range cs {
			var i int
			fmt.Sscanf(c.ID, "c%d", &i)
			if i%3 != 0 {
				t.Errorf("concert %s committed, but its transaction failed", c.ID)
			}
		}
	})
	t.Run("update honours a cancelled context", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := s.Update(ctx, func(tx ticketing.Tx) error { return tx.CreateConcert(ctx, testConcert("c", 1)) })
		if err == nil {
			t.Fatal("Update with a cancelled context succeeded")
		}
	})
}

func ids(cs []ticketing.Concert) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}
