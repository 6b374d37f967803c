// Package natsbench compares gigbus's NATS JetStream transport
// (eventbus/natsbus) with raw nats.go JetStream, in the same run and on the
// same server: an embedded nats-server started in-process with JetStream on a
// temporary store, listening on a loopback port, so that both connect over
// TCP the same way.
//
// It lives in the separate bench module so that the gigbus module never
// depends on what it is compared with. The benchmarks are in
// natsbench_test.go:
//
//	go test -run '^$' -bench . -benchtime 50000x -count 3 ./natsbench
//
// A fixed -benchtime gives raw and natsbus the same number of events per op
// comparison.
package natsbench

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gigbus/gigbus/eventbus"
)

// EventType is the type of every benchmark event; on the wire its subject
// is "<stream>.Bench".
const EventType = "Bench"

// Payload is the body of every benchmark event, JSON on the wire.
type Payload struct {
	N    int    `json:"n"`
	Name string `json:"name"`
}

// Events returns n events as the natsbus side publishes them: type Bench,
// one of 16 subjects, a Payload; the bus fills in ID, Source and Time.
func Events(n int) []eventbus.Event {
	events := make([]eventbus.Event, n)
	for i := range events {
		events[i] = eventbus.Event{Type: EventType, Subject: fmt.Sprint(i % 16), Data: Payload{i, "concert"}}
	}
	return events
}

// RawMsg builds the message natsbus would publish for the i-th event on
// stream: the CloudEvents binary-mode ce- headers, Content-Type, the JSON
// payload and a Nats-Msg-Id (the event id, a fresh UUIDv7), so that raw pays
// for the same de-duplication as natsbus.
func RawMsg(stream string, i int) *nats.Msg {
	id := uuid.Must(uuid.NewV7()).String()
	data, _ := json.Marshal(Payload{i, "concert"})
	h := nats.Header{}
	h["ce-specversion"] = []string{"1.0"}
	h["ce-id"] = []string{id}
	h["ce-type"] = []string{EventType}
	h["ce-source"] = []string{"eventbus"}
	h["ce-time"] = []string{time.Now().Format(time.RFC3339Nano)}
	h["ce-subject"] = []string{fmt.Sprint(i % 16)}
	h["Content-Type"] = []string{"application/json"}
	h["Nats-Msg-Id"] = []string{id}
	return &nats.Msg{Subject: stream + "." + EventType, Header: h, Data: data}
}

// StartServer starts a nats-server in this process with JetStream storing
// in dir, listening on a free loopback port; its ClientURL is the address to
// connect to. Stop it with Shutdown and WaitForShutdown.
func StartServer(dir string) (*server.Server, error) {
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true,
	})
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("natsbench: nats-server not ready after 10s")
	}
	return s, nil
}
