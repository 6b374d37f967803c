package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestIdempotencyKeyMatchesTheRequestNotItsBytes: the same purchase with its
// JSON keys in another order, other whitespace, escapes or spaces around
// the name is the same request; another buyer or concert is not.
func TestIdempotencyKeyMatchesTheRequestNotItsBytes(t *testing.T) {
	t.Parallel()
	s := newStalled(t, 10*time.Millisecond)
	url := s.url + "/api/concerts/" + s.concert.ID + "/tickets"
	ctx := context.Background()
	resp, body, err := post(t, ctx, url, buyer, "Idempotency-Key", "k")
	if err != nil {
		t.Fatal(err)
	}
	var first struct{ ID string }
	json.Unmarshal(body, &first)
	if resp.StatusCode != http.StatusAccepted || first.ID == "" {
		t.Fatalf("first purchase: got %d %s, want 202", resp.StatusCode, body)
	}
	for _, same := range []string{
		buyer,
		`{"customer_email":"john@example.com","customer_name":"John"}`,
		"{\n  \"customer_name\" : \"John\",\n  \"customer_email\" : \"john@example.com\"\n}\n",
		`{"customer_name":"\u004a\u006fhn","customer_email":"john\u0040example.com"}`,
		`{"customer_name":"  John ","customer_email":"john@example.com"}`,
	} {
		resp, body, err := post(t, ctx, url, same, "Idempotency-Key", "k")
		if err != nil {
			t.Fatal(err)
		}
		var again struct{ ID string }
		json.Unmarshal(body, &again)
		if resp.StatusCode != http.StatusAccepted || again.ID != first.ID || resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("same request %s: got %d %s, want the replayed 202 of %s", same, resp.StatusCode, body, first.ID)
		}
	}
	for _, other := range []string{
		`{"customer_name":"John","customer_email":"jane@example.com"}`,
		`{"customer_name":"Jane","customer_email":"john@example.com"}`,
		`{"customer_email":"john@example.com","customer_name":"john"}`,
	} {
		resp, body, err := post(t, ctx, url, other, "Idempotency-Key", "k")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "idempotency-key-reused") {
			t.Errorf("other request %s: got %d %s, want 422 idempotency-key-reused", other, resp.StatusCode, body)
		}
	}
}
