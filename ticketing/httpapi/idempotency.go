package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gigbus/gigbus/ticketing"
)

// MaxIdempotencyKeyLen bounds the Idempotency-Key header.
const MaxIdempotencyKeyLen = 255

// idempotencyKey reads the Idempotency-Key header. use is false when the
// request has none (or the server keeps no keys); ok is false when the key
// is malformed and the request has been answered 400.
//
// The key is taken as sent: a Structured-Field string's quotes, if the
// client sends them, are part of it.
func (s *Server) idempotencyKey(w http.ResponseWriter, r *http.Request) (key string, use, ok bool) {
	vals := r.Header.Values("Idempotency-Key")
	if len(vals) == 0 || s.cfg.Idempotency == nil {
		return "", false, true
	}
	key = vals[0]
	bad := ""
	switch {
	case len(vals) > 1:
		bad = "send one Idempotency-Key header, not several"
	case key == "":
		bad = "the Idempotency-Key header is empty"
	case len(key) > MaxIdempotencyKeyLen:
		bad = "the Idempotency-Key is longer than 255 characters"
	default:
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				bad = "the Idempotency-Key must be printable ASCII"
				break
			}
		}
	}
	if bad != "" {
		writeProblem(w, newProblem(http.StatusBadRequest, ProblemMalformed, "Malformed request", bad))
		return "", false, false
	}
	return key, true, true
}

// fingerprintV2 prefixes the fingerprints stored since they hash the
// normalised request. Keys are kept 24 hours, so a store may still hold
// fingerprints of the previous version, which have no prefix: see
// sameRequest.
const fingerprintV2 = "v2:"

// fingerprint identifies a request for its Idempotency-Key: "v2:" and a
// hash of its method, the resource it acts on and its decoded, normalised
// body (req, re-marshalled: a struct, so its fields come in one fixed
// order). The same request sent with its JSON keys in another order, other
// whitespace or other escapes has the same fingerprint.
func fingerprint(method, resource string, req any) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	return fingerprintV2 + hashRequest(method, resource, body), nil
}

// legacyFingerprint is the fingerprint of the previous version, without a
// version prefix: a hash of the method, path and exact body bytes.
func legacyFingerprint(r *http.Request, body []byte) string {
	return hashRequest(r.Method, r.URL.Path, body)
}

func hashRequest(method, resource string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write([]byte(resource))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// sameRequest reports whether stored, the fingerprint kept with a key, is
// that of the request r with the raw body and the fingerprint fp. A stored
// fingerprint without a version prefix was stored by the previous version:
// it is compared with the previous algorithm's fingerprint of r, so an
// identical retry across an upgrade still replays.
func sameRequest(stored, fp string, r *http.Request, body []byte) bool {
	if !strings.Contains(stored, ":") {
		return stored == legacyFingerprint(r, body)
	}
	return stored == fp
}

// purchaseFingerprint is the fingerprint of a purchase of a ticket for
// concertID by the validated (trimmed) buyer nt.
func purchaseFingerprint(concertID string, nt ticketing.NewTicket) (string, error) {
	return fingerprint(http.MethodPost, "/api/concerts/"+concertID+"/tickets",
		newTicketJSON{CustomerName: nt.CustomerName, CustomerEmail: nt.CustomerEmail})
}
