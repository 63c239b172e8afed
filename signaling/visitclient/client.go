// Package visitclient plays a participant's browser in a video visit, for
// soak runs, fault tests and load generators: it asks vidda for a join
// token over HTTP (POST /video/visits/{id}/join), opens the websocket the
// answer names, joins, offers audio and video from a pion PeerConnection,
// answers the server's offers, trickles candidates both ways, publishes
// Opus-sized audio and VP8-sized video, and counts the packets it
// receives. It follows the protocol documented in package signaling.
// Admit plays the start of a visit with two of them: the patient waits,
// the clinician admits, media flows.
//
// It imports signaling (the message types), pion (only signaling/... may)
// and fasthttp/websocket (the websocket library the server uses).
package visitclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/vidda/vidda/signaling"
)

// Grant is vidda's answer to POST /video/visits/{id}/join.
type Grant struct {
	Token       string                `json:"token"`
	WS          string                `json:"ws"`
	ICEServers  []signaling.ICEServer `json:"iceServers"`
	Participant string                `json:"participant"`
}

// Join asks vidda at base for a join token of appointment id with bearer.
func Join(ctx context.Context, hc *http.Client, base, bearer, id string) (*Grant, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/video/visits/"+url.PathEscape(id)+"/join", http.NoBody)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", id, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("join %s: %s: %s", id, resp.Status, bytes.TrimSpace(body))
	}
	var g Grant
	if err := json.Unmarshal(body, &g); err != nil {
		return nil, fmt.Errorf("join %s: %w", id, err)
	}
	return &g, nil
}

// Client is one participant connected to a visit.
type Client struct {
	// Participant is who the client joined as.
	Participant string

	ws   *fws.Conn
	wmu  sync.Mutex
	msgs chan signaling.Message // what the server sent, but negotiation and pings
	code atomic.Int64           // the close code once the websocket closed
	gone chan struct{}          // closed when the websocket closed

	// The first negotiation failure (applying the server's offer or
	// answer, or answering), and failed closed when it happened: a
	// broken negotiation ends the Await calls with its cause instead of
	// a timeout.
	failOnce sync.Once
	failErr  error
	failed   chan struct{}

	pc           *webrtc.PeerConnection
	audio, video *webrtc.TrackLocalStaticSample
	connected    chan struct{}
	received     atomic.Uint64 // media packets from the others
	sent         atomic.Uint64
	fromMu       sync.Mutex
	from         map[string]*atomic.Uint64 // "<participant> <kind>"

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// Dial opens the websocket of g, joins, and starts the media: an offer
// with one audio and one video track, sent at once (a patient waiting for
// admission negotiates already). The returned client has seen "joined".
// Loopback candidates are allowed: soak runs and tests use 127.0.0.1.
func Dial(ctx context.Context, g *Grant) (*Client, error) {
	ws, resp, err := fws.DefaultDialer.DialContext(ctx, g.WS, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", g.WS, err)
	}
	_ = resp.Body.Close()
	c := &Client{
		Participant: g.Participant, ws: ws, msgs: make(chan signaling.Message, 256), gone: make(chan struct{}), failed: make(chan struct{}),
		connected: make(chan struct{}), stop: make(chan struct{}),
	}
	if err := c.newPeer(); err != nil {
		_ = ws.Close()
		return nil, err
	}
	c.wg.Add(1)
	go c.read()
	if err := c.Send(signaling.Message{Type: signaling.TypeJoin, Token: g.Token}); err != nil {
		c.Close()
		return nil, err
	}
	m, err := c.Next(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	if m.Type != signaling.TypeJoined {
		c.Close()
		return nil, fmt.Errorf("join: got %s %s: %s", m.Type, m.Code, m.Error)
	}
	offer, err := c.pc.CreateOffer(nil)
	if err == nil {
		err = c.pc.SetLocalDescription(offer)
	}
	if err == nil {
		err = c.Send(signaling.Message{Type: signaling.TypeOffer, Description: &signaling.Description{Type: "offer", SDP: offer.SDP}})
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("offer: %w", err)
	}
	c.wg.Add(1)
	go c.publish()
	return c, nil
}

func (c *Client) newPeer() error {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return err
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	c.pc = pc
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(c.connected) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		from, err := url.PathUnescape(tr.StreamID()) // the SFU names streams by participant
		if err != nil {
			from = tr.StreamID()
		}
		n := c.counter(from, tr.Kind().String())
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			c.received.Add(1)
			n.Add(1)
		}
	})
	pc.OnICECandidate(func(ic *webrtc.ICECandidate) {
		if ic == nil {
			return
		}
		init := ic.ToJSON()
		_ = c.Send(signaling.Message{Type: signaling.TypeCandidate, Candidate: &signaling.Candidate{
			Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
		}})
	})
	if c.video, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "cam"); err != nil {
		return err
	}
	if c.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "cam"); err != nil {
		return err
	}
	for _, tr := range []webrtc.TrackLocal{c.video, c.audio} {
		sender, err := pc.AddTrack(tr)
		if err != nil {
			return err
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	return nil
}

// read handles the server's messages: negotiation here, the rest to Next.
func (c *Client) read() {
	defer c.wg.Done()
	defer close(c.gone)
	defer close(c.msgs)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			code := int64(1006)
			var ce *fws.CloseError
			if errors.As(err, &ce) {
				code = int64(ce.Code)
			}
			c.code.Store(code)
			return
		}
		var m signaling.Message
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		switch m.Type { //nolint:exhaustive // the rest go to Next
		case signaling.TypePing:
			_ = c.Send(signaling.Message{Type: signaling.TypePong})
		case signaling.TypeQuality:
		case signaling.TypeAnswer:
			if m.Description != nil {
				if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.Description.SDP}); err != nil {
					c.fail(fmt.Errorf("apply the server's answer: %w", err))
				}
			}
		case signaling.TypeOffer:
			if m.Description != nil {
				c.answer(m.Description.SDP)
			}
		case signaling.TypeCandidate:
			if m.Candidate != nil && m.Candidate.Candidate != "" {
				_ = c.pc.AddICECandidate(webrtc.ICECandidateInit{
					Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid, SDPMLineIndex: m.Candidate.SDPMLineIndex,
				})
			}
		default:
			select {
			case c.msgs <- m:
			default: // nobody reads: drop, as a page that ignores a message
			}
		}
	}
}

func (c *Client) answer(sdp string) {
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		c.fail(fmt.Errorf("apply the server's offer: %w", err))
		return
	}
	ans, err := c.pc.CreateAnswer(nil)
	if err == nil {
		err = c.pc.SetLocalDescription(ans)
	}
	if err != nil {
		c.fail(fmt.Errorf("answer the server's offer: %w", err))
		return
	}
	_ = c.Send(signaling.Message{Type: signaling.TypeAnswer, Description: &signaling.Description{Type: "answer", SDP: ans.SDP}})
}

// publish sends Opus-sized audio at 50 packets/s and VP8-keyframe-sized
// video at 25 frames/s until Close.
func (c *Client) publish() {
	defer c.wg.Done()
	frame := make([]byte, 1000) // all zero: the VP8 P bit is 0, a keyframe
	opus := make([]byte, 80)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		if c.audio.WriteSample(media.Sample{Data: opus, Duration: 20 * time.Millisecond}) == nil {
			c.sent.Add(1)
		}
		if i%2 == 0 && c.video.WriteSample(media.Sample{Data: frame, Duration: 40 * time.Millisecond}) == nil {
			c.sent.Add(1)
		}
	}
}

// Send sends m with the protocol version set.
func (c *Client) Send(m signaling.Message) error {
	m.V = signaling.ProtocolVersion
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteJSON(m)
}

// ErrClosed: the server closed the websocket; CloseCode says how.
var ErrClosed = errors.New("visitclient: the websocket closed")

// Next returns the server's next message other than negotiation, pings
// and quality reports.
func (c *Client) Next(ctx context.Context) (signaling.Message, error) {
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return signaling.Message{}, fmt.Errorf("%w (%d)", ErrClosed, c.code.Load())
		}
		return m, nil
	case <-ctx.Done():
		return signaling.Message{}, ctx.Err()
	}
}

// Await returns the next message of type typ, skipping others; an error
// message from the server is returned as an error.
func (c *Client) Await(ctx context.Context, typ signaling.MessageType) (signaling.Message, error) {
	for {
		m, err := c.Next(ctx)
		if err != nil {
			return m, err
		}
		if m.Type == typ {
			return m, nil
		}
		if m.Type == signaling.TypeError {
			return m, fmt.Errorf("waiting for %s: server error %s: %s", typ, m.Code, m.Error)
		}
	}
}

// AwaitConnected waits until the media connected (the server answered
// the client's offer and ICE succeeded). Admit a waiting participant
// after both sides connected: the admission makes the server offer the
// others' tracks, and an offer crossing the client's own would be lost.
func (c *Client) AwaitConnected(ctx context.Context) error {
	select {
	case <-c.connected:
		return nil
	case <-c.failed:
		return fmt.Errorf("media did not connect: %w", c.failErr)
	case <-c.gone:
		return fmt.Errorf("media did not connect: %w (%d)", ErrClosed, c.code.Load())
	case <-ctx.Done():
		return fmt.Errorf("media did not connect: %w", ctx.Err())
	}
}

// AwaitMedia waits until the media connected and packets from the others
// arrived.
func (c *Client) AwaitMedia(ctx context.Context) error {
	if err := c.AwaitConnected(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for c.received.Load() == 0 {
		select {
		case <-tick.C:
		case <-c.failed:
			return fmt.Errorf("no media arrived: %w", c.failErr)
		case <-ctx.Done():
			return fmt.Errorf("no media arrived: %w", ctx.Err())
		}
	}
	return nil
}

// fail records the first negotiation failure.
func (c *Client) fail(err error) {
	c.failOnce.Do(func() {
		c.failErr = err
		close(c.failed)
	})
}

// Err is the first negotiation failure, nil while there is none.
func (c *Client) Err() error {
	select {
	case <-c.failed:
		return c.failErr
	default:
		return nil
	}
}

// Received is how many media packets from the others arrived.
func (c *Client) Received() uint64 { return c.received.Load() }

// ReceivedFrom is how many media packets of kind ("audio", "video") from
// participant (the FHIR reference it joined as) arrived.
func (c *Client) ReceivedFrom(participant, kind string) uint64 {
	return c.counter(participant, kind).Load()
}

func (c *Client) counter(participant, kind string) *atomic.Uint64 {
	c.fromMu.Lock()
	defer c.fromMu.Unlock()
	key := participant + " " + kind
	n := c.from[key]
	if n == nil {
		if c.from == nil {
			c.from = map[string]*atomic.Uint64{}
		}
		n = &atomic.Uint64{}
		c.from[key] = n
	}
	return n
}

// Sent is how many media samples were written.
func (c *Client) Sent() uint64 { return c.sent.Load() }

// Closed is closed when the websocket closed.
func (c *Client) Closed() <-chan struct{} { return c.gone }

// CloseCode is the websocket close code the server sent (1006: none),
// 0 while open.
func (c *Client) CloseCode() int { return int(c.code.Load()) }

// Leave says goodbye and closes the client.
func (c *Client) Leave() {
	_ = c.Send(signaling.Message{Type: signaling.TypeLeave})
	select {
	case <-c.gone:
	case <-time.After(5 * time.Second):
	}
	c.Close()
}

// Close stops the media and closes the websocket and the peer, and waits
// for the client's goroutines.
func (c *Client) Close() {
	c.stopOnce.Do(func() {
		close(c.stop)
		c.wmu.Lock()
		_ = c.ws.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.wmu.Unlock()
		_ = c.ws.Close()
		_ = c.pc.Close()
	})
	c.wg.Wait()
}
