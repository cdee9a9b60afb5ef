package netstack

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// frameLink is the stack's link to the guest: inbound frames are injected
// through the embedded channel endpoint; outbound frames are written
// straight to the VMM's connection (4-byte big-endian length, then the
// frame), so a slow guest applies back-pressure instead of packets being
// dropped from a queue (drops under 100 flows made TCP back off for
// minutes).
type frameLink struct {
	*channel.Endpoint
	mu  sync.Mutex
	w   io.Writer
	buf []byte
	// datagram: each Write is one frame (a packet socket on a TAP), no
	// length prefix.
	datagram bool
}

func newFrameLink() *frameLink {
	return &frameLink{Endpoint: channel.New(16, MTU+header.EthernetMinimumSize, GatewayMAC)}
}

// setWriter sets (or with nil, clears) the connection frames go to, and
// whether it takes whole frames (datagram) or length-prefixed ones.
func (l *frameLink) setWriter(w io.Writer, datagram bool) {
	l.mu.Lock()
	l.w, l.datagram = w, datagram
	l.mu.Unlock()
}

// WritePackets implements stack.LinkEndpoint.
func (l *frameLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return 0, &tcpip.ErrClosedForSend{}
	}
	n := 0
	for _, pkt := range pkts.AsSlice() {
		l.buf = append(l.buf[:0], 0, 0, 0, 0)
		for _, s := range pkt.AsSlices() {
			l.buf = append(l.buf, s...)
		}
		binary.BigEndian.PutUint32(l.buf, uint32(len(l.buf)-4))
		out := l.buf
		if l.datagram {
			out = l.buf[4:]
		}
		if _, err := l.w.Write(out); err != nil && (!l.datagram || errors.Is(err, os.ErrClosed)) {
			l.w = nil
			return n, &tcpip.ErrClosedForSend{}
		}
		// A packet socket's transient errors (the TAP's queue full, no
		// carrier before the VMM attaches) drop the frame, as a wire would.
		n++
	}
	return n, nil
}
