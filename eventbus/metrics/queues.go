package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gigbus/gigbus/eventbus"
)

// QueueSource is what WatchQueues reads: a bus that reports its topology,
// such as *eventbus.MemoryBus.
type QueueSource interface {
	Topology() eventbus.Topology
}

// WatchQueues makes eventbus_queue_depth report src's queues, read from
// src.Topology() at each scrape. Queues of the same subscription and type in
// several watched buses are added up.
func (m *Metrics) WatchQueues(src QueueSource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sources = append(m.sources, src)
}

func (m *Metrics) collectQueues(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	sources := m.sources
	m.mu.Unlock()

	depth := map[seriesKey]int{}
	var order []seriesKey
	for _, src := range sources {
		for _, f := range src.Topology().Types {
			for _, s := range f.Subscriptions {
				k := seriesKey{subscriptionLabel(s.Name), f.Type}
				if _, seen := depth[k]; !seen {
					order = append(order, k)
				}
				depth[k] += s.Queued
			}
		}
	}
	for _, k := range order {
		ch <- prometheus.MustNewConstMetric(m.queueDepth, prometheus.GaugeValue, float64(depth[k]), k.sub, k.typ)
	}
}
