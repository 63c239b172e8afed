package limitstore

import (
	"strconv"
	"testing"
	"time"
)

func TestLimitStoreForgetsExpiredCountsAndStaysBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	m := New(3)
	m.Now = func() time.Time { return now }
	_ = m.Set("a", []byte("1"), time.Second)
	if v, _ := m.Get("a"); string(v) != "1" {
		t.Fatalf("Get(a) = %q", v)
	}
	now = now.Add(time.Second)
	if v, _ := m.Get("a"); v != nil {
		t.Errorf("an expired count is still there: %q", v)
	}
	for i := range 10 {
		_ = m.Set(strconv.Itoa(i), []byte("x"), time.Minute)
	}
	if n := m.Len(); n > 3 {
		t.Errorf("%d counts kept, want at most 3", n)
	}
}

func TestTheLimitStoreForgetsExpiredAndBoundsItsSize(t *testing.T) {
	s := New(2)
	_ = s.Set("a", []byte("1"), 0)
	_ = s.Set("b", []byte("2"), -1)
	if v, _ := s.Get("a"); string(v) != "1" {
		t.Fatalf("Get(a) = %q", v)
	}
	_ = s.Set("c", []byte("3"), 0) // full of unexpiring entries: starts over
	if v, _ := s.Get("a"); v != nil {
		t.Fatalf("a survived a full store: %q", v)
	}
	if v, _ := s.Get("c"); string(v) != "3" {
		t.Fatalf("Get(c) = %q", v)
	}
	_ = s.Set("d", []byte("4"), 1) // 1 ns
	if v, _ := s.Get("d"); v != nil {
		t.Fatalf("an expired entry was returned: %q", v)
	}
}
