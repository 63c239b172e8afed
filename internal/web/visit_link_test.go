package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vidda/vidda/internal/weaklink"
)

// The visit page on a poor rural link: the patient's Chromium runs in a
// network namespace behind a link shaped on both ends (100 ms delay each
// way, so a 200 ms round trip, 2 % loss, 300 kbit/s: netem on a veth
// pair, or the same emulated in user space where the kernel lacks netem),
// vidda listens for HTTP, TURN and media on the host end, and the
// clinician's Chromium is on the host. The visit must connect, the SFU
// must fall back to audio only for the patient (the page gets the
// audio-only event and shows the notice), and audio must keep flowing
// both ways. The time from admission to the first decoded frame on the
// shaped link is logged when video got through before the fallback.
//
// The two links queue differently: netem holds up to 1,000 packets, the
// user-space link drops what would wait over 300 ms (as tbf's latency
// does), so on netem more video stays in flight, at more delay.
//
// It needs root, ip and tc; without them it skips, unless
// VIDDA_REQUIRE_NETNS is set (CI sets it), which makes a skip a failure.

const (
	linkHostAddr = "10.231.0.1"
	linkNSAddr   = "10.231.0.2"
	linkDelay    = 100 * time.Millisecond
	linkLoss     = 0.02
	linkRate     = 300_000
	linkShape    = "delay 100ms loss 2% rate 300kbit"
)

// needNetns skips (or fails, under VIDDA_REQUIRE_NETNS) unless network
// namespaces can be made here.
func needNetns(t *testing.T) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "not root"
	default:
		for _, tool := range []string{"ip", "tc"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = tool + " is not installed (apt-get install iproute2)"
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("VIDDA_REQUIRE_NETNS") != "" {
		t.Fatalf("VIDDA_REQUIRE_NETNS is set but the shaped-link test cannot run: %s", why)
	}
	t.Skipf("the shaped-link test needs root, ip and tc: %s; set VIDDA_REQUIRE_NETNS=1 to fail instead of skipping", why)
}

// shapedLink makes the namespace and its shaped link to the host: a veth
// pair with netem on both ends, or, on a kernel without sch_netem, the
// same delay, loss and rate emulated in user space (internal/weaklink).
// They go with the test, failed or not.
func shapedLink(t *testing.T) (ns, shape string) {
	t.Helper()
	suffix := fmt.Sprint(os.Getpid() % 100000)
	ns = "vidda-link-" + suffix
	if vethWithNetem(t, ns, "vdh"+suffix, "vdn"+suffix) {
		return ns, "netem " + linkShape
	}
	s := weaklink.Shape{Delay: linkDelay, Loss: linkLoss, Rate: linkRate}
	l, err := weaklink.New(context.Background(), weaklink.Config{
		NS: ns, HostAddr: netip.MustParseAddr(linkHostAddr), NSAddr: netip.MustParseAddr(linkNSAddr), Up: s, Down: s, Seed: 1,
	})
	if err != nil {
		if os.Getenv("VIDDA_REQUIRE_NETNS") == "" {
			t.Skipf("no netem, and no link emulated in user space either (%v); set VIDDA_REQUIRE_NETNS=1 to fail instead of skipping", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		t.Logf("the emulated link passed, lost at random and dropped from its queue: from the patient %+v, to the patient %+v", l.Up(), l.Down())
		if err := l.Close(); err != nil {
			t.Log(err)
		}
	})
	t.Logf("netem is not available here: the link is emulated in user space (internal/weaklink)")
	return ns, "user-space " + s.String()
}

// vethWithNetem makes namespace ns joined to the host by a veth pair
// shaped with netem on both ends, and reports whether this kernel has
// netem; if not, it leaves nothing behind.
func vethWithNetem(t *testing.T, ns, hostIf, nsIf string) bool {
	t.Helper()
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil { //nolint:gosec // fixed commands of the test
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	var undone sync.Once
	undo := func() {
		undone.Do(func() {
			_ = exec.Command("ip", "link", "del", hostIf).Run()
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Logf("ip netns del %s: %v %s", ns, err, out)
			}
		})
	}
	sh("ip", "netns", "add", ns)
	t.Cleanup(undo)
	inNS := func(args ...string) { t.Helper(); sh(append([]string{"ip", "netns", "exec", ns}, args...)...) }
	sh("ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	if err := exec.Command("tc", append([]string{"qdisc", "add", "dev", hostIf, "root", "netem"}, strings.Fields(linkShape)...)...).Run(); err != nil {
		t.Logf("tc netem: %v", err)
		undo()
		return false
	}
	sh("ip", "link", "set", nsIf, "netns", ns)
	sh("ip", "addr", "add", linkHostAddr+"/30", "dev", hostIf)
	sh("ip", "link", "set", hostIf, "up")
	inNS("ip", "addr", "add", linkNSAddr+"/30", "dev", nsIf)
	inNS("ip", "link", "set", nsIf, "up")
	inNS("ip", "link", "set", "lo", "up")
	inNS(append([]string{"tc", "qdisc", "add", "dev", nsIf, "root", "netem"}, strings.Fields(linkShape)...)...)
	return true
}

// startViddaOn is startVidda with HTTP, TURN and media on addr.
func startViddaOn(t *testing.T, addr string) *viddaServer {
	t.Helper()
	bin := buildVidda(t)
	port := func(network string) string {
		t.Helper()
		if network == "udp" {
			c, err := net.ListenPacket("udp", addr+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return c.LocalAddr().String()
		}
		ln, err := net.Listen("tcp", addr+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	return serveVidda(t, bin, port("tcp"), freePort(t),
		"VIDDA_TURN_LISTEN="+port("tcp"), "VIDDA_MEDIA_UDP="+port("udp"), "VIDDA_MEDIA_TCP="+port("tcp"))
}

// inNamespace runs the browser inside network namespace ns: chromedp
// starts it through `ip netns exec`, which execs it in place, so the
// DevTools pipe and the process chromedp stops are the browser's own.
func inNamespace(ns string) chromedp.ExecAllocatorOption {
	return chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
		ip, _ := exec.LookPath("ip")
		cmd.Args = append([]string{"ip", "netns", "exec", ns, cmd.Path}, cmd.Args[1:]...)
		cmd.Path = ip
	})
}

func TestAPatientOnAWeakLinkFallsBackToSoundAndKeepsTalking(t *testing.T) {
	needNetns(t)
	path := chromium(t)
	ns, shape := shapedLink(t)
	s := startViddaOn(t, linkHostAddr)
	// Camera and microphone need a secure context: https, or an origin
	// the browser is told to treat as one (loopback is; 10.231.0.1 is not).
	secure := chromedp.Flag("unsafely-treat-insecure-origin-as-secure", s.base)
	patient := newVisitBrowser(t, "patient (shaped link)", append(visitBrowserOpts(path, t.TempDir()), inNamespace(ns), secure))
	p := newVisitPair(t, s, patient, secure)
	if got := evalIn[string](patient, `location.host`); got != strings.TrimPrefix(s.base, "http://") {
		t.Fatalf("the patient's browser is at %s", got)
	}

	base := s.base
	appointment := p.clinician.startVisit(base, visitPatient)
	p.clinician.joinVisit(base, appointment, "in-visit")
	p.patient.joinVisit(base, appointment, "waiting")
	p.patient.poll(60*time.Second, "the waiting patient's peer connects over the shaped link", `window.viddaVisit.pc && window.viddaVisit.pc.connectionState === 'connected'`)
	p.patient.watchFirstFrame()
	p.clinician.watchFirstFrame()
	p.clinician.admit(visitPatientRef)
	p.patient.poll(60*time.Second, "the patient is let in", `document.getElementById('visit').getAttribute('data-state') === 'in-visit'`)

	// Video first or the fallback first: whichever comes.
	selfAudioOnly := `(window.viddaVisit.events || []).some(e => e.type === 'audio-only' && e.detail && e.detail.participant === window.viddaVisit.self && e.detail.on)`
	p.patient.poll(90*time.Second, "video or the audio-only fallback reaches the patient", `window.viddaVisit.firstFrame > 0 || `+selfAudioOnly)
	if ms := evalIn[float64](p.patient, `window.viddaVisit.firstFrame ? window.viddaVisit.firstFrame - window.viddaVisit.marks.admitted : -1`); ms >= 0 {
		t.Logf("shaped link (%s both ways): admitted → first decoded frame on the patient's side %v", shape, time.Duration(ms)*time.Millisecond)
	} else {
		t.Logf("shaped link (%s both ways): no video frame reached the patient before the audio-only fallback", shape)
	}

	// The fallback: the event arrives and the page says so in words.
	ctx, cancel := context.WithTimeout(p.patient.ctx, 95*time.Second)
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](selfAudioOnly, chromedp.WithPollingTimeout(90*time.Second)))
	cancel()
	if err != nil {
		t.Errorf("the patient's side did not fall back to audio only within 90 s (%v)\nwhat the patient's page saw of its link: %s\nvisit state: %s",
			err, linkFigures(p.patient), visitStateAsClinician(t, s, appointment))
	} else {
		weak := evalIn[string](p.patient, `JSON.parse(document.getElementById('visit-config').textContent).texts.weak`)
		p.patient.poll(5*time.Second, "the page shows the weak-connection notice", `document.getElementById('visit-notice').textContent === `+strconvQuote(weak)+` && !document.getElementById('visit-notice').hidden`)
		t.Logf("audio only after %v of the visit; the patient's link then: %s",
			time.Duration(evalIn[float64](p.patient, `window.viddaVisit.events.find(e => e.type === 'audio-only' && e.detail.participant === window.viddaVisit.self && e.detail.on).t - window.viddaVisit.marks.admitted`))*time.Millisecond,
			linkFigures(p.patient))
		t.Logf("screenshot of the patient's page on the weak link: %s", p.patient.saveScreenshot("visit-weak-link.png"))
	}

	// Sound keeps flowing both ways.
	before := [2]inbound{p.patient.inbound("audio"), p.clinician.inbound("audio")}
	time.Sleep(10 * time.Second)
	after := [2]inbound{p.patient.inbound("audio"), p.clinician.inbound("audio")}
	for i, who := range []string{"patient", "clinician"} {
		n := after[i].Packets - before[i].Packets
		t.Logf("%s received %.0f audio packets in 10 s (%.1f kbit/s)", who, n, (after[i].Bytes-before[i].Bytes)*8/10/1000)
		if n <= 0 {
			t.Errorf("the %s's audio stopped on the weak link", who)
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average: %s", strings.TrimSpace(string(b)))
	}
}

// linkFigures is what the page's own WebRTC stats say of its link: the
// browser's estimate of what it may send, the round trip, and the video
// and audio it received.
func linkFigures(b *visitBrowser) string {
	return evalIn[string](b, `(async () => {
  const out = {};
  const pc = window.viddaVisit.pc;
  if (!pc) return 'no peer';
  (await pc.getStats()).forEach(r => {
    if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
      out.availableOutgoingBitrate = r.availableOutgoingBitrate; out.rtt = r.currentRoundTripTime;
    }
    if (r.type === 'inbound-rtp') {
      out[r.kind] = {packets: r.packetsReceived, lost: r.packetsLost, bytes: r.bytesReceived, framesDecoded: r.framesDecoded};
    }
  });
  out.quality = (window.viddaVisit.events || []).filter(e => e.type === 'quality').map(e => e.detail.participant + '=' + e.detail.quality);
  return JSON.stringify(out);
})()`)
}

// visitStateAsClinician is GET /video/visits/{id} as the demo clinician.
func visitStateAsClinician(t *testing.T, s *viddaServer, appointment string) string {
	t.Helper()
	tok := strings.TrimSpace(string(s.run(t, "token", "--role", "clinician", "--practitioner", "demo-clinician")))
	var st json.RawMessage
	fhirGet(t, s, tok, "/video/visits/"+appointment, &st)
	return string(st)
}
