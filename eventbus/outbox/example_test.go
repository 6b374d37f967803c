package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
)

// A state change and its event commit together; the relay publishes the
// event after the commit; the consumer applies it once, however often it
// is delivered.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "outbox-example")
	defer os.RemoveAll(dir)
	db, _ := sql.Open("sqlite", filepath.Join(dir, "app.db")+"?_pragma=journal_mode(WAL)&_txlock=immediate")
	db.SetMaxOpenConns(1)
	defer db.Close()
	if err := outbox.Migrate(ctx, db, outbox.SQLite); err != nil {
		panic(err)
	}
	db.Exec(`CREATE TABLE orders (id TEXT PRIMARY KEY)`)
	ob, err := outbox.New(ctx, outbox.SQLite, db, outbox.WithSource("order-service"))
	if err != nil {
		panic(err)
	}
	defer ob.Close()

	bus := eventbus.New(eventbus.WithLogger(nil))
	bus.Subscribe("OrderPlaced", func(ctx context.Context, e eventbus.Event) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if first, err := ob.MarkProcessed(ctx, tx, "mailer", e.ID); err != nil || !first {
			return err // a redelivery: already applied
		}
		fmt.Println("mail for", e.Subject)
		return tx.Commit()
	}, eventbus.Durable("mailer"))
	relay, err := ob.StartRelay(bus, outbox.RelayLogger(nil))
	if err != nil {
		panic(err)
	}

	// The change and its event, in one transaction.
	tx, _ := db.BeginTx(ctx, nil)
	tx.Exec(`INSERT INTO orders (id) VALUES ('o-1')`)
	ob.Append(ctx, tx, eventbus.Event{ID: "evt-1", Type: "OrderPlaced", Subject: "o-1"})
	tx.Commit()
	relay.Notify()

	relay.Flush(ctx)
	bus.Flush(ctx)
	// The same event again, as after a crash: applied once.
	bus.Publish(ctx, eventbus.Event{ID: "evt-1", Type: "OrderPlaced", Subject: "o-1"})
	bus.Flush(ctx)

	relay.Close(ctx)
	bus.Close(ctx)
	// Output:
	// mail for o-1
}
