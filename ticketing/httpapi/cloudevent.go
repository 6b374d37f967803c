package httpapi

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/ticketing"
)

// cloudEvent is an event in CloudEvents 1.0 JSON (structured mode).
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Source          string          `json:"source"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// encodeCloudEvents renders e twice: in full, and for the public stream,
// whose data keeps no personal details (see publicData).
func encodeCloudEvents(e eventbus.Event) (full, public []byte, err error) {
	data, err := eventData(e.Data)
	if err != nil {
		return nil, nil, err
	}
	ce := newCloudEvent(e, data)
	if full, err = json.Marshal(ce); err != nil {
		return nil, nil, err
	}
	ce.Data = publicData(e.Type, data)
	if public, err = json.Marshal(ce); err != nil {
		return nil, nil, err
	}
	return full, public, nil
}

// newCloudEvent is e, with data as its JSON data, in CloudEvents 1.0 JSON form.
func newCloudEvent(e eventbus.Event, data json.RawMessage) cloudEvent {
	return cloudEvent{
		SpecVersion:     "1.0",
		ID:              e.ID,
		Type:            e.Type,
		Source:          e.Source,
		Subject:         e.Subject,
		Time:            e.Time.UTC().Format(time.RFC3339Nano),
		DataContentType: "application/json",
		Data:            data,
	}
}

func eventData(v any) (json.RawMessage, error) {
	switch d := v.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case json.RawMessage:
		if json.Valid(d) {
			return d, nil
		}
	case []byte:
		if json.Valid(d) {
			return d, nil
		}
	}
	return json.Marshal(v)
}

// ticketStatus is the status a ticket event tells the public stream.
var ticketStatus = map[string]ticketing.TicketStatus{
	ticketing.EventTicketRequested: ticketing.StatusPending,
	ticketing.EventTicketPurchased: ticketing.StatusConfirmed,
	ticketing.EventTicketRejected:  ticketing.StatusRejected,
	ticketing.EventTicketCancelled: ticketing.StatusCancelled,
}

// publicData is what anyone may see of an event's data. ConcertAdded is
// public as it is. Of every other event (ticket events above all, which name
// their buyer) only ids, the rejection reason and the seats left are kept,
// plus, for ticket events, the status the ticket moves to. The filter keeps
// known-safe keys rather than dropping known-personal ones, so a field added
// to an event later stays private until it is listed here.
func publicData(eventType string, data json.RawMessage) json.RawMessage {
	if eventType == ticketing.EventConcertAdded {
		return data
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return json.RawMessage("{}")
	}
	out := make(map[string]json.RawMessage, 4)
	for k, v := range m {
		if strings.HasSuffix(k, "_id") || k == "reason" || k == "available_tickets" || k == "status" {
			out[k] = v
		}
	}
	if st, ok := ticketStatus[eventType]; ok {
		out["status"], _ = json.Marshal(st)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}
