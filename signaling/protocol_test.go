package signaling

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeMessage(t *testing.T) {
	const maxSize, maxChat = 64 << 10, 20
	tests := []struct {
		name string
		in   string
		code string // "" = accepted
	}{
		{"a join with a token is accepted", `{"v":1,"type":"join","token":"vj1.a.b"}`, ""},
		{"a join resuming a peer is accepted", `{"v":1,"type":"join","token":"vj1.a.b","resume":true}`, ""},
		{"an offer is accepted", `{"v":1,"type":"offer","description":{"type":"offer","sdp":"v=0"}}`, ""},
		{"a candidate is accepted", `{"v":1,"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 192.0.2.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}`, ""},
		{"the end of candidates is accepted", `{"v":1,"type":"candidate","candidate":{"candidate":""}}`, ""},
		{"a mute is accepted", `{"v":1,"type":"mute","audio":true}`, ""},
		{"an admit is accepted", `{"v":1,"type":"admit","participant":"Patient/p-1.x"}`, ""},
		{"a chat is accepted", `{"v":1,"type":"chat","text":"hei på deg"}`, ""},
		{"a ping is accepted", `{"v":1,"type":"ping"}`, ""},
		{"leading and trailing space is accepted", " \n{\"v\":1,\"type\":\"leave\"}\n", ""},

		{"no version is refused", `{"type":"ping"}`, "version"},
		{"version 2 is refused", `{"v":2,"type":"ping"}`, "version"},
		{"an unknown type is refused", `{"v":1,"type":"dance"}`, "unknown-type"},
		{"a server type from a client is refused", `{"v":1,"type":"joined"}`, "unknown-type"},
		{"no type is refused", `{"v":1}`, "unknown-type"},
		{"an unknown field is refused", `{"v":1,"type":"ping","x":1}`, "malformed"},
		{"a field of another type is refused", `{"v":1,"type":"ping","text":"hi"}`, "invalid"},
		{"a join without a token is refused", `{"v":1,"type":"join"}`, "invalid"},
		{"an offer carrying an answer is refused", `{"v":1,"type":"offer","description":{"type":"answer","sdp":"v=0"}}`, "invalid"},
		{"an offer without SDP is refused", `{"v":1,"type":"offer","description":{"type":"offer","sdp":""}}`, "invalid"},
		{"an admit of a non-reference is refused", `{"v":1,"type":"admit","participant":"p1"}`, "invalid"},
		{"an admit of an absolute reference is refused", `{"v":1,"type":"admit","participant":"http://x/Patient/p1"}`, "invalid"},
		{"an empty chat is refused", `{"v":1,"type":"chat","text":"  "}`, "invalid"},
		{"a chat over the limit is refused", `{"v":1,"type":"chat","text":"` + strings.Repeat("å", maxChat+1) + `"}`, "invalid"},
		{"a mute of nothing is refused", `{"v":1,"type":"mute"}`, "invalid"},
		{"an audio-only without on is refused", `{"v":1,"type":"audio-only"}`, "invalid"},
		{"a long candidate is refused", `{"v":1,"type":"candidate","candidate":{"candidate":"` + strings.Repeat("x", 2000) + `"}}`, "invalid"},
		{"two objects are refused", `{"v":1,"type":"ping"}{"v":1,"type":"ping"}`, "malformed"},
		{"an array is refused", `[{"v":1,"type":"ping"}]`, "malformed"},
		{"a string for the version is refused", `{"v":"1","type":"ping"}`, "malformed"},
		{"broken JSON is refused", `{"v":1,"type":`, "malformed"},
		{"invalid UTF-8 is refused", "{\"v\":1,\"type\":\"chat\",\"text\":\"\xff\"}", "malformed"},
		{"a message over the size limit is refused", `{"v":1,"type":"chat","text":"` + strings.Repeat("x", maxSize) + `"}`, "too-large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tc.in), maxSize, maxChat)
			var pe *ProtocolError
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.code == "":
				if m.V != ProtocolVersion {
					t.Fatalf("decoded %+v", m)
				}
			case !errors.As(err, &pe):
				t.Fatalf("got %v, want a ProtocolError %s", err, tc.code)
			case pe.Code != tc.code:
				t.Fatalf("code %s (%s), want %s", pe.Code, pe.Msg, tc.code)
			}
		})
	}
}

func TestProtocolErrorsDoNotQuoteTheInput(t *testing.T) {
	secret := "vj1.c2VjcmV0LXBheWxvYWQtdGhhdC1tdXN0LW5vdC1sZWFr.sig"
	for _, in := range []string{
		`{"v":1,"type":"` + secret + `"}`,
		`{"v":1,"type":"ping","` + secret + `":1}`,
		`{"v":1,"type":"offer","description":{"type":"` + secret + `","sdp":"x"}}`,
	} {
		_, err := DecodeMessage([]byte(in), 64<<10, 100)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("error %v quotes the input", err)
		}
	}
}

func TestJoinTokens(t *testing.T) {
	tk, err := newTokens(nil, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := joinClaims{Appointment: "a1", Participant: "Patient/p1", Kind: KindPatient, Subject: "u1"}
	tok, exp, err := tk.issue(c, now)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Sub(now) != 5*time.Minute {
		t.Fatalf("expires %s", exp)
	}
	t.Run("a fresh token verifies", func(t *testing.T) {
		got, expired, err := tk.verify(tok, now)
		if err != nil || expired || got.Appointment != "a1" || got.Participant != "Patient/p1" || got.ID == "" {
			t.Fatalf("%+v %v %v", got, expired, err)
		}
	})
	t.Run("after its lifetime it is expired, still genuine", func(t *testing.T) {
		_, expired, err := tk.verify(tok, now.Add(5*time.Minute+time.Second))
		if err != nil || !expired {
			t.Fatalf("expired %v, %v", expired, err)
		}
	})
	for name, bad := range map[string]string{
		"a cut token":         tok[:len(tok)-3],
		"no prefix":           strings.TrimPrefix(tok, tokenPrefix),
		"a swapped signature": tok[:strings.LastIndexByte(tok, '.')+1] + "AAAA",
		"empty":               "",
		"an oversized token":  tokenPrefix + strings.Repeat("A", maxTokenLen),
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			if _, _, err := tk.verify(bad, now); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("verify: %v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
	for name, tune := range map[string]func(*Config){
		"a short key":       func(c *Config) { c.TokenKey = []byte("short") },
		"no grace":          func(c *Config) { c.Grace = 0 },
		"a tiny message":    func(c *Config) { c.MaxMessage = 100 },
		"no rate":           func(c *Config) { c.RatePerSecond = 0 },
		"a room of one":     func(c *Config) { c.MaxParticipants = 1 },
		"a negative ttl":    func(c *Config) { c.TokenTTL = -time.Second },
		"a chat too long":   func(c *Config) { c.MaxChat = c.MaxMessage },
		"a tiny send queue": func(c *Config) { c.SendQueue = 1 },
	} {
		c := DefaultConfig()
		tune(&c)
		if c.Validate() == nil {
			t.Errorf("%s is accepted", name)
		}
	}
}

// FuzzDecodeMessage: no input panics, every refusal is a ProtocolError,
// and what is accepted survives a round trip.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"join","token":"vj1.a.b","resume":true}`,
		`{"v":1,"type":"offer","description":{"type":"offer","sdp":"v=0"}}`,
		`{"v":1,"type":"candidate","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"u"}}`,
		`{"v":1,"type":"mute","audio":true,"video":false}`,
		`{"v":1,"type":"chat","text":"hei"}`,
		`{"v":1,"type":"admit","participant":"Patient/p1"}`,
		`{"v":1,"type":"audio-only","on":true}`,
		`{"v":2,"type":"ping"}`,
		`[]`, `null`, `{"v":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data, 64<<10, 500)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("refusal %v is no ProtocolError", err)
			}
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeMessage(b, 64<<10, 500)
		if err != nil {
			t.Fatalf("%s re-encoded as %s is refused: %v", data, b, err)
		}
		if again.Type != m.Type || again.Text != m.Text || again.Participant != m.Participant || again.Token != m.Token {
			t.Fatalf("round trip changed %+v to %+v", m, again)
		}
	})
}
