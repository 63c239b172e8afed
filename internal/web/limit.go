package web

import (
	"sync"
	"time"
)

// limitMaxKeys bounds the client addresses the sign-in limiter remembers.
const limitMaxKeys = 100_000

// limitStore is the sign-in limiter's fiber.Storage: a map whose entries
// expire when read, with no goroutine of its own (Fiber's default memory
// storage starts a collector that nobody can stop). Past maxKeys clients
// it drops expired counts, then all of them: a flood of addresses costs
// each a fresh window, never unbounded memory. Per-account lockout
// (internal/auth) still holds then.
type limitStore struct {
	mu      sync.Mutex
	entries map[string]limitEntry
	maxKeys int
}

type limitEntry struct {
	val []byte
	exp time.Time // zero: no expiry
}

func newLimitStore(maxKeys int) *limitStore {
	return &limitStore{entries: map[string]limitEntry{}, maxKeys: maxKeys}
}

// Get implements fiber.Storage.
func (m *limitStore) Get(key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok {
		return nil, nil
	}
	if !e.exp.IsZero() && !time.Now().Before(e.exp) {
		delete(m.entries, key)
		return nil, nil
	}
	return e.val, nil
}

// Set implements fiber.Storage.
func (m *limitStore) Set(key string, val []byte, exp time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if _, ok := m.entries[key]; !ok && len(m.entries) >= m.maxKeys {
		for k, e := range m.entries {
			if !e.exp.IsZero() && !now.Before(e.exp) {
				delete(m.entries, k)
			}
		}
		if len(m.entries) >= m.maxKeys {
			clear(m.entries)
		}
	}
	e := limitEntry{val: append([]byte(nil), val...)}
	if exp > 0 {
		e.exp = now.Add(exp)
	}
	m.entries[string([]byte(key))] = e // the key may alias a request buffer
	return nil
}

// Delete implements fiber.Storage.
func (m *limitStore) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
	return nil
}

// Reset implements fiber.Storage.
func (m *limitStore) Reset() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.entries)
	return nil
}

// Close implements fiber.Storage.
func (m *limitStore) Close() error { return nil }
