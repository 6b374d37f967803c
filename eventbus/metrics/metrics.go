// Package metrics exports an event bus's activity as Prometheus metrics. It is
// opt-in, so that package eventbus itself does not import client_golang:
//
//	m, err := metrics.New(prometheus.DefaultRegisterer)
//	bus := eventbus.New(m.Option())
//	m.WatchQueues(bus)
//
// The metrics, all with the subscription and event type as labels except the
// first:
//
//	eventbus_published_total{type}                           counter: events published
//	eventbus_handled_total{subscription,type}                counter: attempts that succeeded
//	eventbus_failed_total{subscription,type}                 counter: attempts that failed (error or panic)
//	eventbus_dead_lettered_total{subscription,type}          counter: events given up on
//	eventbus_handle_duration_seconds{subscription,type}      histogram: time of each attempt
//	eventbus_queue_depth{subscription,type}                  gauge: events waiting, read at scrape time
//
// A retried event counts once as failed per failed attempt and, in the end,
// once as handled or once as dead-lettered. A subscription's series appear,
// all at 0, with its first attempt, so that rates and ratios work from then on.
//
// # Cardinality
//
// Labels take only values defined in code: event types and subscription
// names (a Durable name, or the name the bus generates from the handler's
// function). Never build an event type from data such as a user or ticket id;
// that belongs in Subject, which is not a label. A plain subscription made
// again and again (one per SSE client, say) gets a numbered name from the bus
// ("pkg.handler@Type#7"); the number is dropped from the label, so all of them
// share one series.
package metrics

import (
	"fmt"
	"regexp"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBuckets are the handling-time histogram's upper bounds in seconds,
// from 100µs (an in-process handler) to 10s (a slow remote call).
var DefaultBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics measures one or more buses. It is a prometheus.Collector; New
// registers it. Its methods are safe for concurrent use.
type Metrics struct {
	published    *prometheus.CounterVec
	handled      *prometheus.CounterVec
	failed       *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	queueDepth   *prometheus.Desc

	// Series handles by label values, so that the hot path does one map
	// lookup instead of one per metric.
	byType sync.Map // type -> prometheus.Counter
	bySub  sync.Map // seriesKey -> *series

	mu      sync.Mutex
	sources []QueueSource
}

// Option configures New.
type Option func(*config)

type config struct {
	buckets     []float64
	constLabels prometheus.Labels
}

// Buckets sets the handling-time histogram's buckets (default DefaultBuckets).
func Buckets(b ...float64) Option { return func(c *config) { c.buckets = b } }

// ConstLabels adds fixed labels to every metric, to tell apart several buses
// measured in one registry (e.g. {"bus": "orders"}).
func ConstLabels(l prometheus.Labels) Option { return func(c *config) { c.constLabels = l } }

// New returns the metrics and registers them with reg. With a nil reg nothing
// is registered, and the caller may register m (a Collector) itself. It fails
// if reg already has metrics of the same names and labels.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	c := config{buckets: DefaultBuckets}
	for _, o := range opts {
		o(&c)
	}
	labels := []string{"subscription", "type"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "eventbus", Name: name, Help: help, ConstLabels: c.constLabels,
		}, labels)
	}
	m := &Metrics{
		published:    counter("published_total", "Events published, by type.", []string{"type"}),
		handled:      counter("handled_total", "Handler attempts that succeeded.", labels),
		failed:       counter("failed_total", "Handler attempts that failed with an error or a panic.", labels),
		deadLettered: counter("dead_lettered_total", "Events dead-lettered after their last failed attempt.", labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "eventbus", Name: "handle_duration_seconds", Help: "Time taken by each handler attempt.",
			Buckets: c.buckets, ConstLabels: c.constLabels,
		}, labels),
		queueDepth: prometheus.NewDesc("eventbus_queue_depth",
			"Events waiting in a subscription's queue, read at scrape time.", labels, c.constLabels),
	}
	if reg != nil {
		if err := reg.Register(m); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.published.Describe(ch)
	m.handled.Describe(ch)
	m.failed.Describe(ch)
	m.deadLettered.Describe(ch)
	m.duration.Describe(ch)
	ch <- m.queueDepth
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.published.Collect(ch)
	m.handled.Collect(ch)
	m.failed.Collect(ch)
	m.deadLettered.Collect(ch)
	m.duration.Collect(ch)
	m.collectQueues(ch)
}

var generatedSuffix = regexp.MustCompile(`#[0-9]+$`)

// subscriptionLabel is the label for a subscription name: the bus's
// numbering of repeated plain subscriptions is dropped (see Cardinality).
func subscriptionLabel(name string) string {
	if i := len(name) - 1; i < 0 || name[i] < '0' || name[i] > '9' {
		return name // the common case, without the regexp
	}
	return generatedSuffix.ReplaceAllString(name, "")
}
