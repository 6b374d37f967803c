package natsbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/natsbus"
)

// counter counts how often each event id was handled.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) handle(_ context.Context, e eventbus.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[e.ID]++
	return nil
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

func flush(t testing.TB, ctx context.Context, buses ...*natsbus.Bus) {
	t.Helper()
	for _, b := range buses {
		if err := b.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
}

func publishN(t testing.TB, ctx context.Context, b *natsbus.Bus, typ, prefix string, n int) {
	t.Helper()
	events := make([]eventbus.Event, n)
	for i := range events {
		events[i] = eventbus.Event{Type: typ, ID: fmt.Sprintf("%s%d", prefix, i), Subject: fmt.Sprint(i % 7)}
	}
	if err := b.Publish(ctx, events...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func TestDurableGroupAcrossInstances(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	stream := newStream()
	url := serverURL(t)
	a := newBusOn(t, connect(t, url), stream)
	b := newBusOn(t, connect(t, url), stream)
	var ca, cb counter
	for _, s := range []struct {
		bus *natsbus.Bus
		c   *counter
	}{{a, &ca}, {b, &cb}} {
		if _, err := s.bus.Subscribe("Job", s.c.handle, eventbus.Durable("workers"), eventbus.Concurrency(2)); err != nil {
			t.Fatal(err)
		}
	}
	const n = 300
	publishN(t, ctx, a, "Job", "j", n)
	flush(t, ctx, a, b)
	got := map[string]int{}
	for _, c := range []*counter{&ca, &cb} {
		for id, k := range c.snapshot() {
			got[id] += k
		}
	}
	if len(got) != n {
		t.Errorf("the group handled %d distinct events, want %d", len(got), n)
	}
	for id, k := range got {
		if k != 1 {
			t.Errorf("event %s handled %d times in total, want once", id, k)
		}
	}
	t.Logf("instance a handled %d, b %d", len(ca.snapshot()), len(cb.snapshot()))
}

func TestDurableTakeoverAndResume(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	stream := newStream()
	url := serverURL(t)
	pub := newBusOn(t, connect(t, url), stream)
	a := newBusOn(t, connect(t, url), stream)
	b := newBusOn(t, connect(t, url), stream)
	var ca, cb counter
	if _, err := a.Subscribe("Job", ca.handle, eventbus.Durable("group")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe("Job", cb.handle, eventbus.Durable("group")); err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, pub, "Job", "first-", 200)
	// One instance stops mid-stream: what it fetched it handles, the rest
	// goes to the other.
	if err := a.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	publishN(t, ctx, pub, "Job", "second-", 100)
	flush(t, ctx, b, pub)
	total := map[string]int{}
	for _, c := range []*counter{&ca, &cb} {
		for id, k := range c.snapshot() {
			total[id] += k
		}
	}
	if len(total) != 300 {
		t.Fatalf("handled %d distinct events after one instance stopped, want 300", len(total))
	}

	// The whole group stops; events published meanwhile wait in the stream
	// and a restarted instance resumes where the group stopped.
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	publishN(t, ctx, pub, "Job", "offline-", 50)
	c := newBusOn(t, connect(t, url), stream)
	var cc counter
	if _, err := c.Subscribe("Job", cc.handle, eventbus.Durable("group")); err != nil {
		t.Fatal(err)
	}
	flush(t, ctx, c)
	got := cc.snapshot()
	if len(got) != 50 {
		t.Errorf("the restarted instance handled %d events, want the 50 published while the group was down", len(got))
	}
	for id := range got {
		if !strings.HasPrefix(id, "offline-") {
			t.Errorf("the restarted instance handled %s again", id)
		}
	}
}

func TestDurableGroupStartsWithNewEvents(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b, _ := newBus(t)
	publishN(t, ctx, b, "Old", "old-", 5)
	var c counter
	if _, err := b.Subscribe("Old", c.handle, eventbus.Durable("late")); err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, b, "Old", "new-", 3)
	flush(t, ctx, b)
	if got := c.snapshot(); len(got) != 3 || got["new-0"] != 1 {
		t.Errorf("a new durable group handled %v, want only the 3 new events", got)
	}
}

func TestDedupeByID(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b, _ := newBus(t)
	var c counter
	if _, err := b.Subscribe("Once", c.handle); err != nil {
		t.Fatal(err)
	}
	e := eventbus.Event{Type: "Once", ID: "same-id"}
	for range 3 {
		if err := b.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, e, eventbus.Event{Type: "Once", ID: "other"}); err != nil {
		t.Fatal(err)
	}
	flush(t, ctx, b)
	if got := c.snapshot(); got["same-id"] != 1 || got["other"] != 1 || len(got) != 2 {
		t.Errorf("handled %v, want same-id and other once each", got)
	}
}

func TestRedeliveryIsNotDroppedAsDuplicate(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b, _ := newBus(t)
	var c counter
	if _, err := b.Subscribe("Again", c.handle); err != nil {
		t.Fatal(err)
	}
	e := eventbus.Event{Type: "Again", ID: "ev-1"}
	redelivered := func(n string) eventbus.Event {
		r := e
		r.Meta = map[string]string{eventbus.MetaRedelivery: n}
		return r
	}
	// The first publish, a plain repeat (dropped), then two deliberate
	// redeliveries (the outbox requeueing a dead letter) and a repeat of the
	// second (dropped again): the stream stores 3, the handler sees 3.
	for _, ev := range []eventbus.Event{e, e, redelivered("1"), redelivered("2"), redelivered("2")} {
		if err := b.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, ctx, b)
	if got := c.snapshot()["ev-1"]; got != 3 {
		t.Errorf("handled ev-1 %d times, want 3 (the original and two redeliveries)", got)
	}
}

type order struct {
	ID      string            `json:"id"`
	Placed  time.Time         `json:"placed"`
	Lines   []line            `json:"lines"`
	Tags    []string          `json:"tags"`
	Attrs   map[string]string `json:"attrs"`
	Shipped *time.Time        `json:"shipped"`
	Cents   int64             `json:"cents"`
}

type line struct {
	SKU string  `json:"sku"`
	Qty int     `json:"qty"`
	Ok  bool    `json:"ok"`
	W   float64 `json:"w"`
}

func TestPayloadAndEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b, _ := newBus(t, eventbus.WithSource("orders"))
	got := make(chan eventbus.Event, 4)
	if _, err := b.Subscribe("orders.Placed", func(_ context.Context, e eventbus.Event) error { got <- e; return nil }); err != nil {
		t.Fatal(err)
	}
	placed := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	shipped := placed.Add(36 * time.Hour).UTC()
	want := order{ID: "o-1", Placed: placed, Lines: []line{{"a", 1, true, 0.5}, {"b", 20, false, 1e-3}},
		Tags: []string{"x", "y"}, Attrs: map[string]string{"k": "v", "é": "ü"}, Shipped: &shipped, Cents: 1 << 40}
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	sent := []eventbus.Event{
		{Type: "orders.Placed", ID: "e-1", Subject: "o-1", Time: at, Data: want,
			Meta: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "correlationid": "c 1"}},
		{Type: "orders.Placed", ID: "e-2", Data: []byte(`{"raw":[1,2,3]}`)},
		{Type: "orders.Placed", ID: "e-3"},
	}
	if err := b.Publish(ctx, sent...); err != nil {
		t.Fatal(err)
	}
	flush(t, ctx, b)
	close(got)
	var events []eventbus.Event
	for e := range got {
		events = append(events, e)
	}
	if len(events) != 3 {
		t.Fatalf("got %d events, want 3", len(events))
	}
	e := events[0]
	if e.ID != "e-1" || e.Type != "orders.Placed" || e.Source != "orders" || e.Subject != "o-1" || !e.Time.Equal(at) {
		t.Errorf("envelope = %+v, want id e-1, type orders.Placed, source orders, subject o-1, time %v", e, at)
	}
	if e.Meta["traceparent"] != sent[0].Meta["traceparent"] || e.Meta["correlationid"] != "c 1" || len(e.Meta) != 2 {
		t.Errorf("Meta = %v, want %v", e.Meta, sent[0].Meta)
	}
	if _, ok := e.Data.(json.RawMessage); !ok {
		t.Errorf("Data is a %T, want json.RawMessage", e.Data)
	}
	o, err := eventbus.Decode[order](e)
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != want.ID || !o.Placed.Equal(want.Placed) || !slices.Equal(o.Lines, want.Lines) || !slices.Equal(o.Tags, want.Tags) ||
		o.Attrs["é"] != "ü" || len(o.Attrs) != 2 || o.Shipped == nil || !o.Shipped.Equal(shipped) || o.Cents != want.Cents {
		t.Errorf("payload = %+v, want %+v", o, want)
	}
	if raw, _ := events[1].Data.(json.RawMessage); string(raw) != `{"raw":[1,2,3]}` {
		t.Errorf("[]byte Data arrived as %s, want it as sent", raw)
	}
	if events[2].Data != nil {
		t.Errorf("nil Data arrived as %v, want nil", events[2].Data)
	}
}

func TestInvalidEvents(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b, _ := newBus(t)
	var c counter
	if _, err := b.Subscribe("*", c.handle); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		e    eventbus.Event
	}{
		{"space in type", eventbus.Event{Type: "Ticket Purchased"}},
		{"wildcard in type", eventbus.Event{Type: "Ticket.*"}},
		{"tail wildcard", eventbus.Event{Type: "Ticket.>"}},
		{"empty token", eventbus.Event{Type: "Ticket..Purchased"}},
		{"trailing dot", eventbus.Event{Type: "Ticket."}},
		{"non-ASCII type", eventbus.Event{Type: "Tícket"}},
		{"uppercase Meta key", eventbus.Event{Type: "A", Meta: map[string]string{"TraceParent": "x"}}},
		{"Meta key with dash", eventbus.Event{Type: "A", Meta: map[string]string{"trace-parent": "x"}}},
		{"Meta key is an attribute", eventbus.Event{Type: "A", Meta: map[string]string{"subject": "x"}}},
		{"CRLF in Meta", eventbus.Event{Type: "A", Meta: map[string]string{"k": "a\r\nb"}}},
		{"LF in Subject", eventbus.Event{Type: "A", Subject: "a\nb"}},
		{"bytes that are not JSON", eventbus.Event{Type: "A", Data: []byte("not json")}},
		{"unmarshalable Data", eventbus.Event{Type: "A", Data: func() {}}},
	} {
		err := b.Publish(ctx, eventbus.Event{Type: "A", ID: "ok-" + tc.name}, tc.e)
		if !errors.Is(err, eventbus.ErrInvalidEvent) {
			t.Errorf("%s: Publish = %v, want ErrInvalidEvent", tc.name, err)
		}
	}
	if _, err := b.Subscribe("A B", c.handle); err == nil {
		t.Error("Subscribe to a type with a space succeeded")
	}
	flush(t, ctx, b)
	if got := c.snapshot(); len(got) != 0 {
		t.Errorf("handled %v, want nothing: rejected batches accept nothing", got)
	}
}

func TestHandlerContext(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b, _ := newBus(t)
	type seen struct {
		err   error
		d     eventbus.Delivery
		trace string
	}
	got := make(chan seen, 1)
	release := make(chan struct{})
	if _, err := b.Subscribe("Ctx", func(ctx context.Context, e eventbus.Event) error {
		<-release
		d, _ := eventbus.DeliveryFrom(ctx)
		got <- seen{ctx.Err(), d, e.Meta["traceparent"]}
		return nil
	}, eventbus.Durable("ctx-sub"), eventbus.MaxAttempts(4)); err != nil {
		t.Fatal(err)
	}
	pubCtx, cancel := context.WithCancel(ctx)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if err := b.Publish(pubCtx, eventbus.Event{Type: "Ctx", Meta: map[string]string{"traceparent": tp}}); err != nil {
		t.Fatal(err)
	}
	cancel()
	close(release)
	select {
	case g := <-got:
		if g.err != nil {
			t.Errorf("handler ctx err = %v, want nil", g.err)
		}
		if want := (eventbus.Delivery{Subscription: "ctx-sub", Attempt: 1, MaxAttempts: 4}); g.d != want {
			t.Errorf("DeliveryFrom = %+v, want %+v", g.d, want)
		}
		if g.trace != tp {
			t.Errorf("Meta traceparent = %q, want %q", g.trace, tp)
		}
	case <-ctx.Done():
		t.Fatal("handler never ran")
	}
}

func TestDeadLetterStream(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	var mu sync.Mutex
	var dls []eventbus.DeadLetter
	nc := connect(t, serverURL(t))
	stream := newStream()
	b := newBusOn(t, nc, stream, eventbus.WithDeadLetter(func(_ context.Context, dl eventbus.DeadLetter) {
		mu.Lock()
		dls = append(dls, dl)
		mu.Unlock()
	}))
	var calls atomic.Int64
	boom := errors.New("boom\r\nsecond line")
	if _, err := b.Subscribe("Fail", func(context.Context, eventbus.Event) error { calls.Add(1); return boom },
		eventbus.Durable("payments"), eventbus.MaxAttempts(3), eventbus.Backoff(time.Millisecond, time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, eventbus.Event{Type: "Fail", ID: "bad-1", Subject: "s", Data: map[string]int{"n": 1},
		Meta: map[string]string{"correlationid": "c-9"}}); err != nil {
		t.Fatal(err)
	}
	flush(t, ctx, b)
	if calls.Load() != 3 {
		t.Errorf("handler called %d times, want MaxAttempts = 3", calls.Load())
	}
	mu.Lock()
	if len(dls) != 1 || dls[0].Event.ID != "bad-1" || dls[0].Subscription != "payments" || dls[0].Attempts != 3 || !errors.Is(dls[0].Err, boom) {
		t.Errorf("dead letters = %+v, want one for bad-1 from payments after 3 attempts with boom", dls)
	}
	mu.Unlock()

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := js.Stream(ctx, stream+"_DLQ")
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	m, err := dlq.GetLastMsgForSubject(ctx, stream+"_DLQ.>")
	if err != nil {
		t.Fatalf("no dead letter stored: %v", err)
	}
	consumer := m.Header.Get(natsbus.HeaderConsumer)
	for k, want := range map[string]string{
		"ce-id": "bad-1", "ce-type": "Fail", "ce-subject": "s", "ce-correlationid": "c-9", "ce-specversion": "1.0",
		natsbus.HeaderSubscription: "payments", natsbus.HeaderAttempts: "3",
		natsbus.HeaderError: "boom  second line", "Nats-Msg-Id": "bad-1/" + consumer,
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("dead letter header %s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(m.Subject, stream+"_DLQ."+consumer+".") || string(m.Data) != `{"n":1}` {
		t.Errorf("dead letter %s %s, want subject %s_DLQ.%s.Fail and the original payload", m.Subject, m.Data, stream, consumer)
	}
	// The event stream's consumers never see dead letters.
	var all counter
	if _, err := b.Subscribe("*", all.handle); err != nil {
		t.Fatal(err)
	}
	flush(t, ctx, b)
	if len(all.snapshot()) != 0 {
		t.Errorf("a * subscription saw %v", all.snapshot())
	}
}

func TestNewWithExistingStream(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	nc := connect(t, serverURL(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := newStream(), newStream()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: good, Subjects: []string{good + ".>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bad, Subjects: []string{bad + ".orders.*"}}); err != nil {
		t.Fatal(err)
	}
	b := newBusOn(t, nc, good)
	var c counter
	if _, err := b.Subscribe("Used", c.handle); err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, b, "Used", "u", 3)
	flush(t, ctx, b)
	if len(c.snapshot()) != 3 {
		t.Errorf("on an operator's stream: handled %d of 3", len(c.snapshot()))
	}
	if _, err := natsbus.New(ctx, nc, bad); err == nil || !strings.Contains(err.Error(), "do not cover") {
		t.Errorf("New on a stream whose subjects do not cover <stream>.> = %v, want a clear error", err)
	}
	for _, name := range []string{"", "a.b", "a b", "a*"} {
		if _, err := natsbus.New(ctx, nc, name); err == nil {
			t.Errorf("New(%q) succeeded, want an error", name)
		}
	}
}

func TestPublishAfterConnectionClosed(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	nc, err := nats.Connect(serverURL(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsbus.New(ctx, nc, newStream())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := b.Publish(ctx, eventbus.Event{Type: "A"}); err == nil {
		t.Error("Publish on a closed connection succeeded")
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_ = b.Close(short)
}

func TestPublishLargeBatch(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b, _ := newBus(t)
	var c counter
	if _, err := b.Subscribe("Big", c.handle, eventbus.Concurrency(4)); err != nil {
		t.Fatal(err)
	}
	const n = 6000 // more than the bus's async publishes in flight
	publishN(t, ctx, b, "Big", "b", n)
	flush(t, ctx, b)
	if got := len(c.snapshot()); got != n {
		t.Errorf("handled %d of %d", got, n)
	}
}

// A member that leaves gives what it fetched and did not start back to the
// group at once (not after the ack wait).
func TestDurableMemberLeavesWithFetchedEvents(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	stream := newStream()
	url := serverURL(t)
	a := newBusOn(t, connect(t, url), stream)
	b := newBusOn(t, connect(t, url), stream)
	var ca, cb counter
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	subA, err := a.Subscribe("Job", func(ctx context.Context, e eventbus.Event) error {
		once.Do(func() { close(started); <-release })
		return ca.handle(ctx, e)
	}, eventbus.Durable("leavers"))
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, a, "Job", "j", 100) // a fetches them all while its first handler waits
	<-started
	if _, err := b.Subscribe("Job", cb.handle, eventbus.Durable("leavers")); err != nil {
		t.Fatal(err)
	}
	left := make(chan int)
	go func() {
		if err := subA.Unsubscribe(); err != nil {
			t.Errorf("Unsubscribe: %v", err)
		}
		left <- len(ca.snapshot())
	}()
	close(release)
	atLeave := <-left
	// Less than the ack wait (10s): abandoned events must come back at once.
	short, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	flush(t, short, b)
	if got := len(ca.snapshot()); got != atLeave {
		t.Errorf("the member that left handled %d events after Unsubscribe returned", got-atLeave)
	}
	total := map[string]int{}
	for _, c := range []*counter{&ca, &cb} {
		for id, k := range c.snapshot() {
			total[id] += k
		}
	}
	if len(total) != 100 {
		t.Errorf("the group handled %d distinct events, want 100", len(total))
	}
}

// Close of an instance with a plain subscription handles what was stored
// before it began (and what its handlers publish), not what other instances
// keep publishing meanwhile.
func TestCloseWhileOthersKeepPublishing(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	stream := newStream()
	url := serverURL(t)
	pub := newBusOn(t, connect(t, url), stream)
	b := newBusOn(t, connect(t, url), stream)
	var c, chained counter
	if _, err := b.Subscribe("Feed", func(ctx context.Context, e eventbus.Event) error {
		if err := c.handle(ctx, e); err != nil {
			return err
		}
		if strings.HasPrefix(e.ID, "before-") {
			return b.Publish(ctx, eventbus.Event{Type: "Chained", ID: "chained-" + e.ID})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe("Chained", chained.handle); err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, pub, "Feed", "before-", 200)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := pub.Publish(ctx, eventbus.Event{Type: "Feed", ID: fmt.Sprint("during-", i)}); err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
		}
	}()
	err := b.Close(ctx)
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("Close while another instance keeps publishing = %v, want nil", err)
	}
	got, gotChained := c.snapshot(), chained.snapshot()
	for i := range 200 {
		id := fmt.Sprint("before-", i)
		if got[id] != 1 || gotChained["chained-"+id] != 1 {
			t.Fatalf("after Close: %s handled %d times, its chained event %d times; want 1 and 1", id, got[id], gotChained["chained-"+id])
		}
	}
}

// has reports whether an event whose id starts with prefix was handled.
func (c *counter) has(prefix string) bool {
	for id := range c.snapshot() {
		if strings.HasPrefix(id, prefix) {
			return true
		}
	}
	return false
}
