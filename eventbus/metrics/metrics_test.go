package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/metrics"
)

// setup returns a registry and a memory bus measured into it; the bus is
// closed when the test ends.
func setup(t *testing.T, opts ...metrics.Option) (*prometheus.Registry, *metrics.Metrics, *eventbus.MemoryBus) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	bus := eventbus.New(m.Option(), eventbus.WithLogger(nil), eventbus.WithDeadLetterKeep(0))
	m.WatchQueues(bus)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := bus.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return reg, m, bus
}

// value returns the value of the series name{labels} in reg: a counter's or
// gauge's value, a histogram's sample count; 0 if there is no such series.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if !hasLabels(mt, labels) {
				continue
			}
			switch {
			case mt.Counter != nil:
				return mt.GetCounter().GetValue()
			case mt.Gauge != nil:
				return mt.GetGauge().GetValue()
			case mt.Histogram != nil:
				return float64(mt.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, kv []string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if got[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}

func publish(t *testing.T, bus eventbus.Bus, events ...eventbus.Event) {
	t.Helper()
	ctx := context.Background()
	if err := bus.Publish(ctx, events...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func TestPublishedCountsEachEventByType(t *testing.T) {
	t.Parallel()
	reg, _, bus := setup(t)
	publish(t, bus,
		eventbus.Event{Type: "TicketPurchased"},
		eventbus.Event{Type: "TicketPurchased"},
		eventbus.Event{Type: "ConcertCreated"},
	)
	want := `
# HELP eventbus_published_total Events published, by type.
# TYPE eventbus_published_total counter
eventbus_published_total{type="ConcertCreated"} 1
eventbus_published_total{type="TicketPurchased"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "eventbus_published_total"); err != nil {
		t.Error(err)
	}
}

func TestHandlerOutcomes(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	tests := []struct {
		name        string
		maxAttempts int
		handler     eventbus.Handler
		// per event, after the bus is idle
		handled, failed, deadLettered, durations float64
	}{
		{
			name:        "success counts handled",
			maxAttempts: 3,
			handler:     func(context.Context, eventbus.Event) error { return nil },
			handled:     1, durations: 1,
		},
		{
			name:        "failure then success counts both",
			maxAttempts: 3,
			handler:     failTimes(1, errBoom),
			handled:     1, failed: 1, durations: 2,
		},
		{
			name:        "every attempt failing counts each and dead-letters once",
			maxAttempts: 3,
			handler:     func(context.Context, eventbus.Event) error { return errBoom },
			failed:      3, deadLettered: 1, durations: 3,
		},
		{
			name:        "permanent error dead-letters at once",
			maxAttempts: 3,
			handler:     func(context.Context, eventbus.Event) error { return eventbus.Permanent(errBoom) },
			failed:      1, deadLettered: 1, durations: 1,
		},
		{
			name:        "panic counts as a failure",
			maxAttempts: 2,
			handler:     func(context.Context, eventbus.Event) error { panic("boom") },
			failed:      2, deadLettered: 1, durations: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg, _, bus := setup(t)
			_, err := bus.Subscribe("TicketPurchased", tt.handler, eventbus.Durable("mailer"),
				eventbus.MaxAttempts(tt.maxAttempts), eventbus.Backoff(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			publish(t, bus, eventbus.Event{Type: "TicketPurchased"}, eventbus.Event{Type: "TicketPurchased"})

			const events = 2
			labels := []string{"subscription", "mailer", "type", "TicketPurchased"}
			for _, c := range []struct {
				name string
				want float64
			}{
				{"eventbus_handled_total", events * tt.handled},
				{"eventbus_failed_total", events * tt.failed},
				{"eventbus_dead_lettered_total", events * tt.deadLettered},
				{"eventbus_handle_duration_seconds", events * tt.durations},
			} {
				if got := value(t, reg, c.name, labels...); got != c.want {
					t.Errorf("%s = %v, want %v", c.name, got, c.want)
				}
			}
		})
	}
}

// failTimes returns a handler that fails the first n attempts of each event.
func failTimes(n int, err error) eventbus.Handler {
	return func(ctx context.Context, e eventbus.Event) error {
		if d, _ := eventbus.DeliveryFrom(ctx); d.Attempt <= n {
			return err
		}
		return nil
	}
}

func TestTypedHandlerDecodeFailureIsDeadLettered(t *testing.T) {
	t.Parallel()
	reg, _, bus := setup(t)
	type purchased struct{ Seats int }
	_, err := eventbus.On(bus, "TicketPurchased", func(context.Context, eventbus.Event, purchased) error { return nil },
		eventbus.Durable("mailer"))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, bus, eventbus.Event{Type: "TicketPurchased", Data: []byte(`{"Seats": "many"}`)})
	if got := value(t, reg, "eventbus_dead_lettered_total", "subscription", "mailer"); got != 1 {
		t.Errorf("dead-lettered = %v, want 1", got)
	}
}

func TestQueueDepthIsReadAtScrapeTime(t *testing.T) {
	t.Parallel()
	reg, m, bus := setup(t)
	started, release := make(chan struct{}, 1), make(chan struct{})
	_, err := bus.Subscribe("TicketPurchased", func(context.Context, eventbus.Event) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return nil
	}, eventbus.Durable("slow"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// One Subject, so that the events after the first wait in the queue
	// until it is done (a worker may take several unrelated events at once).
	for range 5 {
		if err := bus.Publish(ctx, eventbus.Event{Type: "TicketPurchased", Subject: "concert-1"}); err != nil {
			t.Fatal(err)
		}
	}
	<-started // one event taken, four waiting
	labels := []string{"subscription", "slow", "type", "TicketPurchased"}
	if got := value(t, reg, "eventbus_queue_depth", labels...); got != 4 {
		t.Errorf("queue depth while blocked = %v, want 4", got)
	}
	close(release)
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "eventbus_queue_depth", labels...); got != 0 {
		t.Errorf("queue depth after Flush = %v, want 0", got)
	}
	if n := testutil.CollectAndCount(m, "eventbus_queue_depth"); n != 1 {
		t.Errorf("queue depth series = %d, want 1", n)
	}
}

func TestRepeatedPlainSubscriptionsShareOneSeries(t *testing.T) {
	t.Parallel()
	reg, _, bus := setup(t)
	for range 3 {
		sub, err := bus.Subscribe("TicketPurchased", handleSSE)
		if err != nil {
			t.Fatal(err)
		}
		publish(t, bus, eventbus.Event{Type: "TicketPurchased"})
		if err := sub.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "eventbus_handled_total" {
			continue
		}
		if n := len(mf.GetMetric()); n != 1 {
			t.Fatalf("handled series = %d, want 1", n)
		}
		if got := mf.GetMetric()[0].GetCounter().GetValue(); got != 3 {
			t.Errorf("handled = %v, want 3", got)
		}
		return
	}
	t.Fatal("no eventbus_handled_total")
}

func handleSSE(context.Context, eventbus.Event) error { return nil }

func TestNewFailsOnDuplicateRegistration(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	_, err := metrics.New(reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second New: got %v, want an AlreadyRegisteredError", err)
	}
}

func TestConstLabelsTellBusesApart(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	ctx := context.Background()
	for _, name := range []string{"orders", "mail"} {
		m, err := metrics.New(reg, metrics.ConstLabels(prometheus.Labels{"bus": name}))
		if err != nil {
			t.Fatalf("New for bus %q: %v", name, err)
		}
		bus := eventbus.New(m.Option())
		if err := bus.Publish(ctx, eventbus.Event{Type: "Ping"}); err != nil {
			t.Fatal(err)
		}
		if err := bus.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"orders", "mail"} {
		if got := value(t, reg, "eventbus_published_total", "bus", name, "type", "Ping"); got != 1 {
			t.Errorf("published{bus=%q} = %v, want 1", name, got)
		}
	}
}
