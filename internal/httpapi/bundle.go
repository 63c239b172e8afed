package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

func (s *Server) typeHistory(c *fiber.Ctx) error     { return s.history(c, false) }
func (s *Server) instanceHistory(c *fiber.Ctx) error { return s.history(c, true) }

func (s *Server) history(c *fiber.Ctx, instance bool) error {
	typ, id, err := params(c)
	if err != nil {
		return err
	}
	acc, err := s.authorize(c, auth.InteractionHistory, typ)
	if err != nil {
		return err
	}
	opts := store.HistoryOptions{Count: search.DefaultCount, Cursor: c.Query("_cursor")}
	if v := c.Query("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errBadRequest("_count must be a positive integer")
		}
		opts.Count = min(n, search.MaxCount)
	}
	if v := c.Query("_since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return errBadRequest("_since must be a FHIR instant such as 2026-11-20T10:00:00Z")
		}
		opts.Since = t
	}
	page, err := s.deps.Store.History(c.UserContext(), typ, id, opts, acc)
	if err != nil {
		return err
	}
	base := s.base + "/fhir/" + typ
	if instance {
		base += "/" + id
	}
	base += "/_history"
	b := newBundle("history")
	b.grow(entriesSize(s.base, page.Entries))
	b.link("self", base)
	if page.NextCursor != "" {
		v := url.Values{"_cursor": {page.NextCursor}, "_count": {strconv.Itoa(opts.Count)}}
		if !opts.Since.IsZero() {
			v.Set("_since", instant(opts.Since))
		}
		b.link("next", base+"?"+v.Encode())
	}
	for _, e := range page.Entries {
		method, status := "PUT", "200"
		switch {
		case e.Deleted:
			method, status = "DELETE", "204"
		case e.VersionID == 1:
			method, status = "POST", "201"
		}
		reqURL := e.Type + "/" + e.ID
		if method == "POST" {
			reqURL = e.Type
		}
		extra := fmt.Sprintf(`"request":{"method":%q,"url":%q},"response":{"status":%q,"etag":%q,"lastModified":%q}`,
			method, reqURL, status, etag(e.VersionID), instant(e.LastUpdated))
		var content []byte
		if !e.Deleted {
			content = e.Content
		}
		b.entry(s.base+"/fhir/"+e.Type+"/"+e.ID, content, extra)
	}
	return s.send(c, b.bytes())
}

// bundle writes a Bundle around stored resource bytes without decoding
// them.
type bundle struct {
	typ     string
	total   *int64
	links   [][2]string
	entries bytes.Buffer
	n       int
}

func newBundle(typ string) *bundle { return &bundle{typ: typ} }

func (b *bundle) link(rel, u string) { b.links = append(b.links, [2]string{rel, u}) }

// grow makes room for n more bytes of entries: a searchset of 50
// readings is 35 kB, and growing a buffer to that by doubling allocated
// four times what it kept (make bench-search's profile).
func (b *bundle) grow(n int) { b.entries.Grow(n) }

// entriesSize is about how many bytes the entries of these stored
// resources take, for grow.
func entriesSize(base string, stored ...[]store.Stored) int {
	n := 0
	for _, group := range stored {
		for _, e := range group {
			n += len(e.Content) + len(base) + len(e.Type) + len(e.ID) + 64
		}
	}
	return n
}

// entry adds an entry; resource may be nil, extra is more entry members.
func (b *bundle) entry(fullURL string, resource []byte, extra string) {
	if b.n > 0 {
		b.entries.WriteByte(',')
	}
	b.n++
	b.entries.WriteByte('{')
	sep := false
	if fullURL != "" {
		b.entries.WriteString(`"fullUrl":`)
		writeString(&b.entries, fullURL)
		sep = true
	}
	if resource != nil {
		if sep {
			b.entries.WriteByte(',')
		}
		b.entries.WriteString(`"resource":`)
		b.entries.Write(resource)
		sep = true
	}
	if extra != "" {
		if sep {
			b.entries.WriteByte(',')
		}
		b.entries.WriteString(extra)
	}
	b.entries.WriteByte('}')
}

// bytes is the Bundle: its head, then the entries written so far.
func (b *bundle) bytes() []byte {
	var head bytes.Buffer
	head.WriteString(`{"resourceType":"Bundle","id":"`)
	head.WriteString(uuid.NewString())
	head.WriteString(`","meta":{"lastUpdated":"`)
	head.WriteString(instant(time.Now()))
	head.WriteString(`"},"type":"`)
	head.WriteString(b.typ)
	head.WriteByte('"')
	if b.total != nil {
		head.WriteString(`,"total":`)
		head.WriteString(strconv.FormatInt(*b.total, 10))
	}
	if len(b.links) > 0 {
		head.WriteString(`,"link":[`)
		for i, l := range b.links {
			if i > 0 {
				head.WriteByte(',')
			}
			head.WriteString(`{"relation":"`)
			head.WriteString(l[0])
			head.WriteString(`","url":`)
			writeString(&head, l[1])
			head.WriteByte('}')
		}
		head.WriteByte(']')
	}
	out := make([]byte, 0, head.Len()+len(`,"entry":[]}`)+b.entries.Len())
	out = append(out, head.Bytes()...)
	if b.n > 0 {
		out = append(out, `,"entry":[`...)
		out = append(out, b.entries.Bytes()...)
		out = append(out, ']')
	}
	return append(out, '}')
}

// writeString writes s as a JSON string; URLs keep their "&" readable.
func writeString(buf *bytes.Buffer, s string) {
	if plainJSON(s) {
		buf.WriteByte('"')
		buf.WriteString(s)
		buf.WriteByte('"')
		return
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
}

// plainJSON reports whether s is a JSON string as it is: printable ASCII
// without quotes or backslashes, as URLs of ids and cursors are.
func plainJSON(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
