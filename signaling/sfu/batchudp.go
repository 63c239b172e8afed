package sfu

import (
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
)

// batchUDP is the media socket as the ICE UDP mux sees it: reads take
// every datagram the kernel has queued in one recvmmsg (up to
// readBatch) and hand them out one by one, so a loaded SFU makes one
// read system call per batch instead of one per packet. A lone packet
// is returned as soon as it arrives: nothing waits for a batch to
// fill. Writes go straight to the socket.
//
// It implements ice.AddrPortReaderWriter, which the mux prefers to
// ReadFrom and WriteTo.
type batchUDP struct {
	*net.UDPConn

	batch *ipv4.PacketConn // ReadBatch parses IPv4 and IPv6 source addresses alike

	mu   sync.Mutex // one reader (the mux's worker); the lock only guards misuse
	msgs []ipv4.Message
	next int // the next message of msgs to hand out
	n    int // messages read by the last batch
}

const (
	readBatch = 64
	// readMTU is what the ICE mux itself reads into: room for any
	// datagram a WebRTC peer sends.
	readMTU = 8192
)

func newBatchUDP(c *net.UDPConn) *batchUDP {
	b := &batchUDP{UDPConn: c, batch: ipv4.NewPacketConn(c), msgs: make([]ipv4.Message, readBatch)}
	for i := range b.msgs {
		b.msgs[i].Buffers = [][]byte{make([]byte, readMTU)}
	}
	return b
}

// ReadFromAddrPort returns the next queued datagram, reading a new batch
// when the last one is used up.
func (b *batchUDP) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.next >= b.n {
		n, err := b.batch.ReadBatch(b.msgs, 0)
		if err != nil {
			return 0, netip.AddrPort{}, err
		}
		b.next, b.n = 0, n
	}
	m := &b.msgs[b.next]
	b.next++
	n := copy(p, m.Buffers[0][:m.N])
	ua, ok := m.Addr.(*net.UDPAddr)
	if !ok {
		return n, netip.AddrPort{}, nil
	}
	return n, ua.AddrPort(), nil
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (b *batchUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	n, ap, err := b.ReadFromAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// WriteToAddrPort writes one datagram.
func (b *batchUDP) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	return b.WriteToUDPAddrPort(p, addr)
}
