package metrics_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/metrics"
)

// A bus measured into a registry that an HTTP server exposes at /metrics.
func Example() {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		panic(err)
	}
	bus := eventbus.New(m.Option(), eventbus.WithLogger(nil))
	defer bus.Close(ctx)
	m.WatchQueues(bus)

	bus.Subscribe("TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
		return nil
	}, eventbus.Durable("mailer"))
	bus.Subscribe("TicketPurchased", func(ctx context.Context, e eventbus.Event) error {
		return eventbus.Permanent(errors.New("no such seat"))
	}, eventbus.Durable("seating"))
	bus.Publish(ctx, eventbus.Event{Type: "TicketPurchased", Subject: "concert-1"})
	bus.Flush(ctx)

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if l := lines.Text(); strings.HasPrefix(l, "eventbus_") && !strings.HasPrefix(l, "eventbus_handle_duration") {
			fmt.Println(l)
		}
	}
	// Output:
	// eventbus_dead_lettered_total{subscription="mailer",type="TicketPurchased"} 0
	// eventbus_dead_lettered_total{subscription="seating",type="TicketPurchased"} 1
	// eventbus_failed_total{subscription="mailer",type="TicketPurchased"} 0
	// eventbus_failed_total{subscription="seating",type="TicketPurchased"} 1
	// eventbus_handled_total{subscription="mailer",type="TicketPurchased"} 1
	// eventbus_handled_total{subscription="seating",type="TicketPurchased"} 0
	// eventbus_published_total{type="TicketPurchased"} 1
	// eventbus_queue_depth{subscription="mailer",type="TicketPurchased"} 0
	// eventbus_queue_depth{subscription="seating",type="TicketPurchased"} 0
}
