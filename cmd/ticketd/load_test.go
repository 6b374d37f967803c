package main

import (
	"strings"
	"testing"
)

func TestCheckLoadFindsViolations(t *testing.T) {
	t.Parallel()
	cfg := loadConfig{requests: 100, seats: 50}
	tests := []struct {
		name string
		res  loadResult
		want string // "" = no violation
	}{
		{"sold out exactly", loadResult{confirmed: 50, rejected: 50, total: 50, available: 0}, ""},
		{"oversold", loadResult{confirmed: 51, rejected: 49, total: 50, available: -1}, "OVERSOLD"},
		{"server sold more than confirmed", loadResult{confirmed: 49, rejected: 51, total: 50, available: 0}, "count mismatch"},
		{"false refusal", loadResult{confirmed: 49, rejected: 51, total: 50, available: 1}, "false refusals"},
		{"failed requests", loadResult{confirmed: 50, rejected: 49, failed: 1, serverErrors: 1, total: 50, available: 0, firstFailureDetail: "500"}, "1 requests failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkLoad(cfg, &tt.res)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want no violation", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
