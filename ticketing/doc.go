// Package ticketing is the concert-ticketing system of gigbus: the domain
// (Concert, Ticket), the immutable event payloads the services exchange, the
// one error type, the Store contract, and the three services.
//
// # The saga
//
// Three services own their own tables and talk only through events on an
// [eventbus.Bus]:
//
//	ConcertService.AddConcert ─> ConcertAdded ─> NotificationService (announce)
//	TicketService.PurchaseTicket (ticket "pending") ─> TicketRequested
//	    ─> ConcertService reserves one seat atomically
//	         ├─ TicketPurchased ─> TicketService: "confirmed"; NotificationService: confirmation
//	         └─ TicketRejected  ─> TicketService: "rejected" (Reason "sold_out" or "unknown_concert")
//	TicketService.CancelTicket ("confirmed" -> "cancelled") ─> TicketCancelled
//	    ─> ConcertService puts the seat back, exactly once
//
// ConcertAdded has the concert id as its Subject; the ticket events
// (TicketRequested, TicketPurchased, TicketRejected, TicketCancelled) have
// the ticket id, so one ticket's events reach each subscription in order
// while a handler works on many tickets of one concert at once. No rule
// needs more order than that: a seat is taken by an atomic conditional
// decrement whatever the order of requests, and a cancel follows its
// confirmation causally. (The relay still publishes every event in commit
// order, so a single-worker subscriber such as an event stream sees a
// concert's events in the order they happened.)
//
// # Durability
//
// A service never publishes directly. It changes its tables and appends the
// events that change causes in one transaction ([Store.Update], [Tx.Append]:
// the outbox). A [Relay] publishes what committed, in commit order, at least
// once. Each handler records the event id it applied in the same transaction
// as its change ([Tx.MarkProcessed]: the inbox), so a redelivered event is
// applied once. The no-oversell rule is written once, in ConcertService: the
// store supplies the transaction and an atomic conditional decrement
// ([Tx.ReserveSeat]).
//
// # Wiring
//
// [Start] builds the three services on a Store and a bus, subscribes their
// handlers and starts the store's relay:
//
//	store, _ := sqlite.Open(ctx, "./data/ticketd.db")
//	bus := eventbus.New()
//	sys, _ := ticketing.Start(ticketing.Config{Store: store, Bus: bus, Sender: notify.Log(logger)})
//	c, _ := sys.Concerts.AddConcert(ctx, ticketing.NewConcert{...})
//	t, _ := sys.Tickets.PurchaseTicket(ctx, c.ID, ticketing.NewTicket{...})
//	t, _ = sys.Tickets.AwaitOutcome(ctxWithTimeout, t.ID) // confirmed, rejected, or still pending
//
// Shut down in this order: stop accepting requests (http.Server.Shutdown),
// then [System.Close] (publishes what is committed and waits for the
// handlers, bounded by its context, then stops the relay and unsubscribes),
// then the bus's Close, then the store's Close. Anything a handler commits
// after that stays in the outbox and is published at the next start.
//
// Validation follows DESIGN.md's limits; [ErrorCode] tells callers what went
// wrong (EINVALID with per-field messages, ENOTFOUND, ECONFLICT, ...).
package ticketing
