package eventbus

import (
	"fmt"
	"slices"
	"strings"
)

// Topology is a snapshot of who publishes and who handles which event type,
// learnt from the running bus: publishers from the Source of what was
// published, handlers from the subscriptions.
type Topology struct {
	Types []TypeFlow // sorted by type; "*" (handlers of every type) last
}

// TypeFlow is one event type's publishers and subscriptions.
type TypeFlow struct {
	Type          string
	Publishers    []string // sources seen publishing this type, sorted
	Subscriptions []SubscriptionInfo
}

// SubscriptionInfo describes one subscription or durable group.
type SubscriptionInfo struct {
	Name        string // Durable name, or generated from the handler's function
	Durable     bool
	Members     int // Subscribe calls sharing it (1 unless durable)
	Concurrency int // workers, all members together
	Queued      int // events waiting now, not yet started
}

// Topology returns who publishes and who handles each event type.
func (b *MemoryBus) Topology() Topology {
	b.mu.Lock()
	routes := *b.routes.Load()
	byType := map[string]*TypeFlow{}
	flow := func(typ string) *TypeFlow {
		if f := byType[typ]; f != nil {
			return f
		}
		f := &TypeFlow{Type: typ}
		byType[typ] = f
		return f
	}
	for typ, r := range routes {
		if p := r.sources.Load(); p != nil {
			f := flow(typ)
			f.Publishers = slices.Clone(*p)
		}
	}
	for _, q := range b.queues {
		q.mu.Lock()
		info := SubscriptionInfo{Name: q.name, Durable: q.durable, Queued: int(q.queued.Load())}
		for _, m := range q.members {
			if !m.stopped {
				info.Members++
				info.Concurrency += m.cfg.Concurrency
			}
		}
		q.mu.Unlock()
		f := flow(q.typ)
		f.Subscriptions = append(f.Subscriptions, info)
	}
	b.mu.Unlock()

	flows := make([]TypeFlow, 0, len(byType))
	for _, f := range byType {
		flows = append(flows, *f)
	}
	return NewTopology(flows...)
}

// NewTopology returns a Topology of flows in the canonical order: types
// sorted ("*" last), and in each its publishers and subscriptions sorted.
// Transports build their Topology with it.
func NewTopology(flows ...TypeFlow) Topology {
	for i := range flows {
		slices.Sort(flows[i].Publishers)
		slices.SortFunc(flows[i].Subscriptions, func(a, b SubscriptionInfo) int { return strings.Compare(a.Name, b.Name) })
	}
	slices.SortFunc(flows, func(a, b TypeFlow) int {
		if (a.Type == "*") != (b.Type == "*") {
			if a.Type == "*" {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Type, b.Type)
	})
	return Topology{Types: flows}
}

// Mermaid renders the topology as a Mermaid flowchart ("graph TD"), like the
// seed's flow diagram: publishers on top, then the event types, then the
// handlers, each in its subgraph. Subscriptions to "*" are drawn with an
// edge from every type.
func (t Topology) Mermaid() string {
	var sb strings.Builder
	sb.WriteString("graph TD\n")
	ids := map[string]string{}
	counts := map[string]int{}
	id := func(kind, name string) string {
		k := kind + "\x00" + name
		if v, ok := ids[k]; ok {
			return v
		}
		v := fmt.Sprintf("%s%d", kind, counts[kind])
		counts[kind]++
		ids[k] = v
		return v
	}
	var pubs, types, subs []string
	var edges []string
	seen := map[string]bool{}
	add := func(list *[]string, key, line string) {
		if !seen[key] {
			seen[key] = true
			*list = append(*list, line)
		}
	}
	var wildcard []SubscriptionInfo
	for _, f := range t.Types {
		if f.Type == "*" {
			wildcard = f.Subscriptions
		}
	}
	for _, f := range t.Types {
		if f.Type == "*" {
			continue
		}
		tid := id("T", f.Type)
		add(&types, tid, fmt.Sprintf("    %s{{%s}}", tid, quote(f.Type)))
		for _, p := range f.Publishers {
			pid := id("P", p)
			add(&pubs, pid, fmt.Sprintf("    %s([%s])", pid, quote(p)))
			edges = append(edges, fmt.Sprintf("    %s -->|publishes| %s", pid, tid))
		}
		for _, s := range append(slices.Clone(f.Subscriptions), wildcard...) {
			sid := id("S", s.Name)
			add(&subs, sid, fmt.Sprintf("    %s[%s]", sid, quote(subLabel(s))))
			edges = append(edges, fmt.Sprintf("    %s -->|notifies| %s", tid, sid))
		}
	}
	for _, group := range []struct {
		name  string
		nodes []string
	}{{"Publishers", pubs}, {"Events", types}, {"Handlers", subs}} {
		if len(group.nodes) == 0 {
			continue
		}
		fmt.Fprintf(&sb, "    subgraph %s\n", group.name)
		for _, n := range group.nodes {
			sb.WriteString("    " + n + "\n")
		}
		sb.WriteString("    end\n")
	}
	for _, e := range edges {
		sb.WriteString(e + "\n")
	}
	return sb.String()
}

func subLabel(s SubscriptionInfo) string {
	label := s.Name
	if s.Durable && s.Members > 1 {
		label += fmt.Sprintf(" ×%d", s.Members)
	}
	return label
}

// quote makes a Mermaid node label: quoted, with the characters that would
// end it written as entities.
func quote(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;")
	return `"` + r.Replace(s) + `"`
}
