package goid_test

import (
	"testing"

	"github.com/gigbus/gigbus/eventbus/internal/goid"
)

func TestGetTellsGoroutinesApart(t *testing.T) {
	t.Parallel()
	here := goid.Get()
	if here == 0 || goid.Get() != here {
		t.Fatalf("Get() = %d, then %d: want one stable non-zero id", here, goid.Get())
	}
	other := make(chan uint64)
	go func() { other <- goid.Get() }()
	if id := <-other; id == 0 || id == here {
		t.Errorf("another goroutine's id = %d, this one's = %d: want two different non-zero ids", id, here)
	}
}
