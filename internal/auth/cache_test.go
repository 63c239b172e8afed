package auth

import (
	"testing"
	"time"
)

func TestTheVerifiedCacheNeverOutlivesAToken(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c := newVerifiedCache(2, time.Minute)
	short := &Principal{Subject: "a", ExpiresAt: now.Add(10 * time.Second)}
	c.put("short", short, now)
	if p, ok := c.get("short", now.Add(9*time.Second)); !ok || p != short {
		t.Fatal("a live token was not remembered")
	}
	if _, ok := c.get("short", now.Add(10*time.Second)); ok {
		t.Fatal("an expired token was still remembered")
	}
	long := &Principal{Subject: "b", ExpiresAt: now.Add(time.Hour)}
	c.put("long", long, now)
	if _, ok := c.get("long", now.Add(time.Minute)); ok {
		t.Fatal("an entry outlived the cache TTL")
	}
	c.put("x", long, now)
	c.put("y", long, now)
	c.put("z", long, now)
	if len(c.entries) > 2 {
		t.Fatalf("cache holds %d entries, limit 2", len(c.entries))
	}
}
