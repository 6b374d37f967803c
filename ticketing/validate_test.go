package ticketing_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gigbus/gigbus/ticketing"
)

var now = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

func fields(err error) []string {
	var e *ticketing.Error
	if !errors.As(err, &e) {
		return nil
	}
	var out []string
	for _, f := range e.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestNewConcertValidate(t *testing.T) {
	t.Parallel()
	valid := ticketing.NewConcert{Name: "Rock Festival", Venue: "Central Park", Date: now.Add(time.Hour), TotalTickets: 1000, TicketPriceCents: 9999, Currency: "EUR"}
	tests := []struct {
		name   string
		change func(*ticketing.NewConcert)
		want   []string // invalid fields; nil = valid
	}{
		{"valid", func(*ticketing.NewConcert) {}, nil},
		{"200 runes is the limit", func(c *ticketing.NewConcert) { c.Name = strings.Repeat("é", 200) }, nil},
		{"201 runes", func(c *ticketing.NewConcert) { c.Name = strings.Repeat("é", 201) }, []string{"name"}},
		{"blank name", func(c *ticketing.NewConcert) { c.Name = "   " }, []string{"name"}},
		{"control character", func(c *ticketing.NewConcert) { c.Venue = "a\x00b" }, []string{"venue"}},
		{"invalid UTF-8", func(c *ticketing.NewConcert) { c.Venue = "a\xffb" }, []string{"venue"}},
		{"date now is not future", func(c *ticketing.NewConcert) { c.Date = now }, []string{"date"}},
		{"no date", func(c *ticketing.NewConcert) { c.Date = time.Time{} }, []string{"date"}},
		{"zero seats", func(c *ticketing.NewConcert) { c.TotalTickets = 0 }, nil},
		{"a million seats", func(c *ticketing.NewConcert) { c.TotalTickets = 1_000_000 }, nil},
		{"too many seats", func(c *ticketing.NewConcert) { c.TotalTickets = 1_000_001 }, []string{"total_tickets"}},
		{"negative seats", func(c *ticketing.NewConcert) { c.TotalTickets = -1 }, []string{"total_tickets"}},
		{"free", func(c *ticketing.NewConcert) { c.TicketPriceCents = 0 }, nil},
		{"negative price", func(c *ticketing.NewConcert) { c.TicketPriceCents = -1 }, []string{"ticket_price_cents"}},
		{"lower-case currency", func(c *ticketing.NewConcert) { c.Currency = "usd" }, nil},
		{"2-letter currency", func(c *ticketing.NewConcert) { c.Currency = "EU" }, []string{"currency"}},
		{"digits in currency", func(c *ticketing.NewConcert) { c.Currency = "E1R" }, []string{"currency"}},
		{"everything wrong", func(c *ticketing.NewConcert) { *c = ticketing.NewConcert{TotalTickets: -5, TicketPriceCents: -5} },
			[]string{"name", "venue", "date", "total_tickets", "ticket_price_cents", "currency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.change(&c)
			got, err := c.Validate(now)
			if f := fields(err); !slices.Equal(f, tt.want) {
				t.Fatalf("invalid fields = %v (err %v), want %v", f, err, tt.want)
			}
			if err != nil {
				if code := ticketing.ErrorCode(err); code != ticketing.EINVALID {
					t.Fatalf("ErrorCode = %q, want EINVALID", code)
				}
				return
			}
			if got.Name != strings.TrimSpace(c.Name) || got.Currency != strings.ToUpper(c.Currency) || got.Date.Location() != time.UTC {
				t.Fatalf("normalised = %+v", got)
			}
		})
	}
}

func TestNewTicketValidate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com" // 254 bytes
	tests := []struct {
		name, customer, email string
		want                  []string
	}{
		{"valid", "Ada", "ada@example.com", nil},
		{"trimmed name", "  Ada  ", "ada@example.com", nil},
		{"254-byte email", "Ada", long, nil},
		{"255-byte email", "Ada", "x" + long, []string{"customer_email"}},
		{"display name form", "Ada", "Ada <ada@example.com>", []string{"customer_email"}},
		{"angle brackets", "Ada", "<ada@example.com>", []string{"customer_email"}},
		{"surrounding space", "Ada", " ada@example.com", []string{"customer_email"}},
		{"no domain", "Ada", "ada", []string{"customer_email"}},
		{"empty", "", "", []string{"customer_name", "customer_email"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ticketing.NewTicket{CustomerName: tt.customer, CustomerEmail: tt.email}.Validate()
			if f := fields(err); !slices.Equal(f, tt.want) {
				t.Fatalf("invalid fields = %v (err %v), want %v", f, err, tt.want)
			}
			if err == nil && got.CustomerName != strings.TrimSpace(tt.customer) {
				t.Fatalf("name = %q, want trimmed", got.CustomerName)
			}
		})
	}
}

func TestErrorCode(t *testing.T) {
	t.Parallel()
	notFound := ticketing.Errorf(ticketing.ENOTFOUND, "ticket %q not found", "x")
	for _, tt := range []struct {
		err       error
		code, msg string
	}{
		{nil, "", ""},
		{notFound, ticketing.ENOTFOUND, `ticket "x" not found`},
		{fmt.Errorf("wrapped: %w", notFound), ticketing.ENOTFOUND, `ticket "x" not found`},
		{errors.New("disk on fire"), ticketing.EINTERNAL, "internal error"},
	} {
		if got := ticketing.ErrorCode(tt.err); got != tt.code {
			t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.code)
		}
		if got := ticketing.ErrorMessage(tt.err); got != tt.msg {
			t.Errorf("ErrorMessage(%v) = %q, want %q", tt.err, got, tt.msg)
		}
	}
}

func TestFormatPrice(t *testing.T) {
	t.Parallel()
	for cents, want := range map[int64]string{0: "0.00 EUR", 5: "0.05 EUR", 9999: "99.99 EUR", 100000: "1000.00 EUR", -150: "-1.50 EUR"} {
		if got := ticketing.FormatPrice(cents, "EUR"); got != want {
			t.Errorf("FormatPrice(%d) = %q, want %q", cents, got, want)
		}
	}
}
