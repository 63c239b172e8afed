package auth

import (
	"strings"
	"sync"
	"time"
)

// Verifying a token costs an Ed25519 check (~60 µs here); a client sends
// the same token with every request, so verified tokens are remembered
// briefly. An entry never outlives its token, and lives at most
// verifiedCacheTTL so a key retired past its window stops working soon.
const (
	verifiedCacheSize = 10_000
	verifiedCacheTTL  = time.Minute
)

type verifiedEntry struct {
	p     *Principal
	until time.Time
}

// verifiedCache maps a token to its principal. When full it is emptied:
// simpler than LRU bookkeeping, and a refill costs one verify per token.
type verifiedCache struct {
	mu      sync.Mutex
	entries map[string]verifiedEntry
	size    int
	ttl     time.Duration
}

func newVerifiedCache(size int, ttl time.Duration) *verifiedCache {
	return &verifiedCache{entries: make(map[string]verifiedEntry), size: size, ttl: ttl}
}

func (c *verifiedCache) get(token string, now time.Time) (*Principal, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[token]
	if !ok {
		return nil, false
	}
	if !now.Before(e.until) {
		delete(c.entries, token)
		return nil, false
	}
	return e.p, true
}

func (c *verifiedCache) put(token string, p *Principal, now time.Time) {
	until := now.Add(c.ttl)
	if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(until) {
		until = p.ExpiresAt
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.size {
		clear(c.entries)
	}
	// Clone: the caller's string may alias a reused request buffer
	// (fasthttp), which would change the key under the map.
	c.entries[strings.Clone(token)] = verifiedEntry{p: p, until: until}
}
