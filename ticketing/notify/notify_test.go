package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/gigbus/gigbus/ticketing"
	"github.com/gigbus/gigbus/ticketing/notify"
)

func TestLogWritesOneStructuredLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := notify.Log(slog.New(slog.NewJSONHandler(&buf, nil)))
	err := s.Send(context.Background(), ticketing.Notification{
		To: "ada@example.com", Subject: "Your ticket", ConcertID: "c1", TicketID: "t1", EventID: "e1",
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1: %s", len(lines), buf.Bytes())
	}
	var rec map[string]any
	if err := json.Unmarshal(lines[0], &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"to": "ada@example.com", "subject": "Your ticket", "concert_id": "c1", "ticket_id": "t1", "event_id": "e1"} {
		if got := rec[k]; got != want {
			t.Errorf("%s = %v, want %q", k, got, want)
		}
	}
}
