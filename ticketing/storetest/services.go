package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
)

func testServices(t *testing.T, newStore NewStore) {
	newConcert := func(seats int) ticketing.NewConcert {
		return ticketing.NewConcert{Name: "Rock Festival", Venue: "Central Park", Date: Future,
			TotalTickets: seats, TicketPriceCents: 9999, Currency: "eur"}
	}
	buyer := ticketing.NewTicket{CustomerName: "John Doe", CustomerEmail: "john@example.com"}
	await := func(t *testing.T, sys *ticketing.System, id string) ticketing.Ticket {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		tk, err := sys.Tickets.AwaitOutcome(ctx, id)
		if err != nil {
			t.Fatalf("AwaitOutcome: %v", err)
		}
		return tk
	}

	t.Run("the seed's flow: add, buy, confirm, notify", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var sent Recorder
		sys := StartSystem(t, s, &sent)
		c, err := sys.Concerts.AddConcert(t.Context(), newConcert(1000))
		if err != nil {
			t.Fatalf("AddConcert: %v", err)
		}
		if c.Currency != "EUR" || c.AvailableTickets != 1000 || c.ID == "" {
			t.Fatalf("AddConcert = %+v, want EUR, 1000 available, an id", c)
		}
		tk, err := sys.Tickets.PurchaseTicket(t.Context(), c.ID, buyer)
		if err != nil {
			t.Fatalf("PurchaseTicket: %v", err)
		}
		if tk.Status != ticketing.StatusPending {
			t.Fatalf("new ticket status = %s, want pending", tk.Status)
		}
		awaited := await(t, sys, tk.ID)
		if awaited.Status != ticketing.StatusConfirmed {
			t.Fatalf("outcome = %+v, want confirmed", awaited)
		}
		if stored, err := sys.Tickets.GetTicket(t.Context(), tk.ID); err != nil || stored != awaited {
			t.Fatalf("GetTicket = %+v, %v; want what AwaitOutcome returned, %+v", stored, err, awaited)
		}
		Settle(t, sys)
		if got, _ := sys.Concerts.GetConcert(t.Context(), c.ID); got.AvailableTickets != 999 {
			t.Fatalf("available = %d, want 999", got.AvailableTickets)
		}
		n := sent.Sent()
		if len(n) != 2 {
			t.Fatalf("sent %d notifications, want 2 (announce, confirmation): %+v", len(n), n)
		}
		var confirmation ticketing.Notification
		for _, x := range n {
			if x.TicketID != "" {
				confirmation = x
			}
		}
		if confirmation.To != "john@example.com" || confirmation.ConcertID != c.ID || confirmation.EventID == "" {
			t.Fatalf("confirmation = %+v, want to john@example.com for %s with an event id", confirmation, c.ID)
		}
		list, err := sys.Concerts.ListConcerts(t.Context())
		if err != nil || len(list) != 1 || list[0].ID != c.ID {
			t.Fatalf("ListConcerts = %v, %v", list, err)
		}
	})

	t.Run("validation lists every invalid field", func(t *testing.T) {
		t.Parallel()
		sys := StartSystem(t, newStore(t), nil)
		_, err := sys.Concerts.AddConcert(t.Context(), ticketing.NewConcert{Date: time.Now().Add(-time.Hour), TotalTickets: -1, TicketPriceCents: -1, Currency: "eu"})
		wantCode(t, "AddConcert", err, ticketing.EINVALID)
		e, _ := err.(*ticketing.Error)
		if len(e.Fields) != 6 {
			t.Fatalf("fields = %+v, want 6 (name, venue, date, total_tickets, ticket_price_cents, currency)", e.Fields)
		}
		c, err := sys.Concerts.AddConcert(t.Context(), newConcert(1))
		if err != nil {
			t.Fatal(err)
		}
		_, err = sys.Tickets.PurchaseTicket(t.Context(), c.ID, ticketing.NewTicket{CustomerEmail: "John <john@example.com>"})
		wantCode(t, "PurchaseTicket", err, ticketing.EINVALID)
		_, err = sys.Tickets.PurchaseTicket(t.Context(), "no-such-concert", buyer)
		wantCode(t, "PurchaseTicket(unknown concert)", err, ticketing.ENOTFOUND)
		_, err = sys.Concerts.GetConcert(t.Context(), "no-such-concert")
		wantCode(t, "GetConcert", err, ticketing.ENOTFOUND)
		_, err = sys.Tickets.GetTicket(t.Context(), "no-such-ticket")
		wantCode(t, "GetTicket", err, ticketing.ENOTFOUND)
		_, err = sys.Tickets.CancelTicket(t.Context(), "no-such-ticket")
		wantCode(t, "CancelTicket", err, ticketing.ENOTFOUND)
	})

	t.Run("sold out is rejected", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var sent Recorder
		sys := StartSystem(t, s, &sent)
		c, err := sys.Concerts.AddConcert(t.Context(), newConcert(0))
		if err != nil {
			t.Fatal(err)
		}
		tk, err := sys.Tickets.PurchaseTicket(t.Context(), c.ID, buyer)
		if err != nil {
			t.Fatal(err)
		}
		got := await(t, sys, tk.ID)
		if got.Status != ticketing.StatusRejected || got.Reason != ticketing.RejectSoldOut {
			t.Fatalf("outcome = %+v, want rejected, sold_out", got)
		}
		Settle(t, sys)
		for _, n := range sent.Sent() {
			if n.TicketID != "" {
				t.Fatalf("a rejected ticket got a confirmation: %+v", n)
			}
		}
	})

	t.Run("cancel returns the seat exactly once", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		sys := StartSystem(t, s, nil)
		c, _ := sys.Concerts.AddConcert(t.Context(), newConcert(1))
		first, _ := sys.Tickets.PurchaseTicket(t.Context(), c.ID, buyer)
		if got := await(t, sys, first.ID); got.Status != ticketing.StatusConfirmed {
			t.Fatalf("first ticket = %s, want confirmed", got.Status)
		}
		second, _ := sys.Tickets.PurchaseTicket(t.Context(), c.ID, buyer)
		if got := await(t, sys, second.ID); got.Status != ticketing.StatusRejected {
			t.Fatalf("second ticket = %s, want rejected (1 seat)", got.Status)
		}
		_, err := sys.Tickets.CancelTicket(t.Context(), second.ID)
		wantCode(t, "cancel a rejected ticket", err, ticketing.ECONFLICT)

		for i := range 3 { // cancelling again changes nothing
			got, err := sys.Tickets.CancelTicket(t.Context(), first.ID)
			if err != nil || got.Status != ticketing.StatusCancelled {
				t.Fatalf("cancel #%d = %+v, %v; want cancelled", i+1, got, err)
			}
		}
		Settle(t, sys)
		if got, _ := sys.Concerts.GetConcert(t.Context(), c.ID); got.AvailableTickets != 1 {
			t.Fatalf("available after cancel = %d, want 1", got.AvailableTickets)
		}
		third, _ := sys.Tickets.PurchaseTicket(t.Context(), c.ID, buyer)
		if got := await(t, sys, third.ID); got.Status != ticketing.StatusConfirmed {
			t.Fatalf("ticket after cancel = %s, want confirmed (the seat came back)", got.Status)
		}
	})

	t.Run("cancel a pending ticket is ECONFLICT", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		sys := StartSystem(t, s, nil)
		// A ticket stored without its event stays pending.
		update(t, s, func(tx ticketing.Tx) error { return tx.CreateTicket(t.Context(), testTicket("pending-1", "c")) })
		_, err := sys.Tickets.CancelTicket(t.Context(), "pending-1")
		wantCode(t, "cancel a pending ticket", err, ticketing.ECONFLICT)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		got, err := sys.Tickets.AwaitOutcome(ctx, "pending-1")
		if err != nil || got.Status != ticketing.StatusPending {
			t.Fatalf("AwaitOutcome until ctx ends = %+v, %v; want the pending ticket, no error", got, err)
		}
		_, err = sys.Tickets.AwaitOutcome(t.Context(), "nope")
		wantCode(t, "AwaitOutcome(unknown)", err, ticketing.ENOTFOUND)
	})

	t.Run("redelivered events apply once", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var sent Recorder
		sys := StartSystem(t, s, &sent)
		c, _ := sys.Concerts.AddConcert(t.Context(), newConcert(10))
		tk, _ := sys.Tickets.PurchaseTicket(t.Context(), c.ID, buyer)
		await(t, sys, tk.ID)
		Settle(t, sys)

		// Deliver the same events again, by id, as a transport would after a crash.
		again := func(e eventbus.Event) {
			for range 2 {
				if err := sys.Bus.Publish(t.Context(), e); err != nil {
					t.Fatal(err)
				}
			}
		}
		req := eventbus.Event{ID: "dup-request", Type: ticketing.EventTicketRequested, Subject: c.ID,
			Data: ticketing.TicketRequested{TicketID: "other", ConcertID: c.ID, CustomerName: "X", CustomerEmail: "x@example.com"}}
		again(req)
		Settle(t, sys)
		if got, _ := sys.Concerts.GetConcert(t.Context(), c.ID); got.AvailableTickets != 8 {
			t.Fatalf("available = %d, want 8: one seat for the purchase, one for the twice-delivered request", got.AvailableTickets)
		}
		sentBefore := len(sent.Sent())
		cancelled, err := sys.Tickets.CancelTicket(t.Context(), tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		again(eventbus.Event{ID: "dup-cancel", Type: ticketing.EventTicketCancelled, Subject: c.ID,
			Data: ticketing.TicketCancelled{TicketID: cancelled.ID, ConcertID: c.ID}})
		Settle(t, sys)
		if got, _ := sys.Concerts.GetConcert(t.Context(), c.ID); got.AvailableTickets != 10 {
			t.Fatalf("available = %d, want 10 (the real cancel and the duplicated one each once)", got.AvailableTickets)
		}
		// The duplicated TicketRequested caused one TicketPurchased, so one more confirmation.
		if n := len(sent.Sent()); n != sentBefore {
			t.Fatalf("notifications went from %d to %d after the cancel, want no change", sentBefore, n)
		}
		purchased := eventbus.Event{ID: "dup-purchased", Type: ticketing.EventTicketPurchased, Subject: c.ID,
			Data: ticketing.TicketPurchased{TicketID: "z", ConcertID: c.ID, CustomerEmail: "z@example.com"}}
		again(purchased)
		Settle(t, sys)
		if n := len(sent.Sent()); n != sentBefore+1 {
			t.Fatalf("a twice-delivered TicketPurchased sent %d notifications, want 1", n-sentBefore)
		}
	})

	t.Run("last seats under concurrency: no oversell, no false refusal", func(t *testing.T) {
		t.Parallel()
		const seats, buyers = 25, 120
		s := newStore(t)
		sys := StartSystem(t, s, nil)
		c, err := sys.Concerts.AddConcert(t.Context(), newConcert(seats))
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			status = map[ticketing.TicketStatus]int{}
		)
		start := make(chan struct{})
		for i := range buyers {
			wg.Go(func() {
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				tk, err := sys.Tickets.PurchaseTicket(ctx, c.ID, ticketing.NewTicket{
					CustomerName: fmt.Sprintf("Buyer %d", i), CustomerEmail: fmt.Sprintf("b%d@example.com", i)})
				if err != nil {
					t.Error(err)
					return
				}
				tk, err = sys.Tickets.AwaitOutcome(ctx, tk.ID)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				status[tk.Status]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		Settle(t, sys)
		if status[ticketing.StatusConfirmed] != seats || status[ticketing.StatusRejected] != buyers-seats {
			t.Fatalf("outcomes = %v, want %d confirmed and %d rejected", status, seats, buyers-seats)
		}
		if got, _ := sys.Concerts.GetConcert(t.Context(), c.ID); got.AvailableTickets != 0 {
			t.Fatalf("available = %d, want 0", got.AvailableTickets)
		}
	})
}
