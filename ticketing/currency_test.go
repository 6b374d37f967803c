package ticketing

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCurrencyList(t *testing.T) {
	t.Parallel()
	// List One has 180 or so codes; every one is three upper-case letters.
	if n := len(isoCurrencies); n < 170 || n > 190 {
		t.Errorf("got %d codes, want the ISO 4217 list (about 180)", n)
	}
	for code := range isoCurrencies {
		if currencyProblem(code) != "" {
			t.Errorf("listed code %q is rejected: %s", code, currencyProblem(code))
		}
	}
}

func TestValidateCurrency(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in, want string // want: the stored code, or "" when invalid
		msg      string // part of the field message when invalid
	}{
		{"EUR", "EUR", ""},
		{"eur", "EUR", ""}, // codes are upper-cased
		{" usd ", "USD", ""},
		{"Jpy", "JPY", ""},
		{"CHF", "CHF", ""},
		{"XCG", "XCG", ""}, // Caribbean guilder, added 2024
		{"ZWG", "ZWG", ""}, // Zimbabwe Gold, added 2024
		{"XYZ", "", "XYZ is not one"},
		{"xyz", "", "XYZ is not one"},
		{"ABC", "", "active ISO 4217"},
		{"HRK", "", "active ISO 4217"}, // kuna, withdrawn 2023
		{"DEM", "", "active ISO 4217"}, // mark, long gone
		{"EU", "", "3-letter"},
		{"EURO", "", "3-letter"},
		{"E1R", "", "3-letter"},
		{"", "", "3-letter"},
		{"ÉUR", "", "3-letter"},
	}
	for _, tt := range tests {
		c := NewConcert{Name: "N", Venue: "V", Date: now.Add(time.Hour), TotalTickets: 1, Currency: tt.in}
		got, err := c.Validate(now)
		if tt.want != "" {
			if err != nil || got.Currency != tt.want {
				t.Errorf("Validate(currency %q) = %q, %v; want %q, nil", tt.in, got.Currency, err, tt.want)
			}
			continue
		}
		e, ok := errors.AsType[*Error](err)
		if !ok || len(e.Fields) != 1 || e.Fields[0].Field != "currency" || !strings.Contains(e.Fields[0].Message, tt.msg) {
			t.Errorf("Validate(currency %q): got %v, want one currency error mentioning %q", tt.in, err, tt.msg)
		}
	}
}
