package natsbus

import "testing"

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		pattern, filter string
		want            bool
	}{
		{"S.>", "S.>", true},
		{">", "S.>", true},
		{"*.>", "S.>", true},
		{"S.*", "S.>", false},
		{"S.orders.>", "S.>", false},
		{"T.>", "S.>", false},
		{"S", "S.>", false},
		{"S.>", "S.a.b", true},
		{"S.*", "S.a", true},
	} {
		if got := covers(tc.pattern, tc.filter); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.pattern, tc.filter, got, tc.want)
		}
	}
}

func TestConsumerName(t *testing.T) {
	seen := map[string]string{}
	for _, tc := range [][2]string{
		{"workers", "G"}, {"workers", "H"}, {"workers", "*"}, {"workers", "all"},
		{"a.b", "T"}, {"a_b", "T"}, {"x", "orders.Placed"}, {"x", "orders_Placed"},
		{"with space", "T"}, {"ticket-service", "TicketPurchased"},
	} {
		n := consumerName(tc[0], tc[1])
		if prev, ok := seen[n]; ok {
			t.Errorf("consumerName(%q, %q) = %q, the same as for %s", tc[0], tc[1], n, prev)
		}
		seen[n] = tc[0] + "/" + tc[1]
		if validType(n) != nil || len(n) > 80 {
			t.Errorf("consumerName(%q, %q) = %q, not a valid consumer name", tc[0], tc[1], n)
		}
	}
	if got := consumerName("workers", "G"); got != "workers_G" {
		t.Errorf("consumerName(workers, G) = %q, want the readable workers_G", got)
	}
}
