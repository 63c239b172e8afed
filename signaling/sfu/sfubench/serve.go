// Package sfubench is the load generator behind `viddabench sfu`: N
// concurrent 1:1 visits of pion peers sending VP8-sized video and Opus
// through the SFU, which runs in a child process (Serve) so its CPU and
// memory are its own. It lives under signaling/ because only signaling/...
// may import pion; cmd/viddabench only parses flags and prints.
package sfubench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/sfu"
)

// message is one line of the JSON protocol between the generator and
// the SFU process, in either direction.
type message struct {
	Op        string                 `json:"op"`
	ID        string                 `json:"id,omitempty"`
	Room      string                 `json:"room,omitempty"`
	Desc      *signaling.Description `json:"desc,omitempty"`
	Candidate *signaling.Candidate   `json:"candidate,omitempty"`
	Event     *event                 `json:"event,omitempty"`
	Error     string                 `json:"error,omitempty"`
	In        uint64                 `json:"in,omitempty"`
	Out       uint64                 `json:"out,omitempty"`
	AudioOnly int                    `json:"audio_only,omitempty"`
	Start     bool                   `json:"start,omitempty"`
}

// event is a signaling.MediaEvent on the wire.
type event struct {
	Kind        signaling.MediaEventKind `json:"kind"`
	Description *signaling.Description   `json:"description,omitempty"`
	Candidate   *signaling.Candidate     `json:"candidate,omitempty"`
	AudioOnly   bool                     `json:"audio_only,omitempty"`
	State       string                   `json:"state,omitempty"`
}

// Hooks are what the SFU process does around a run besides forwarding.
type Hooks struct {
	// Window, if not nil, runs when the measured window starts (true) and
	// ends (false): a CPU profile of the steady state only, without the
	// DTLS handshakes and negotiations of the connect phase.
	Window func(start bool)
	// Loaded, if not nil, runs when the commands end, before the peers
	// close (a heap profile).
	Loaded func()
}

// Serve runs an SFU with cfg and obeys the generator's commands from r
// (connect, remote, candidate, admit, close, stats, window), writing the
// peers' events and the answers to w, until r ends or ctx is done.
func Serve(ctx context.Context, cfg sfu.Config, r io.Reader, w io.Writer, log *slog.Logger, hooks Hooks) error {
	s, err := sfu.New(cfg, log) //nolint:contextcheck // opening sockets does not block
	if err != nil {
		return err
	}
	defer s.Close()
	out := &writer{enc: json.NewEncoder(w)}
	peers := map[string]signaling.MediaPeer{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		if ctx.Err() != nil {
			break
		}
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("sfubench: bad command: %w", err)
		}
		if m.Op == "window" {
			if hooks.Window != nil {
				hooks.Window(m.Start)
			}
			continue
		}
		if err := obey(ctx, s, peers, out, m); err != nil {
			out.write(message{Op: "error", ID: m.ID, Error: err.Error()})
		}
	}
	if hooks.Loaded != nil {
		hooks.Loaded()
	}
	for _, p := range peers {
		_ = p.Close()
	}
	return sc.Err()
}

func obey(ctx context.Context, s *sfu.SFU, peers map[string]signaling.MediaPeer, out *writer, m message) error {
	p := peers[m.ID]
	if p == nil && m.Op != "connect" && m.Op != "stats" {
		return fmt.Errorf("no peer %q", m.ID)
	}
	switch m.Op {
	case "connect":
		id := m.ID
		np, err := s.Connect(ctx, m.Room, id, func(e signaling.MediaEvent) {
			out.write(message{Op: "event", ID: id, Event: &event{
				Kind: e.Kind, Description: e.Description, Candidate: e.Candidate, AudioOnly: e.AudioOnly, State: e.State,
			}})
		})
		if err != nil {
			return err
		}
		peers[id] = np
	case "remote":
		if m.Desc == nil {
			return errors.New("remote without desc")
		}
		return p.Remote(ctx, *m.Desc)
	case "candidate":
		if m.Candidate == nil {
			return errors.New("candidate without candidate")
		}
		return p.AddCandidate(*m.Candidate)
	case "admit":
		p.SetAdmitted(true)
	case "close":
		delete(peers, m.ID)
		return p.Close()
	case "stats":
		var in, outN uint64
		audioOnly := 0
		for _, p := range peers {
			st := p.Stats()
			in += st.PacketsIn
			outN += st.PacketsOut
			if st.AudioOnly {
				audioOnly++
			}
		}
		out.write(message{Op: "stats", ID: m.ID, In: in, Out: outN, AudioOnly: audioOnly})
	default:
		return fmt.Errorf("unknown op %q", m.Op)
	}
	return nil
}

// writer serializes lines from the peers' event goroutines.
type writer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *writer) write(m message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.enc.Encode(m)
}
