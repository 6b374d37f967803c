package eventbus_test

import (
	"testing"

	"github.com/gigbus/gigbus/eventbus"
	"github.com/gigbus/gigbus/eventbus/eventbustest"
)

func TestConformance(t *testing.T) {
	eventbustest.Run(t, eventbustest.Features{Backpressure: true}, func(t *testing.T, opts ...eventbus.Option) eventbus.Bus {
		return eventbus.New(append([]eventbus.Option{eventbus.WithLogger(nil)}, opts...)...)
	})
}
