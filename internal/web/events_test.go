package web

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// stream is an open /app/events response, read event by event.
type stream struct {
	events chan string
	cancel context.CancelFunc
}

func (b *browser) openStream(t *testing.T, base string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/app/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // closed by the reading goroutine
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /app/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{events: make(chan string, 16), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev []string
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if len(ev) > 0 {
					s.events <- strings.Join(ev, "\n")
				}
				ev = nil
				continue
			}
			if !strings.HasPrefix(line, ":") && !strings.HasPrefix(line, "retry:") {
				ev = append(ev, line)
			}
		}
	}()
	t.Cleanup(cancel)
	return s
}

// next is the next event, or "" after d.
func (s *stream) next(d time.Duration) string {
	select {
	case ev := <-s.events:
		return ev
	case <-time.After(d):
		return ""
	}
}

func TestTheLiveStreamSaysWhenAVisibleTaskChanges(t *testing.T) {
	cfg := DefaultConfig()
	cfg.KeepAlive = time.Second
	h := newHarness(t, cfg)
	h.clinic()
	base := h.serve()
	ingrid := h.signIn("ingrid", "ingrid's long password")
	s := ingrid.openStream(t, base)
	// The listener's (re)connect makes every stream refetch once.
	waitFor(t, func() bool { return h.pages.hub.listening() }, "the LISTEN connection")
	for ev := s.next(300 * time.Millisecond); ev != ""; ev = s.next(300 * time.Millisecond) {
		if ev != "event: worklist\ndata: *" {
			t.Fatalf("first event %q", ev)
		}
	}
	// Another team's patient: not told. One of hers: told, with the id.
	h.task("t3", "p3", "stat", "", time.Now())
	h.task("t2", "p2", "urgent", "", time.Now())
	if ev := s.next(10 * time.Second); ev != "event: worklist\ndata: p2" {
		t.Errorf("after Tasks of p3 and p2: %q", ev)
	}
	// Signing out ends the stream at once.
	if resp, _ := ingrid.do(http.MethodPost, "/logout", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if ev := s.next(10 * time.Second); ev != "event: session-ended\ndata: signed-out" {
		t.Errorf("after sign-out: %q", ev)
	}
	if _, open := <-s.events; open {
		t.Error("the stream stays open after sign-out")
	}
}
