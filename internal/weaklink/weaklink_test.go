package weaklink_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vidda/vidda/internal/weaklink"
)

var (
	hostAddr = netip.MustParseAddr("10.232.0.1") //nolint:gochecknoglobals // test constants
	nsAddr   = netip.MustParseAddr("10.232.0.2") //nolint:gochecknoglobals // test constants
)

// newLink makes a link for one test, or skips where namespaces cannot be
// made (fails instead under VIDDA_REQUIRE_NETNS, as CI sets it).
func newLink(t *testing.T, up, down weaklink.Shape) *weaklink.Link {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "not root"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "ip is not installed (apt-get install iproute2)"
	}
	if why != "" {
		if os.Getenv("VIDDA_REQUIRE_NETNS") != "" {
			t.Fatalf("VIDDA_REQUIRE_NETNS is set but: %s", why)
		}
		t.Skip(why)
	}
	ns := fmt.Sprintf("vidda-wl-%d", os.Getpid()%100000)
	l, err := weaklink.New(context.Background(), ns, hostAddr, nsAddr, up, down, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// listenIn opens a UDP socket inside the namespace: it is made on a
// thread that entered the namespace, and stays in it afterwards.
func listenIn(t *testing.T, ns string, addr netip.Addr) *net.UDPConn {
	t.Helper()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil { //nolint:gosec // a descriptor
		t.Fatal(err)
	}
	c, lerr := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil { //nolint:gosec // a descriptor
		// The thread stays locked, and ends with this goroutine.
		t.Fatalf("back to the host's namespace: %v", err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		t.Fatal(lerr)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func listenHost(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(hostAddr, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort() //nolint:forcetypeassert // a UDP socket's
}

// Every packet comes back after the delay of both ways, in order.
func TestTheDelayIsAddedBothWaysAndOrderKept(t *testing.T) {
	const delay = 40 * time.Millisecond
	l := newLink(t, weaklink.Shape{Delay: delay}, weaklink.Shape{Delay: delay})
	host, inNS := listenHost(t), listenIn(t, l.NS, nsAddr)
	go func() { // echo
		buf := make([]byte, 2048)
		for {
			n, from, err := host.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = host.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	const count = 40
	sentAt := make([]time.Time, count)
	go func() {
		for i := range count {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(i)) //nolint:gosec // small
			sentAt[i] = time.Now()
			_, _ = inNS.WriteToUDPAddrPort(b[:], addrOf(host))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var rtts []time.Duration
	buf := make([]byte, 64)
	_ = inNS.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range count {
		n, err := inNS.Read(buf)
		if err != nil {
			t.Fatalf("after %d echoes: %v (up %+v, down %+v)", i, err, l.Up(), l.Down())
		}
		if got := int(binary.BigEndian.Uint64(buf[:n])); got != i {
			t.Fatalf("echo %d came back as number %d: out of order", i, got)
		}
		rtts = append(rtts, time.Since(sentAt[i]))
	}
	slices.Sort(rtts)
	if rtts[0] < 2*delay {
		t.Errorf("shortest round trip %v, want at least %v", rtts[0], 2*delay)
	}
	if med := rtts[len(rtts)/2]; med > 2*delay+40*time.Millisecond {
		t.Errorf("median round trip %v, want about %v", med, 2*delay)
	}
	t.Logf("round trips with %v each way: min %v, median %v, max %v", delay, rtts[0], rtts[len(rtts)/2], rtts[len(rtts)-1])
}

// A fifth of what the namespace sends is lost, and only that way.
func TestLossDropsItsShareOneWay(t *testing.T) {
	l := newLink(t, weaklink.Shape{Loss: 0.2}, weaklink.Shape{})
	host, inNS := listenHost(t), listenIn(t, l.NS, nsAddr)
	const count = 1000
	got := make(chan int)
	go func() {
		received := 0
		buf := make([]byte, 64)
		for {
			_ = host.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := host.Read(buf); err != nil {
				got <- received
				return
			}
			received++
		}
	}()
	for i := range count {
		if _, err := inNS.WriteToUDPAddrPort([]byte{byte(i)}, addrOf(host)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // stay under the socket buffers
		}
	}
	received := <-got
	up := l.Up()
	if up.Lost+up.Passed != count || uint64(received) != up.Passed { //nolint:gosec // a count
		t.Fatalf("sent %d, link lost %d and passed %d, host received %d", count, up.Lost, up.Passed, received)
	}
	if received < 740 || received > 860 {
		t.Errorf("received %d of %d with 20%% loss, want about 800", received, count)
	}
	if d := l.Down(); d.Lost != 0 {
		t.Errorf("the other way lost %d", d.Lost)
	}
}

// A burst towards the namespace leaves at the rate: what fits in the
// queue arrives spaced by its size at that rate, the rest is dropped.
func TestTheRateSpacesABurstAndDropsWhatDoesNotFit(t *testing.T) {
	const rate = 300_000
	l := newLink(t, weaklink.Shape{}, weaklink.Shape{Rate: rate, Queue: time.Second})
	host, inNS := listenHost(t), listenIn(t, l.NS, nsAddr)
	const count, size = 100, 1000 // 800 kbit at once: about 2.7 s at the rate
	p := make([]byte, size)
	for range count {
		if _, err := host.WriteToUDPAddrPort(p, addrOf(inNS)); err != nil {
			t.Fatal(err)
		}
	}
	var arrivals []time.Time
	buf := make([]byte, 2048)
	for {
		_ = inNS.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := inNS.Read(buf); err != nil {
			break
		}
		arrivals = append(arrivals, time.Now())
	}
	down := l.Down()
	if down.Passed+down.QueueDrops != count || uint64(len(arrivals)) != down.Passed { //nolint:gosec // a count
		t.Fatalf("sent %d, link passed %d and dropped %d, namespace received %d", count, down.Passed, down.QueueDrops, len(arrivals))
	}
	// A second of queue at 300 kbit/s holds about 36 packets of 1,028
	// bytes (IP and UDP headers included), plus the one being sent.
	if n := len(arrivals); n < 30 || n > 45 {
		t.Fatalf("%d packets got through a 1 s queue at %d bit/s, want about 37", n, rate)
	}
	span := arrivals[len(arrivals)-1].Sub(arrivals[0])
	got := float64(len(arrivals)-1) * (size + 28) * 8 / span.Seconds()
	if got < 0.85*rate || got > 1.15*rate {
		t.Errorf("arrived at %.0f bit/s, want about %d", got, rate)
	}
	t.Logf("%d of %d packets through, at %.0f bit/s", len(arrivals), count, got)
}
