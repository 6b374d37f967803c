package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestServeOnNATS runs ticketd on JetStream (an embedded NATS server)
// instead of the in-memory bus: the same saga, the same answers.
func TestServeOnNATS(t *testing.T) {
	t.Parallel()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	s := startTestServer(t, "-nats", ns.ClientURL(), "-purchase-wait", "30s")
	events := openStream(t, s.URL+"/api/events")
	c := s.addConcert(t, 1)
	r := s.buy(t, c.ID, "John", "john@example.com")
	if r.Status != http.StatusCreated {
		t.Fatalf("purchase on NATS: got %d %s, want 201", r.Status, r.Body)
	}
	if r := s.buy(t, c.ID, "Jane", "jane@example.com"); r.Status != http.StatusConflict {
		t.Fatalf("second purchase of one seat: got %d %s, want 409", r.Status, r.Body)
	}
	events.next(t, "TicketPurchased")
	if err := s.Stop(); err != nil {
		t.Fatalf("shutdown on NATS: %v", err)
	}
}
