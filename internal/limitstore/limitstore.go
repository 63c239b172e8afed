// Package limitstore is the in-memory, bounded storage the rate limiters
// of internal/httpapi and internal/web count requests in. It imports the
// standard library only and satisfies Fiber's Storage interface without
// importing Fiber.
package limitstore

import (
	"sync"
	"time"
)

// Store is a fiber.Storage for rate limiters: a map whose entries expire
// when read, with no goroutine of its own (Fiber's memory storage starts a
// collector nobody can stop). Past maxKeys keys it drops the expired
// entries, then all of them: a flood of distinct clients costs each a
// fresh window, never unbounded memory.
type Store struct {
	mu      sync.Mutex
	entries map[string]entry
	maxKeys int
	// Now is the clock; tests set it.
	Now func() time.Time
}

type entry struct {
	val []byte
	exp time.Time // zero: no expiry
}

// New returns an empty store that remembers at most maxKeys keys.
func New(maxKeys int) *Store {
	return &Store{entries: map[string]entry{}, maxKeys: maxKeys, Now: time.Now}
}

// Get implements fiber.Storage.
func (m *Store) Get(key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok {
		return nil, nil
	}
	if !e.exp.IsZero() && !m.Now().Before(e.exp) {
		delete(m.entries, key)
		return nil, nil
	}
	return e.val, nil
}

// Set implements fiber.Storage.
func (m *Store) Set(key string, val []byte, exp time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.Now()
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
	e := entry{val: append([]byte(nil), val...)}
	if exp > 0 {
		e.exp = now.Add(exp)
	}
	m.entries[string([]byte(key))] = e // the key may alias a request buffer
	return nil
}

// Delete implements fiber.Storage.
func (m *Store) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
	return nil
}

// Reset implements fiber.Storage.
func (m *Store) Reset() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.entries)
	return nil
}

// Close implements fiber.Storage.
func (m *Store) Close() error { return nil }

// Len is how many keys the store holds, expired or not.
func (m *Store) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
