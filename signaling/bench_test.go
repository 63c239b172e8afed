package signaling

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A browser's offer with audio, video and a data channel is 5–10 KiB.
func benchOffer() []byte {
	sdp := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n" + strings.Repeat("a=rtcp-fb:96 nack pli\r\n", 300)
	b, _ := json.Marshal(Message{V: 1, Type: TypeOffer, Description: &Description{Type: "offer", SDP: sdp}})
	return b
}

func BenchmarkDecodeMessage(b *testing.B) {
	for name, msg := range map[string][]byte{
		"offer":     benchOffer(),
		"candidate": []byte(`{"v":1,"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}`),
		"chat":      []byte(`{"v":1,"type":"chat","text":"Can you hear me now?"}`),
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := DecodeMessage(msg, 64<<10, 2000); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "messages/s")
		})
	}
}

func BenchmarkJoinToken(b *testing.B) {
	tk, err := newTokens(nil, 5*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	c := joinClaims{Appointment: "0193a0c2-5d2e-7c1a-9f00-1234567890ab", Participant: "Patient/demo-patient-1", Kind: KindPatient, Subject: "astrid", Role: "patient"}
	now := time.Now()
	b.Run("issue", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := tk.issue(c, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	tok, _, _ := tk.issue(c, now)
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := tk.verify(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkChatRelay is one admitted participant's chat message reaching
// the others of a room of four, through the real room and sessions (the
// connections are in-memory pipes; the database only opens the room).
func BenchmarkChatRelay(b *testing.B) {
	f := newFixture(b, func(c *Config) { c.RatePerSecond, c.RateBurst, c.SendQueue = 1e9, 1<<20, 1<<16 })
	f.appointment(b, "a1", "booked", "p1", "c1", "c2", "c3")
	var clients []*client
	for _, who := range []Actor{clinicianActor("c1"), clinicianActor("c2"), clinicianActor("c3")} {
		c, _ := f.join(b, mustIssue(b, f, who, "a1"), false)
		clients = append(clients, c)
	}
	sender := clients[0]
	msg := []byte(`{"v":1,"type":"chat","text":"Can you hear me now?"}`)
	b.ResetTimer()
	for b.Loop() {
		sender.raw(msg)
		for _, c := range clients {
			c.expectUntil(TypeChat, "")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "chats/s")
}
