// Package weaklink joins a network namespace to the host through a poor
// link emulated in user space: the delay, random loss and rate limit of
// tc netem, for kernels built without sch_netem.
//
// The namespace and the host each get a point-to-point TUN device; a
// pump per direction reads what one side's stack sends, drops a share of
// it at random, queues the rest behind the rate limit (tail drop once a
// packet would wait longer than the queue allows, as tbf's latency
// does), and hands it to the other side's stack after the delay. The
// order of packets is kept. It needs root (CAP_NET_ADMIN), iproute2's ip
// and /dev/net/tun (a kernel with CONFIG_TUN).
//
// It is test support: the video visit's link test runs the patient's
// browser in such a namespace.
package weaklink

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Shape is what one direction of the link does to packets.
type Shape struct {
	Delay time.Duration // added to every packet
	Loss  float64       // share of packets dropped at random, 0 to 1
	Rate  int64         // bits per second; 0 is unlimited
	// Queue is the longest a packet may wait for the rate before it is
	// dropped instead (default 300 ms).
	Queue time.Duration
}

// String is the shape in tc netem's words.
func (s Shape) String() string {
	var parts []string
	if s.Delay > 0 {
		parts = append(parts, "delay "+s.Delay.String())
	}
	if s.Loss > 0 {
		parts = append(parts, "loss "+strconv.FormatFloat(s.Loss*100, 'g', 4, 64)+"%")
	}
	switch {
	case s.Rate >= 1000:
		parts = append(parts, "rate "+strconv.FormatFloat(float64(s.Rate)/1000, 'g', 6, 64)+"kbit")
	case s.Rate > 0:
		parts = append(parts, "rate "+strconv.FormatInt(s.Rate, 10)+"bit")
	}
	if len(parts) == 0 {
		return "no impairment"
	}
	return strings.Join(parts, " ")
}

// Counts are what one direction did with the packets it was given:
// each is passed on, lost at random, dropped from a full queue, or
// refused by the other side's device.
type Counts struct {
	Passed, Lost, QueueDrops, WriteErrors uint64
}

// Config is one link: the namespace, the two addresses, and the shape of
// each direction.
type Config struct {
	// NS is the network namespace to make; it must not exist.
	NS string
	// HostAddr is the host's end, NSAddr the namespace's; each is the
	// other's only neighbour.
	HostAddr, NSAddr netip.Addr
	// Up shapes what the namespace sends, Down what it receives.
	Up, Down Shape
	// Seed makes the random losses repeatable.
	Seed uint64
}

// Link is a namespace joined to the host by an emulated link. Close
// removes both.
type Link struct {
	// NS is the network namespace's name (ip netns exec NS ...).
	NS               string
	HostAddr, NSAddr netip.Addr

	hostTun, nsTun *os.File
	hostIf         string
	up, down       direction
	wg             sync.WaitGroup
	closing        sync.Once
}

// direction is one way's pump and its counts.
type direction struct {
	shape                                 Shape
	passed, lost, queueDrops, writeErrors atomic.Uint64
}

// New makes the namespace (up, with loopback) and joins it to the host.
func New(ctx context.Context, cfg Config) (l *Link, err error) {
	ns, hostAddr, nsAddr := cfg.NS, cfg.HostAddr, cfg.NSAddr
	// Device names (at most 15 bytes) from the namespace's name, so that
	// links of different namespaces never share one.
	h := fnv.New32a()
	_, _ = h.Write([]byte(ns))
	suffix := fmt.Sprintf("%08x", h.Sum32())
	l = &Link{NS: ns, HostAddr: hostAddr, NSAddr: nsAddr, hostIf: "wlh" + suffix}
	l.up.shape, l.down.shape = cfg.Up.withDefaults(), cfg.Down.withDefaults()
	nsIf := "wln" + suffix
	if err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = l.close(context.WithoutCancel(ctx))
		}
	}()
	if l.hostTun, err = openTUN(l.hostIf); err != nil {
		return nil, err
	}
	if l.nsTun, err = openTUN(nsIf); err != nil {
		return nil, err
	}
	inNS := func(args ...string) error {
		return run(ctx, append([]string{"ip", "netns", "exec", ns}, args...)...)
	}
	// An IPv4 link keeps IPv6 off its devices: IPv6 brings its own
	// chatter (router and multicast listener messages) onto the link.
	noV6 := func(dev string) string {
		return "f=/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6; [ ! -e $f ] || echo 1 > $f"
	}
	for _, step := range []func() error{
		func() error { return run(ctx, "ip", "link", "set", nsIf, "netns", ns) },
		func() error {
			if !hostAddr.Is4() {
				return nil
			}
			if err := run(ctx, "sh", "-c", noV6(l.hostIf)); err != nil {
				return err
			}
			return inNS("sh", "-c", noV6(nsIf))
		},
		func() error {
			return run(ctx, "ip", "addr", "add", hostAddr.String(), "peer", nsAddr.String(), "dev", l.hostIf)
		},
		func() error { return run(ctx, "ip", "link", "set", l.hostIf, "up") },
		func() error {
			return inNS("ip", "addr", "add", nsAddr.String(), "peer", hostAddr.String(), "dev", nsIf)
		},
		func() error { return inNS("ip", "link", "set", nsIf, "up") },
		func() error { return inNS("ip", "link", "set", "lo", "up") },
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	l.wg.Add(2)
	go l.pump(l.nsTun, l.hostTun, &l.up, rand.New(rand.NewPCG(cfg.Seed, 1)))   //nolint:gosec // loss emulation, not security
	go l.pump(l.hostTun, l.nsTun, &l.down, rand.New(rand.NewPCG(cfg.Seed, 2))) //nolint:gosec // loss emulation, not security
	return l, nil
}

func (s Shape) withDefaults() Shape {
	if s.Queue <= 0 {
		s.Queue = 300 * time.Millisecond
	}
	return s
}

// Devices are the names of the host's and the namespace's TUN device.
func (l *Link) Devices() (host, ns string) {
	return l.hostIf, "wln" + strings.TrimPrefix(l.hostIf, "wlh")
}

// Up and Down are the counts of each direction so far.
func (l *Link) Up() Counts   { return l.up.counts() }
func (l *Link) Down() Counts { return l.down.counts() }

func (d *direction) counts() Counts {
	return Counts{Passed: d.passed.Load(), Lost: d.lost.Load(), QueueDrops: d.queueDrops.Load(), WriteErrors: d.writeErrors.Load()}
}

// Close stops the pumps and removes the devices and the namespace.
func (l *Link) Close() error { return l.close(context.Background()) }

func (l *Link) close(ctx context.Context) error {
	var err error
	l.closing.Do(func() {
		for _, f := range []*os.File{l.hostTun, l.nsTun} {
			if f != nil {
				_ = f.Close() // a TUN device goes with its last file
			}
		}
		l.wg.Wait()
		err = run(ctx, "ip", "netns", "del", l.NS)
	})
	return err
}

// packet is one datagram on its way, and when it arrives.
type packet struct {
	b  []byte
	at time.Time
}

// pump moves packets from in to out through d's shape until in is
// closed. Packets leave in order: a packet's arrival is its departure
// behind the ones queued before it, plus the delay.
func (l *Link) pump(in, out *os.File, d *direction, rng *rand.Rand) {
	defer l.wg.Done()
	queue := make(chan packet, 4096)
	var wg sync.WaitGroup
	wg.Go(func() {
		for p := range queue {
			if wait := time.Until(p.at); wait > 0 {
				time.Sleep(wait)
			}
			if _, err := out.Write(p.b); err != nil {
				if errors.Is(err, os.ErrClosed) {
					for range queue { //nolint:revive // drain: the link is closing
					}
					return
				}
				d.writeErrors.Add(1) // the other side is down: lost, as on a wire
				continue
			}
			d.passed.Add(1)
		}
	})
	defer func() { close(queue); wg.Wait() }()
	var free time.Time // when the rate has sent everything queued so far
	buf := make([]byte, 65536)
	for {
		n, err := in.Read(buf)
		if err != nil {
			return
		}
		if d.shape.Loss > 0 && rng.Float64() < d.shape.Loss {
			d.lost.Add(1)
			continue
		}
		now := time.Now()
		sent := now
		if d.shape.Rate > 0 {
			start := now
			if free.After(now) {
				start = free
			}
			if start.Sub(now) > d.shape.Queue {
				d.queueDrops.Add(1)
				continue
			}
			sent = start.Add(time.Duration(int64(n) * 8 * int64(time.Second) / d.shape.Rate))
		}
		select {
		case queue <- packet{b: append([]byte(nil), buf[:n]...), at: sent.Add(d.shape.Delay)}:
			free = sent // only a packet that is sent uses the rate
		default:
			d.queueDrops.Add(1)
		}
	}
}

// openTUN makes TUN device name (no packet information header) and
// returns it as a file the runtime's poller reads and writes.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("weaklink: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("weaklink: %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("weaklink: make TUN device %s: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("weaklink: %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tun:"+name), nil //nolint:gosec // a file descriptor is not negative
}

func run(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput() //nolint:gosec // fixed commands with our own names
	if err != nil {
		return fmt.Errorf("weaklink: %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
