// Package notify holds ticketing.Sender implementations. Log is the default;
// SMTP and webhook senders belong here too.
package notify

import (
	"context"
	"log/slog"

	"github.com/gigbus/gigbus/ticketing"
)

var _ ticketing.Sender = (*LogSender)(nil)

// LogSender "sends" a notification by writing one structured log line.
type LogSender struct{ l *slog.Logger }

// Log returns a sender writing one INFO line per notification to l
// (slog.Default() when nil), with its recipient, subject, concert, ticket
// and event id as attributes.
func Log(l *slog.Logger) *LogSender {
	if l == nil {
		l = slog.Default()
	}
	return &LogSender{l: l}
}

// Send logs n. It never fails.
func (s *LogSender) Send(ctx context.Context, n ticketing.Notification) error {
	to := n.To
	if to == "" {
		to = "all subscribers"
	}
	attrs := []slog.Attr{
		slog.String("to", to),
		slog.String("subject", n.Subject),
		slog.String("concert_id", n.ConcertID),
	}
	if n.TicketID != "" {
		attrs = append(attrs, slog.String("ticket_id", n.TicketID))
	}
	attrs = append(attrs, slog.String("event_id", n.EventID), slog.String("body", n.Body))
	s.l.LogAttrs(ctx, slog.LevelInfo, "notification sent", attrs...)
	return nil
}
