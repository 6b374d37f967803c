package natsbus

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gigbus/gigbus/eventbus"
)

// The wire format is CloudEvents 1.0 in NATS binary mode: the attributes are
// "ce-" headers, the payload is the JSON of Data. Header values are written as
// they are (no percent-encoding), as the CloudEvents SDK for Go does.
const (
	hdrID          = "ce-id"
	hdrType        = "ce-type"
	hdrSource      = "ce-source"
	hdrSubject     = "ce-subject"
	hdrTime        = "ce-time"
	hdrSpecVersion = "ce-specversion"
	hdrPrefix      = "ce-"
	hdrContentType = "Content-Type"
	hdrMsgID       = "Nats-Msg-Id"

	specVersion = "1.0"
	contentJSON = "application/json"
)

// Headers a dead letter carries besides the original ones.
const (
	HeaderSubscription = "Natsbus-Subscription" // the subscription's Durable or generated name
	HeaderConsumer     = "Natsbus-Consumer"     // the JetStream consumer that gave up
	HeaderError        = "Natsbus-Error"        // the last attempt's error
	HeaderAttempts     = "Natsbus-Attempts"     // attempts made, the first included
	HeaderStreamSeq    = "Natsbus-Stream-Seq"   // the event's sequence in the event stream
	HeaderDeadTime     = "Natsbus-Dead-Time"    // when it was dead-lettered (RFC 3339)
)

// reservedMeta are CloudEvents attribute names a Meta key must not take.
var reservedMeta = map[string]bool{
	"id": true, "type": true, "source": true, "subject": true, "time": true,
	"specversion": true, "datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
}

// validType reports whether t is one or more NATS subject tokens of
// [A-Za-z0-9_-] separated by dots.
func validType(t string) error {
	if t == "" {
		return fmt.Errorf("%w: empty type", eventbus.ErrInvalidEvent)
	}
	for tok := range strings.SplitSeq(t, ".") {
		if tok == "" {
			return fmt.Errorf("%w: type %q: NATS subject tokens separated by '.' must not be empty", eventbus.ErrInvalidEvent, t)
		}
		for _, r := range tok {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return fmt.Errorf("%w: type %q: natsbus types may hold only A-Z, a-z, 0-9, '_', '-' and '.' between tokens (found %q)", eventbus.ErrInvalidEvent, t, r)
			}
		}
	}
	return nil
}

func hasCRLF(s string) bool { return strings.ContainsAny(s, "\r\n") }

// validate checks what the wire needs beyond eventbus.Validate: the type as
// NATS tokens, header-safe attributes and CloudEvents extension names.
func validate(e *eventbus.Event) error {
	if err := eventbus.Validate(*e); err != nil {
		return err
	}
	if err := validType(e.Type); err != nil {
		return err
	}
	if hasCRLF(e.ID) || hasCRLF(e.Source) || hasCRLF(e.Subject) {
		return fmt.Errorf("%w: ID, Source and Subject must not contain CR or LF", eventbus.ErrInvalidEvent)
	}
	for k, v := range e.Meta {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
			return fmt.Errorf("%w: Meta key %q: CloudEvents extension names are lowercase a-z and 0-9", eventbus.ErrInvalidEvent, k)
		}
		if reservedMeta[k] {
			return fmt.Errorf("%w: Meta key %q is a CloudEvents attribute", eventbus.ErrInvalidEvent, k)
		}
		if hasCRLF(v) {
			return fmt.Errorf("%w: Meta[%q] contains CR or LF", eventbus.ErrInvalidEvent, k)
		}
	}
	return nil
}

// payload returns the JSON of Data: []byte and json.RawMessage as they are
// (they must be valid JSON), anything else through json.Marshal; nil Data is
// an empty payload.
func payload(data any) ([]byte, error) {
	switch d := data.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, fmt.Errorf("%w: Data is a json.RawMessage that is not valid JSON", eventbus.ErrInvalidEvent)
		}
		return d, nil
	case []byte:
		if !json.Valid(d) {
			return nil, fmt.Errorf("%w: Data is a []byte that is not valid JSON", eventbus.ErrInvalidEvent)
		}
		return d, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: Data does not marshal to JSON: %v", eventbus.ErrInvalidEvent, err)
	}
	return b, nil
}

// encode returns e as a message on subject, in CloudEvents binary mode, with
// data (see payload) as its payload and the event id as the de-duplication id.
func encode(subject string, e *eventbus.Event, data []byte) *nats.Msg {
	h := make(nats.Header, 8+len(e.Meta))
	h[hdrSpecVersion] = []string{specVersion}
	h[hdrID] = []string{e.ID}
	h[hdrType] = []string{e.Type}
	h[hdrSource] = []string{e.Source}
	h[hdrTime] = []string{e.Time.Format(time.RFC3339Nano)}
	if e.Subject != "" {
		h[hdrSubject] = []string{e.Subject}
	}
	if data != nil {
		h[hdrContentType] = []string{contentJSON}
	}
	for k, v := range e.Meta {
		h[hdrPrefix+k] = []string{v}
	}
	h[hdrMsgID] = []string{msgID(*e)}
	return &nats.Msg{Subject: subject, Header: h, Data: data}
}

// decode reads an event back from a message's headers and payload. Data is
// the payload as a json.RawMessage (nil when empty).
func decode(h nats.Header, data []byte) (eventbus.Event, error) {
	e := eventbus.Event{
		ID:      h.Get(hdrID),
		Type:    h.Get(hdrType),
		Source:  h.Get(hdrSource),
		Subject: h.Get(hdrSubject),
	}
	if len(data) > 0 {
		e.Data = json.RawMessage(data)
	}
	if v := h.Get(hdrSpecVersion); v != specVersion {
		return e, fmt.Errorf("natsbus: not a CloudEvent in binary mode (ce-specversion %q)", v)
	}
	if e.ID == "" || e.Type == "" {
		return e, fmt.Errorf("natsbus: CloudEvent without ce-id or ce-type")
	}
	if v := h.Get(hdrTime); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return e, fmt.Errorf("natsbus: bad ce-time %q: %w", v, err)
		}
		e.Time = t
	}
	for k, vs := range h {
		if len(vs) == 0 || !strings.HasPrefix(k, hdrPrefix) {
			continue
		}
		if reservedMeta[k[len(hdrPrefix):]] { // attributes, or ones we do not map (ce-datacontenttype)
			continue
		}
		if e.Meta == nil {
			e.Meta = make(map[string]string)
		}
		e.Meta[k[len(hdrPrefix):]] = vs[0]
	}
	return e, nil
}

// msgID is the event's de-duplication key in the stream: its ID, plus the
// redelivery count of a deliberate redelivery (eventbus.MetaRedelivery), which
// the stream must store again rather than drop as a duplicate.
func msgID(e eventbus.Event) string {
	if n := e.Meta[eventbus.MetaRedelivery]; n != "" {
		return e.ID + "/redelivery/" + n
	}
	return e.ID
}
