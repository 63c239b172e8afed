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
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/vidda/vidda/internal/weaklink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	hostAddr = netip.MustParseAddr("10.232.0.1") //nolint:gochecknoglobals // test constants
	nsAddr   = netip.MustParseAddr("10.232.0.2") //nolint:gochecknoglobals // test constants
)

// canMakeLinks skips (or fails, under VIDDA_REQUIRE_NETNS, as CI sets
// it) where namespaces and TUN devices cannot be made.
func canMakeLinks(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "not root"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "ip is not installed (apt-get install iproute2)"
	} else if _, err := os.Stat("/dev/net/tun"); err != nil {
		why = "no /dev/net/tun (a kernel without CONFIG_TUN, or a container without the device)"
	}
	if why == "" {
		return
	}
	if os.Getenv("VIDDA_REQUIRE_NETNS") != "" {
		t.Fatalf("VIDDA_REQUIRE_NETNS is set but: %s", why)
	}
	t.Skip(why)
}

func nsName() string { return fmt.Sprintf("vidda-wl-%d", os.Getpid()%100000) }

// newLink makes a link for one test; it goes with the test.
func newLink(t *testing.T, up, down weaklink.Shape) *weaklink.Link {
	t.Helper()
	canMakeLinks(t)
	l, err := weaklink.New(context.Background(), weaklink.Config{NS: nsName(), HostAddr: hostAddr, NSAddr: nsAddr, Up: up, Down: down, Seed: 7})
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
	_ = c.SetReadBuffer(4 << 20)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func listenHost(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(hostAddr, 0)))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort() //nolint:forcetypeassert // a UDP socket's
}

// numbered is datagram i of size bytes (at least 8), numbered at the start.
func numbered(i, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b, uint64(i)) //nolint:gosec // small
	return b
}

// receive reads datagrams from c until none comes for idle, returning
// their numbers and arrival times.
func receive(c *net.UDPConn, idle time.Duration) (nums []int, at []time.Time) {
	buf := make([]byte, 2048)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		n, err := c.Read(buf)
		if err != nil {
			return nums, at
		}
		if n >= 8 {
			nums = append(nums, int(binary.BigEndian.Uint64(buf[:8]))) //nolint:gosec // small
			at = append(at, time.Now())
		}
	}
}

// Every packet comes back after the delay of both ways, in order.
func TestTheDelayIsAddedBothWaysAndOrderKept(t *testing.T) {
	const delay = 40 * time.Millisecond
	l := newLink(t, weaklink.Shape{Delay: delay}, weaklink.Shape{Delay: delay})
	host, inNS := listenHost(t), listenIn(t, l.NS, nsAddr)
	var wg sync.WaitGroup
	defer func() { _ = host.Close(); wg.Wait() }()
	wg.Go(func() { // echo
		buf := make([]byte, 2048)
		for {
			n, from, err := host.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = host.WriteToUDPAddrPort(buf[:n], from)
		}
	})
	const count = 40
	sentAt := make([]time.Time, count)
	var mu sync.Mutex
	wg.Go(func() {
		for i := range count {
			mu.Lock()
			sentAt[i] = time.Now()
			mu.Unlock()
			_, _ = inNS.WriteToUDPAddrPort(numbered(i, 8), addrOf(host))
			time.Sleep(5 * time.Millisecond)
		}
	})
	var rtts []time.Duration
	buf := make([]byte, 64)
	_ = inNS.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range count {
		n, err := inNS.Read(buf)
		if err != nil {
			t.Fatalf("after %d echoes: %v (up %+v, down %+v)", i, err, l.Up(), l.Down())
		}
		if got := int(binary.BigEndian.Uint64(buf[:n])); got != i { //nolint:gosec // small
			t.Fatalf("echo %d came back as number %d: out of order", i, got)
		}
		mu.Lock()
		rtts = append(rtts, time.Since(sentAt[i]))
		mu.Unlock()
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

// A fifth of what the namespace sends is lost, and nothing of what it
// receives.
func TestLossDropsItsShareOneWay(t *testing.T) {
	l := newLink(t, weaklink.Shape{Loss: 0.2}, weaklink.Shape{})
	host, inNS := listenHost(t), listenIn(t, l.NS, nsAddr)
	const count = 1000
	got := make(chan []int, 1)
	go func() { n, _ := receive(host, time.Second); got <- n }()
	for i := range count {
		if _, err := inNS.WriteToUDPAddrPort(numbered(i, 8), addrOf(host)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // stay under the TUN device's queue
		}
	}
	received := len(<-got)
	up := l.Up()
	if up.Lost+up.Passed != count || uint64(received) != up.Passed { //nolint:gosec // a count
		t.Fatalf("sent %d, link %+v, host received %d", count, up, received)
	}
	if received < 740 || received > 860 {
		t.Errorf("received %d of %d with 20%% loss, want about 800", received, count)
	}

	go func() { n, _ := receive(inNS, time.Second); got <- n }()
	for i := range 200 {
		if _, err := host.WriteToUDPAddrPort(numbered(i, 8), addrOf(inNS)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if n, d := len(<-got), l.Down(); n != 200 || d.Lost != 0 || d.Passed != 200 {
		t.Errorf("the other way: %d of 200 arrived, link %+v", n, d)
	}
}

// A burst towards the namespace leaves at the rate, in order: what fits
// in the queue arrives spaced by its size at that rate, the rest is
// dropped.
func TestTheRateSpacesABurstAndDropsWhatDoesNotFit(t *testing.T) {
	const rate = 300_000
	l := newLink(t, weaklink.Shape{}, weaklink.Shape{Rate: rate, Queue: time.Second})
	host, inNS := listenHost(t), listenIn(t, l.NS, nsAddr)
	const count, size = 100, 1000 // 800 kbit at once: about 2.7 s at the rate
	for i := range count {
		if _, err := host.WriteToUDPAddrPort(numbered(i, size), addrOf(inNS)); err != nil {
			t.Fatal(err)
		}
	}
	nums, arrivals := receive(inNS, time.Second)
	down := l.Down()
	if down.Passed+down.QueueDrops != count || uint64(len(arrivals)) != down.Passed { //nolint:gosec // a count
		t.Fatalf("sent %d, link %+v, namespace received %d", count, down, len(arrivals))
	}
	if !slices.IsSorted(nums) {
		t.Errorf("arrived out of order: %v", nums)
	}
	// A second of queue at 300 kbit/s holds about 36 packets of 1,028
	// bytes (IP and UDP headers included), plus the one being sent.
	if n := len(arrivals); n < 30 || n > 45 {
		t.Fatalf("%d packets got through a 1 s queue at %d bit/s, want about 37", n, rate)
	}
	span := arrivals[len(arrivals)-1].Sub(arrivals[0])
	bps := float64(len(arrivals)-1) * (size + 28) * 8 / span.Seconds()
	if bps < 0.85*rate || bps > 1.15*rate {
		t.Errorf("arrived at %.0f bit/s, want about %d", bps, rate)
	}
	t.Logf("%d of %d packets through, at %.0f bit/s", len(arrivals), count, bps)
}

// A second link of the same namespace is refused and leaves the first
// alone; Close, under traffic, removes the namespace and both devices.
func TestCloseLeavesNothingBehind(t *testing.T) {
	canMakeLinks(t)
	ctx := context.Background()
	cfg := weaklink.Config{NS: nsName(), HostAddr: hostAddr, NSAddr: nsAddr, Up: weaklink.Shape{Delay: time.Millisecond}}
	l, err := weaklink.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := weaklink.New(ctx, cfg); err == nil {
		t.Fatal("a second link of the same namespace was made")
	}
	hostIf, nsIf := l.Devices()
	exists := func(args ...string) bool { return exec.Command(args[0], args[1:]...).Run() == nil } //nolint:gosec // fixed commands
	if !exists("ip", "link", "show", hostIf) || !exists("ip", "netns", "exec", l.NS, "ip", "link", "show", nsIf) {
		t.Fatal("the refused second link took the first one's devices")
	}

	host, inNS := listenHost(t), listenIn(t, l.NS, nsAddr)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			if _, err := inNS.WriteToUDPAddrPort(numbered(i, 200), addrOf(host)); err != nil {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	})
	time.Sleep(100 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_ = inNS.Close()
	wg.Wait()
	if l.Up().Passed == 0 {
		t.Error("nothing passed before Close")
	}
	if exists("ip", "link", "show", hostIf) {
		t.Errorf("%s is still there after Close", hostIf)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), l.NS) {
		t.Errorf("namespace %s is still there after Close", l.NS)
	}
}
