package httpapi

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// isAdmin reports whether token is the admin token, in constant time.
func (s *Server) isAdmin(token string) bool {
	if s.cfg.AdminToken == "" || token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) == 1
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header, and whether the header was present at all.
func bearerToken(r *http.Request) (token string, present bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(token), true
}

// requireAdmin answers 401 unless the request carries the admin token.
func (s *Server) requireAdmin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, present := bearerToken(r)
		if !s.isAdmin(token) {
			// Read the body first, as the handler would have: one over
			// the limit is a 413 whoever sends it.
			if !drainBody(w, r) {
				return
			}
			detail := "this endpoint needs the admin token: Authorization: Bearer <token>"
			if present {
				detail = "the admin token is wrong"
			}
			unauthorized(w, detail)
			return
		}
		next(w, r)
	}
}

func unauthorized(w http.ResponseWriter, detail string) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeProblem(w, newProblem(http.StatusUnauthorized, ProblemUnauthorized, "Unauthorized", detail))
}
