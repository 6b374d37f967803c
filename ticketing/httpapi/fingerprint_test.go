package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// TestIdempotencyKeyStoredBeforeTheUpgradeStillReplays: a key stored by
// the previous version, whose fingerprint is an unprefixed hash of the
// method, path and exact body, still replays an identical retry; another
// request with it is still 422. New keys get a "v2:" fingerprint.
func TestIdempotencyKeyStoredBeforeTheUpgradeStillReplays(t *testing.T) {
	t.Parallel()
	s := newStalled(t, 10*time.Millisecond)
	ctx := context.Background()
	path := "/api/concerts/" + s.concert.ID + "/tickets"
	scope := "purchase:" + s.concert.ID
	h := sha256.New()
	// The old client's exact bytes, not the canonical form (for which both
	// algorithms hash the same bytes).
	sent := "{\"customer_name\": \"John\", \"customer_email\": \"john@example.com\"}\n"
	h.Write([]byte("POST\x00" + path + "\x00" + sent))
	old := hex.EncodeToString(h.Sum(nil))
	if rec, err := s.store.Reserve(ctx, scope, "old", old); err != nil || rec != nil {
		t.Fatalf("reserve: %v %v", rec, err)
	}
	stored := `{"id":"t-old","status":"confirmed"}`
	if err := s.store.Complete(ctx, scope, "old", http.StatusCreated,
		map[string]string{"Content-Type": "application/json", "Location": "/api/tickets/t-old"}, []byte(stored)); err != nil {
		t.Fatal(err)
	}

	resp, body, err := post(t, ctx, s.url+path, sent, "Idempotency-Key", "old")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || string(body) != stored || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("identical retry of an old key: got %d %s, want the replayed 201 %s", resp.StatusCode, body, stored)
	}
	other := `{"customer_name":"Jane","customer_email":"jane@example.com"}`
	resp, body, err = post(t, ctx, s.url+path, other, "Idempotency-Key", "old")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "idempotency-key-reused") {
		t.Errorf("other request with an old key: got %d %s, want 422 idempotency-key-reused", resp.StatusCode, body)
	}

	if resp, body, err := post(t, ctx, s.url+path, buyer, "Idempotency-Key", "new"); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("new key: %v %s", err, body)
	}
	rec, err := s.store.Reserve(ctx, scope, "new", "probe")
	if err != nil || rec == nil || !strings.HasPrefix(rec.Fingerprint, "v2:") {
		t.Errorf("new key's record %+v (%v): want a v2: fingerprint", rec, err)
	}
}
