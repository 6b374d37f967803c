package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gigbus/gigbus/ticketing/httpapi"
)

// TestOversizedBodyIs413Everywhere: every request with a body over 1 MiB is
// a 413 problem, on every route (also those that never read a body, unknown
// routes and wrong methods), whether the body declares its length or is
// chunked.
func TestOversizedBodyIs413Everywhere(t *testing.T) {
	t.Parallel()
	api, _, c := fullAPI(t, httpapi.Config{})
	huge := bytes.Repeat([]byte("x"), 2<<20)
	routes := []struct{ method, path, token string }{
		{"GET", "/healthz", ""},
		{"GET", "/metrics", ""},
		{"GET", "/", ""},
		{"GET", "/static/common.js", ""},
		{"GET", "/api/events", ""},
		{"GET", "/api/events", "admin"},
		{"GET", "/api/concerts", ""},
		{"GET", "/api/concerts/" + c.ID, ""},
		{"GET", "/api/tickets/nope", ""},
		{"POST", "/api/concerts", "admin"},
		{"POST", "/api/concerts", ""},      // 401 without the body limit
		{"POST", "/api/concerts", "wrong"}, // likewise
		{"POST", "/api/concerts/" + c.ID + "/tickets", ""},
		{"POST", "/api/tickets/nope/cancel", ""},
		{"GET", "/no/such/route", ""},  // 404 without the body limit
		{"DELETE", "/healthz", ""},     // 405 without the body limit
		{"PUT", "/api/concerts/x", ""}, // likewise
	}
	for _, rt := range routes {
		for _, chunked := range []bool{false, true} {
			name := fmt.Sprintf("%s %s token=%q chunked=%v", rt.method, rt.path, rt.token, chunked)
			r := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(huge))
			if chunked {
				// As the server sees a chunked request: no length.
				r.ContentLength = -1
				r.TransferEncoding = []string{"chunked"}
			}
			if rt.token != "" {
				r.Header.Set("Authorization", "Bearer "+rt.token)
			}
			w := httptest.NewRecorder()
			api.ServeHTTP(w, r)
			var p struct {
				Type   string
				Status int
			}
			json.Unmarshal(w.Body.Bytes(), &p)
			if w.Code != http.StatusRequestEntityTooLarge || w.Header().Get("Content-Type") != "application/problem+json" ||
				p.Status != 413 || p.Type != httpapi.ProblemTooLarge {
				t.Errorf("%s: got %d %s %.200s, want a 413 problem", name, w.Code, w.Header().Get("Content-Type"), w.Body)
			}
		}
	}
}

// TestChunkedBodyLimitOverTheNetwork sends real chunked requests. It
// writes them on a raw connection while reading the answer: the server
// answers 413 without reading the whole body and then closes, so a client
// that insists on writing it all (as net/http's does) may see a reset
// instead of the answer.
func TestChunkedBodyLimitOverTheNetwork(t *testing.T) {
	t.Parallel()
	api, _, _ := fullAPI(t, httpapi.Config{})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		size int
		want int
	}{
		{2 << 20, http.StatusRequestEntityTooLarge},
		{httpapi.MaxBodyBytes + 1, http.StatusRequestEntityTooLarge},
		{httpapi.MaxBodyBytes, http.StatusOK}, // at the limit is fine
		{10, http.StatusOK},
	} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			w := bufio.NewWriter(conn)
			fmt.Fprintf(w, "GET /healthz HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for left := tt.size; left > 0; left -= len(chunk) {
				n := min(left, len(chunk))
				fmt.Fprintf(w, "%x\r\n%s\r\n", n, chunk[:n])
			}
			fmt.Fprintf(w, "0\r\n\r\n")
			w.Flush() // an error is expected when the server stops reading
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%d bytes chunked: %v", tt.size, err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET /healthz with %d bytes chunked: got %d, want %d", tt.size, resp.StatusCode, tt.want)
		}
	}
}
