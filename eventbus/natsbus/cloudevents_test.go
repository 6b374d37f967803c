package natsbus_test

import (
	"bytes"
	"context"
	"io"
	nethttp "net/http"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gigbus/gigbus/eventbus"
)

// TestCloudEventsSDKReadsOurEvents reads what natsbus stored with the
// official CloudEvents SDK: its binary-mode decoder (through the HTTP
// binding, which reads the same ce- headers and Content-Type) and its
// validation.
func TestCloudEventsSDKReadsOurEvents(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	nc := connect(t, serverURL(t))
	stream := newStream()
	b := newBusOn(t, nc, stream, eventbus.WithSource("/ticketing/concerts"))
	at := time.Date(2031, 3, 4, 5, 6, 7, 890000000, time.UTC)
	type added struct {
		Name    string   `json:"name"`
		Tickets int      `json:"tickets"`
		Tags    []string `json:"tags"`
	}
	if err := b.Publish(ctx, eventbus.Event{Type: "concerts.ConcertAdded", ID: "c-1", Subject: "concert-7", Time: at,
		Data: added{"Gig", 1000, []string{"rock"}},
		Meta: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "correlationid": "r-1"}}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, stream+".concerts.ConcertAdded")
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Nats-Msg-Id") != "c-1" {
		t.Errorf("Nats-Msg-Id = %q, want the event id", m.Header.Get("Nats-Msg-Id"))
	}

	e, err := binding.ToEvent(context.Background(), cehttp.NewMessage(toHTTPHeader(m.Header), io.NopCloser(bytes.NewReader(m.Data))))
	if err != nil {
		t.Fatalf("the CloudEvents SDK cannot decode our message: %v", err)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("the CloudEvents SDK finds the event invalid: %v", err)
	}
	if e.SpecVersion() != event.CloudEventsVersionV1 || e.ID() != "c-1" || e.Type() != "concerts.ConcertAdded" ||
		e.Source() != "/ticketing/concerts" || e.Subject() != "concert-7" || !e.Time().Equal(at) || e.DataContentType() != "application/json" {
		t.Errorf("decoded %s", e)
	}
	ext := e.Extensions()
	if ext["traceparent"] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || ext["correlationid"] != "r-1" {
		t.Errorf("extensions = %v", ext)
	}
	var got added
	if err := e.DataAs(&got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "Gig" || got.Tickets != 1000 || len(got.Tags) != 1 {
		t.Errorf("data = %+v", got)
	}
}

// toHTTPHeader carries NATS headers over to net/http, whose binding of the
// SDK reads ce- headers case-insensitively.
func toHTTPHeader(h nats.Header) nethttp.Header {
	out := nethttp.Header{}
	for k, vs := range h {
		for _, v := range vs {
			out.Add(k, v)
		}
	}
	return out
}
