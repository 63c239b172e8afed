package ingest

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errUnknownDevice marks a device the Bindings do not know.
var errUnknownDevice = errors.New("unknown device")

// ErrUnknownDevice is what a Bindings implementation wraps for a device
// that is not registered.
var ErrUnknownDevice = errUnknownDevice

type bindingEntry struct {
	b     Binding
	err   error
	until time.Time
}

// bindingCache remembers device lookups for a short while: every message
// needs one, and they change rarely (a rebinding shows within the TTL).
type bindingCache struct {
	src Bindings
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]bindingEntry
}

func newBindingCache(src Bindings, ttl time.Duration) *bindingCache {
	return &bindingCache{src: src, ttl: ttl, m: map[string]bindingEntry{}}
}

func (c *bindingCache) get(ctx context.Context, deviceID string) (Binding, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[deviceID]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.b, e.err
	}
	b, err := c.src.DeviceBinding(ctx, deviceID)
	if err != nil && !errors.Is(err, ErrUnknownDevice) {
		return Binding{}, err // not cached: the database may be back soon
	}
	if err != nil {
		err = errUnknownDevice
	}
	c.mu.Lock()
	if len(c.m) > 100_000 {
		clear(c.m)
	}
	c.m[deviceID] = bindingEntry{b: b, err: err, until: now.Add(c.ttl)}
	c.mu.Unlock()
	return b, err
}
