package broker

import (
	"crypto/sha256"
	"sync"
	"time"
)

// authCacheSize bounds the cache; when full it is emptied, which is simpler
// than LRU bookkeeping and costs one CheckDevice per device to refill.
const authCacheSize = 10_000

type authEntry struct {
	deviceID string
	ok       bool
	until    time.Time
}

// authCache remembers CheckDevice answers briefly, wrong passwords included
// (a misconfigured gateway retrying in a loop should not reach the database
// each time). It is keyed by username and a SHA-256 of the password, so no
// password stays in memory.
type authCache struct {
	mu      sync.Mutex
	entries map[string]authEntry
	ttl     time.Duration
}

func newAuthCache(ttl time.Duration) *authCache {
	return &authCache{entries: make(map[string]authEntry), ttl: ttl}
}

func authKey(username, password string) string {
	sum := sha256.Sum256([]byte(password))
	return username + "\x00" + string(sum[:])
}

// get returns a live entry for key.
func (c *authCache) get(key string, now time.Time) (authEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return authEntry{}, false
	}
	if !now.Before(e.until) {
		delete(c.entries, key)
		return authEntry{}, false
	}
	return e, true
}

func (c *authCache) put(key, deviceID string, ok bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= authCacheSize {
		clear(c.entries)
	}
	c.entries[key] = authEntry{deviceID: deviceID, ok: ok, until: now.Add(c.ttl)}
}
