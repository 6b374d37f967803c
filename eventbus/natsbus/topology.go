package natsbus

import (
	"strings"

	"github.com/gigbus/gigbus/eventbus"
)

// notePublisher records that source published an event of type typ.
func (b *Bus) notePublisher(typ, source string) {
	key := typ + "\x00" + source
	if _, ok := b.sources.Load(key); !ok {
		b.sources.Store(key, struct{}{})
	}
}

// Topology returns who publishes and who handles each event type, as this
// instance sees it: the sources of the events it published, and its own
// subscriptions (Members and Concurrency count this instance's members of a
// durable group; Queued is what it fetched and has not finished).
func (b *Bus) Topology() eventbus.Topology {
	byType := map[string]*eventbus.TypeFlow{}
	flow := func(typ string) *eventbus.TypeFlow {
		if f := byType[typ]; f != nil {
			return f
		}
		f := &eventbus.TypeFlow{Type: typ}
		byType[typ] = f
		return f
	}
	b.sources.Range(func(k, _ any) bool {
		typ, source, _ := strings.Cut(k.(string), "\x00")
		f := flow(typ)
		f.Publishers = append(f.Publishers, source)
		return true
	})
	groups := map[string]int{} // durable groups by name and type: index in their type's Subscriptions
	for _, s := range b.active() {
		f := flow(s.typ)
		key := s.name + "\x00" + s.typ
		if i, ok := groups[key]; ok && s.durable {
			info := &f.Subscriptions[i]
			info.Members++
			info.Concurrency += s.cfg.Concurrency
			info.Queued += len(s.slots)
			continue
		}
		if s.durable {
			groups[key] = len(f.Subscriptions)
		}
		f.Subscriptions = append(f.Subscriptions, eventbus.SubscriptionInfo{
			Name: s.name, Durable: s.durable, Members: 1, Concurrency: s.cfg.Concurrency, Queued: len(s.slots),
		})
	}
	flows := make([]eventbus.TypeFlow, 0, len(byType))
	for _, f := range byType {
		flows = append(flows, *f)
	}
	return eventbus.NewTopology(flows...)
}
