package broker

import (
	"context"
	"errors"
	"testing"
)

func TestPingIsTrueOnlyWhileTheBrokerListens(t *testing.T) {
	ctx := context.Background()
	b, err := New(Config{Listen: "127.0.0.1:0"}, &registry{}, make(held, 1), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx); !errors.Is(err, ErrNotListening) {
		t.Errorf("before Run: Ping = %v, want ErrNotListening", err)
	}
	r := startBroker(t, make(held, 1), Config{})
	if err := r.Ping(ctx); err != nil {
		t.Errorf("listening: Ping = %v", err)
	}
	r.stop()
	if err := r.Ping(ctx); !errors.Is(err, ErrNotListening) {
		t.Errorf("stopped: Ping = %v, want ErrNotListening", err)
	}
}
