package natsbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gigbus/gigbus/eventbus"
)

var _ eventbus.Bus = (*Bus)(nil)

const (
	// publishWindow bounds the asynchronous publishes one Publish call has
	// waiting for the stream's acknowledgement, and maxPublishing those of
	// the whole bus (Publish waits for room, within its context).
	publishWindow = 512
	maxPublishing = 8 * publishWindow
	// duplicateWindow is the de-duplication window of the streams New creates.
	duplicateWindow = 2 * time.Minute
	// ackWait is how long the server waits for an ack before redelivering:
	// it is how soon deliveries lost with a crashed instance or a server
	// restart come back. Events held longer (a slow handler, a long queue)
	// are kept alive with InProgress every ackWait/3.
	ackWait = 10 * time.Second
	// inactiveThreshold lets the server remove the ephemeral consumer of a
	// plain subscription whose process died without Close.
	inactiveThreshold = 5 * time.Minute
	// opTimeout bounds the JetStream API calls that have no caller's context
	// (Subscribe, Unsubscribe, dead letters).
	opTimeout = 10 * time.Second
)

// Bus is an eventbus.Bus over NATS JetStream. Create it with New; it is safe
// for concurrent use.
type Bus struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	name   string // the event stream; subjects <name>.<type>
	dlq    string // the dead-letter stream; subjects <dlq>.<consumer>.<type>
	cfg    eventbus.Config

	life    context.Context // handlers' contexts: cancelled when Close gives up
	kill    context.CancelFunc
	hbase   context.Context // life, marked as "inside a handler of this bus"
	closing chan struct{}   // closed when Close starts
	pubs    chan struct{}   // a slot per asynchronous publish in flight
	lastPub atomic.Uint64   // the highest stream sequence this bus published
	sources sync.Map        // "<type>\x00<source>" of what this bus published, for Topology

	mu    sync.Mutex
	state int // open, closing or closed
	subs  map[*subscription]struct{}
	// retiring are unsubscribed subscriptions whose workers have not all
	// exited yet (Unsubscribe called from their own handler): Flush and
	// Close still wait for them.
	retiring map[*subscription]struct{}
	names    map[string]int // generated-name counters
	ownConn  bool           // Dial made nc: Close closes it
}

const (
	open = iota
	closing
	closed
)

type inHandlerKey struct{}

// New returns a bus on the JetStream stream named stream, reached through nc,
// which stays the caller's to close (after the bus). The stream is created
// when missing (subjects "<stream>.>", limits retention, file storage, a
// duplicate window of 2 minutes); an existing stream is used as it is, and
// New fails if its subjects do not cover "<stream>.>". Dead letters go to the
// stream "<stream>_DLQ" (subjects "<stream>_DLQ.>"), created the same way.
func New(ctx context.Context, nc *nats.Conn, stream string, opts ...eventbus.Option) (*Bus, error) {
	if nc == nil {
		return nil, errors.New("natsbus: nil *nats.Conn")
	}
	if err := validStreamName(stream); err != nil {
		return nil, err
	}
	// nats.go fails an async publish that waits for room more than a moment;
	// the bus keeps below its limit and waits for room itself (b.pubs).
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*maxPublishing))
	if err != nil {
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	s, err := ensureStream(ctx, js, stream)
	if err != nil {
		return nil, err
	}
	if _, err := ensureStream(ctx, js, stream+"_DLQ"); err != nil {
		return nil, err
	}
	b := &Bus{
		nc: nc, js: js, stream: s, name: stream, dlq: stream + "_DLQ",
		cfg:      eventbus.NewConfig(opts...),
		closing:  make(chan struct{}),
		pubs:     make(chan struct{}, maxPublishing),
		subs:     make(map[*subscription]struct{}),
		retiring: make(map[*subscription]struct{}),
		names:    make(map[string]int),
	}
	b.life, b.kill = context.WithCancel(context.Background())
	b.hbase = context.WithValue(b.life, inHandlerKey{}, b)
	return b, nil
}

// Dial connects to the NATS server at url and returns a bus on its stream, as
// New does. The bus owns the connection: Close closes it. The connection
// reconnects for as long as it takes (Publish fails clearly while it is
// down; consumers resume when it is back), logging each disconnect and
// reconnect to the bus's logger.
func Dial(ctx context.Context, url, stream string, opts ...eventbus.Option) (*Bus, error) {
	logger := eventbus.NewConfig(opts...).Logger
	nc, err := nats.Connect(url, nats.Name("gigbus"),
		nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close
				logger.Warn("natsbus: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			logger.Info("natsbus: reconnected", "url", c.ConnectedUrlRedacted())
		}))
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect %s: %w", url, err)
	}
	b, err := New(ctx, nc, stream, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.ownConn = true
	return b, nil
}

// ensureStream returns the stream name, creating it when missing, and
// checks that its subjects cover "<name>.>".
func ensureStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	want := name + ".>"
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       name,
			Subjects:   []string{want},
			Retention:  jetstream.LimitsPolicy,
			Storage:    jetstream.FileStorage,
			Duplicates: duplicateWindow,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created meanwhile by another instance
			s, err = js.Stream(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsbus: stream %s: %w", name, err)
	}
	for _, subj := range s.CachedInfo().Config.Subjects {
		if covers(subj, want) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("natsbus: existing stream %s has subjects %q, which do not cover %q", name, s.CachedInfo().Config.Subjects, want)
}

// recreateStreams creates the streams again if the server lost them (it
// restarted without its store), so that publishing again succeeds.
func (b *Bus) recreateStreams(ctx context.Context) {
	for _, name := range []string{b.name, b.dlq} {
		if _, err := ensureStream(ctx, b.js, name); err != nil {
			b.cfg.Logger.Debug("natsbus: checking a stream after a failed publish", "stream", name, "err", err)
			return
		}
	}
}

// noteSeq records seq as published by this bus.
func (b *Bus) noteSeq(seq uint64) {
	for {
		old := b.lastPub.Load()
		if seq <= old || b.lastPub.CompareAndSwap(old, seq) {
			return
		}
	}
}

func (b *Bus) inHandler(ctx context.Context) bool {
	v, _ := ctx.Value(inHandlerKey{}).(*Bus)
	return v == b
}

// Publish validates every event (ErrInvalidEvent, and nothing is published),
// fills ID, Time and Source, and publishes them in order, returning once the
// stream stored them all (or the first error: the events before it were
// stored). It waits for the stream, never for consumers. When the
// connection is down it fails at once; events whose acknowledgement was lost
// in a disconnection fail with an error (they may have been stored: publish
// them again, the event id de-duplicates). After Close it returns ErrClosed.
func (b *Bus) Publish(ctx context.Context, events ...eventbus.Event) error {
	b.mu.Lock()
	state := b.state
	b.mu.Unlock()
	if state == closed || state == closing && !b.inHandler(ctx) {
		return eventbus.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Validate and encode every event before publishing any; publish hooks
	// see only events that passed, and may add Meta (checked again).
	filled := make([]eventbus.Event, len(events))
	datas := make([][]byte, len(events))
	now := b.cfg.Now()
	for i := range events {
		e := events[i]
		eventbus.Fill(&e, b.cfg.Source, now)
		if err := validate(&e); err != nil { // eventbus.Validate and the wire's rules
			return err
		}
		data, err := payload(e.Data)
		if err != nil {
			return err
		}
		filled[i], datas[i] = e, data
	}
	msgs := make([]*nats.Msg, len(events))
	for i := range filled {
		e := &filled[i]
		if len(b.cfg.PublishHooks) > 0 {
			for _, h := range b.cfg.PublishHooks {
				h(ctx, e)
			}
			if err := validate(e); err != nil {
				return fmt.Errorf("natsbus: after a publish hook: %w", err)
			}
		}
		msgs[i] = encode(b.name+"."+e.Type, e, datas[i])
		b.notePublisher(e.Type, e.Source)
	}
	if st := b.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("natsbus: publish: the NATS connection is %s; nothing was published: %w", st, nats.ErrDisconnected)
	}
	taken := 0
	defer func() {
		for range taken {
			<-b.pubs
		}
	}()
	futs := make([]jetstream.PubAckFuture, 0, min(len(msgs), publishWindow))
	first := 0 // index in msgs of futs[0]
	wait := func(f jetstream.PubAckFuture, m *nats.Msg) error {
		select {
		case pa := <-f.Ok():
			b.noteSeq(pa.Sequence)
			return nil
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				b.recreateStreams(ctx)
			}
			return fmt.Errorf("natsbus: publish %s (id %s): %w", m.Subject, m.Header.Get(hdrID), err)
		case <-ctx.Done():
			return fmt.Errorf("natsbus: waiting for the stream to store %s (id %s): %w", m.Subject, m.Header.Get(hdrID), ctx.Err())
		}
	}
	for i, m := range msgs {
		if len(futs) == publishWindow {
			if err := wait(futs[0], msgs[first]); err != nil {
				return err
			}
			futs = futs[1:]
			first++
			<-b.pubs
			taken--
		}
		select {
		case b.pubs <- struct{}{}:
			taken++
		case <-ctx.Done():
			return fmt.Errorf("natsbus: waiting for room to publish %s (id %s): %w", m.Subject, m.Header.Get(hdrID), ctx.Err())
		}
		f, err := b.js.PublishMsgAsync(m)
		if err != nil {
			for j, f := range futs { // report the first failure in order
				if werr := wait(f, msgs[first+j]); werr != nil {
					return werr
				}
			}
			return fmt.Errorf("natsbus: publish %s (id %s): %w", m.Subject, m.Header.Get(hdrID), err)
		}
		if len(futs) == 0 {
			first = i
		}
		futs = append(futs, f)
	}
	for j, f := range futs {
		if err := wait(f, msgs[first+j]); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the bus. Publish and Subscribe from outside handlers return
// ErrClosed at once. Durable subscriptions stop fetching, handle and ack what
// this instance fetched, and leave the rest in the stream for their group.
// Plain subscriptions, whose consumers end with the bus, handle everything
// stored for them before Close began and what this bus's handlers publish
// meanwhile (not what other instances keep publishing). Then the
// ephemeral consumers are deleted and the connection flushed, so the server
// holds no pull request of this bus. If ctx ends first, handlers' contexts
// are cancelled and Close returns ctx's error; what was not acked is
// redelivered by the server. Calling Close again returns at once. The
// connection stays open: it is the caller's.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.state != open {
		b.mu.Unlock()
		return nil
	}
	b.state = closing
	close(b.closing)
	b.mu.Unlock()

	err := b.drain(ctx)
	subs := b.active()
	if err != nil {
		b.kill()
		for _, s := range subs {
			s.abort()
		}
	}
	b.mu.Lock()
	b.state = closed // from now on handlers still running (after a forced stop) cannot publish
	clear(b.subs)
	b.mu.Unlock()
	b.js.CleanupPublisher()
	if err == nil {
		// The acks and unsubscriptions reach the server before Close returns.
		if ferr := b.nc.FlushWithContext(ctx); ferr != nil && ctx.Err() != nil {
			err = ctx.Err()
		}
	}
	b.kill()
	if b.ownConn {
		b.nc.Close()
	}
	return err
}

// drain is Close's graceful part; it returns ctx's error if ctx ended first.
func (b *Bus) drain(ctx context.Context) error {
	var durable, plain []*subscription
	for _, s := range b.active() {
		if s.durable {
			durable = append(durable, s)
		} else {
			plain = append(plain, s)
		}
	}
	// Durable groups: stop fetching at once; what was fetched is handled.
	for _, s := range durable {
		s.end().cc.Drain()
	}
	for _, s := range durable {
		if err := s.waitConsumeClosed(ctx); err != nil {
			return err
		}
	}
	// Plain subscriptions: handle everything stored for them until now,
	// and what this bus's handlers publish meanwhile (the durable ones
	// finish what they hold, and may publish more); not what other
	// instances keep publishing.
	start, err := b.lastSeq(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("natsbus: Close: %w", err)
	}
	if err := b.waitIdle(ctx, func(ctx context.Context) (bool, string, error) {
		return b.drained(ctx, start, b.live(plain), append(b.retired(), durable...))
	}); err != nil {
		return err
	}
	for _, s := range plain {
		s.end().cc.Drain()
	}
	for _, s := range plain {
		if err := s.waitConsumeClosed(ctx); err != nil {
			return err
		}
	}
	for _, s := range append(durable, plain...) {
		if err := s.finish(ctx); err != nil {
			return err
		}
	}
	for _, s := range b.retired() {
		if err := s.wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// live returns those of subs that were not unsubscribed.
func (b *Bus) live(subs []*subscription) []*subscription {
	out := subs[:0:0]
	for _, s := range subs {
		if !s.isGone() {
			out = append(out, s)
		}
	}
	return out
}
