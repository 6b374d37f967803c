package outbox_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/outbox"
)

// BenchmarkAppendAndRelay measures one event per committed transaction
// through the outbox and the relay to a handler on the in-memory bus
// (SQLite, one writer connection, no group commit).
func BenchmarkAppendAndRelay(b *testing.B) {
	db := openDB(b, filepath.Join(b.TempDir(), "o.db"))
	o, err := outbox.New(context.Background(), outbox.SQLite, db)
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	bus := eventbus.New(eventbus.WithLogger(nil))
	defer bus.Close(context.Background())
	var handled atomic.Int64
	bus.Subscribe("T", func(context.Context, eventbus.Event) error { handled.Add(1); return nil })
	r, err := o.StartRelay(bus, outbox.RelayLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(context.Background())
	ctx := context.Background()
	data := map[string]any{"ticket_id": "01a241f1-b8b1-731c-ab7e-df920c5991a4", "n": 1}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := o.Append(ctx, tx, eventbus.Event{Type: "T", Subject: "s", Data: data}); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		r.Notify()
	}
	if _, err := r.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if err := bus.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(handled.Load())/time.Since(start).Seconds(), "events/s")
}
