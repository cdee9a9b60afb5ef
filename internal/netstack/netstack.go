// Package netstack is a workspace's guest network: a user-space TCP/IP
// stack (gVisor's tcpip) in the workspace's supervisor that terminates
// every TCP connection, UDP flow and DNS query of the guest and dials out
// from the host process only what the workspace's policy (package
// netpolicy) allows. It is the one enforcement point for both backends:
// QEMU hands it Ethernet frames over a Unix socket (`-netdev stream`,
// each frame prefixed with its 4-byte big-endian length), Firecracker
// through a TAP device in a network namespace.
//
// The guest sees one subnet, 10.0.2.0/24: it is 10.0.2.15, the gateway
// 10.0.2.2 (also host.hearth.internal, which forwards the ports opened
// with allow_host to the host's 127.0.0.1), and the DNS server 10.0.2.3.
// DNS to any address on port 53 is answered by the stack itself.
package netstack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/egress"
	"github.com/hearthvm/hearth/internal/netpolicy"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Guest addressing.
var (
	GuestIP   = netip.MustParseAddr("10.0.2.15")
	GatewayIP = netip.MustParseAddr("10.0.2.2")
	DNSIP     = netip.MustParseAddr("10.0.2.3")
	Subnet    = netip.MustParsePrefix("10.0.2.0/24")
	// GuestMAC is the guest NIC's address (QEMU's default).
	GuestMAC = "52:54:00:12:34:56"
	// GatewayMAC is the stack's address on the guest's link.
	GatewayMAC = tcpip.LinkAddress("\x52\x54\x00\x12\x35\x02")
)

// MTU is the guest link's IP MTU.
const MTU = 1500

// KernelArg tells the guest agent how to configure eth0.
func KernelArg() string {
	return fmt.Sprintf("hearth.net=%s/%d,%s,%s", GuestIP, Subnet.Bits(), GatewayIP, DNSIP)
}

// Config configures a workspace's stack (part of the supervisor config).
type Config struct {
	// PolicyFile is the workspace's persisted netpolicy.Policy; Reload
	// re-reads it.
	PolicyFile string `json:"policy_file"`
	// LogFile receives the network log (JSON lines of api.NetworkEvent).
	LogFile string `json:"log_file"`
	// Upstream is the DNS resolver (host:port) asked for allowed names;
	// empty means $HEARTH_NET_DNS, else the host's /etc/resolv.conf.
	Upstream string `json:"upstream,omitempty"`
	// Broker is the workspace's broker file (package egress): connections
	// to the hosts of its brokered secrets go through the egress proxy.
	// Reload re-reads it too; a missing file means none.
	Broker string `json:"broker,omitempty"`
	// Link is "tap" when the guest's NIC is a TAP in the VMM's own network
	// namespace (package tapns) on a backend that would otherwise use a
	// stream socket; Firecracker always uses a TAP.
	Link string `json:"link,omitempty"`
}

// Stack is one workspace's network stack.
type Stack struct {
	cfg      Config
	log      *slog.Logger
	policy   atomic.Pointer[netpolicy.Policy]
	broker   atomic.Pointer[egress.Proxy]
	s        *stack.Stack
	link     *frameLink
	events   *eventLog
	pins     *pinTable
	loop     *loopMap
	cache    *dnsCache
	upstream string
	// hostAddr is where allow_host ports go (127.0.0.1).
	hostAddr  string
	dialer    net.Dialer
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	frameSock string
}

const nicID = 1

// New builds a stack enforcing the policy in cfg.PolicyFile.
func New(cfg Config, log *slog.Logger) (*Stack, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pol, err := netpolicy.Load(cfg.PolicyFile)
	if err != nil {
		return nil, err
	}
	up := cfg.Upstream
	if up == "" {
		up = os.Getenv("HEARTH_NET_DNS")
	}
	if up == "" {
		up = systemResolver()
	}
	if up == "" {
		return nil, fmt.Errorf("no upstream DNS resolver: /etc/resolv.conf names none and HEARTH_NET_DNS is unset")
	}
	if _, _, err := net.SplitHostPort(up); err != nil {
		up = net.JoinHostPort(up, "53")
	}
	brk, err := egress.Load(cfg.Broker)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Stack{cfg: cfg, log: log, upstream: up, hostAddr: "127.0.0.1", events: openEventLog(cfg.LogFile),
		pins: newPinTable(4096), loop: newLoopMap(), cache: newDNSCache(1024), ctx: ctx, cancel: cancel}
	n.dialer.Timeout = 10 * time.Second
	n.policy.Store(pol)
	n.broker.Store(brk)

	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	n.s = s
	n.link = newFrameLink()
	if terr := s.CreateNIC(nicID, ethernet.New(n.link)); terr != nil {
		cancel()
		return nil, fmt.Errorf("create NIC: %s", terr)
	}
	for _, a := range []netip.Addr{GatewayIP, DNSIP} {
		pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(a.As4()), PrefixLen: Subnet.Bits()}}
		if terr := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); terr != nil {
			cancel()
			return nil, fmt.Errorf("add address %s: %s", a, terr)
		}
	}
	// Accept traffic for every destination: the guest's connections are
	// terminated here whatever address they aim at.
	s.SetPromiscuousMode(nicID, true)
	s.SetSpoofing(nicID, true)
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nicID}})
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	// Per-connection buffers: gVisor's defaults (1 MiB each way) let 100
	// flows from a fast host server park over 100 MiB in the supervisor
	// while the guest reads slowly; a quarter of that still fills the
	// virtual link.
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: tcpBuffer, Max: 4 << 20}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &snd)
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: tcpBuffer, Max: 4 << 20}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv)

	tf := tcp.NewForwarder(s, 0, 512, n.onTCP)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, tf.HandlePacket)
	uf := udp.NewForwarder(s, n.onUDP)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, uf.HandlePacket)
	return n, nil
}

// tcpBuffer is the default send and receive buffer of a guest connection.
const tcpBuffer = 256 << 10

// systemResolver is the first nameserver of the host's /etc/resolv.conf.
func systemResolver() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			return f[1]
		}
	}
	return ""
}

// Policy is the policy enforced now.
func (n *Stack) Policy() *netpolicy.Policy { return n.policy.Load() }

// SetPolicy replaces the policy; new connections and queries follow it
// at once (flows already open are left alone).
func (n *Stack) SetPolicy(p *netpolicy.Policy) { n.policy.Store(p) }

// Reload re-reads the policy file and the broker file.
func (n *Stack) Reload() error {
	p, err := netpolicy.Load(n.cfg.PolicyFile)
	if err != nil {
		return err
	}
	brk, err := egress.Load(n.cfg.Broker)
	if err != nil {
		return err
	}
	n.SetPolicy(p)
	n.broker.Store(brk)
	n.log.Info("network policy reloaded", "policy", p.String())
	return nil
}

// Close stops the stack and every flow through it.
func (n *Stack) Close() {
	n.cancel()
	n.link.Close()
	n.s.Close()
	n.events.close()
}

// ServeFrames pumps Ethernet frames between conn (4-byte big-endian
// length, then the frame: QEMU's `-netdev stream`) and the stack until
// conn or the stack closes.
func (n *Stack) ServeFrames(ctx context.Context, conn io.ReadWriteCloser) error {
	ctx, cancel := n.closeOnEnd(ctx, conn)
	defer cancel()
	n.link.setWriter(conn, false)
	defer n.link.setWriter(nil, false)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return nil
			}
			return err
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if size > 65536 {
			return fmt.Errorf("frame of %d bytes: not a QEMU stream", size)
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(conn, frame); err != nil {
			return err
		}
		if size < header.EthernetMinimumSize {
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
		n.link.InjectInbound(0, pkt)
		pkt.DecRef()
	}
}

// event records one line of the network log.
func (n *Stack) event(e api.NetworkEvent) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	n.events.write(e)
	n.log.Debug("network", "kind", e.Kind, "dest", e.Dest, "name", e.Name, "action", e.Action, "rule", e.Rule, "detail", e.Detail)
}

func addrOf(a tcpip.Address) netip.Addr {
	if a.Len() == 4 {
		return netip.AddrFrom4(a.As4())
	}
	return netip.AddrFrom16(a.As16())
}

// ServePackets pumps Ethernet frames between a packet socket on the VMM's
// TAP device (package tapns: one frame per read and per write) and the stack
// until the socket or the stack closes. It takes ownership of sock.
func (n *Stack) ServePackets(ctx context.Context, sock *os.File) error {
	ctx, cancel := n.closeOnEnd(ctx, sock)
	defer cancel()
	rc, err := sock.SyscallConn()
	if err != nil {
		return err
	}
	n.link.setWriter(sock, true)
	defer n.link.setWriter(nil, false)
	buf := make([]byte, 65536)
	for {
		var size int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			size, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read from the TAP device: %w", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own frames, if the kernel lacks PACKET_IGNORE_OUTGOING
		}
		if size < header.EthernetMinimumSize || size > len(buf) {
			continue // runt, or a frame larger than any MTU (guest offloads left on)
		}
		frame := make([]byte, size)
		copy(frame, buf[:size])
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
		n.link.InjectInbound(0, pkt)
		pkt.DecRef()
	}
}

// closeOnEnd closes c when ctx, the returned context's cancel, or the stack
// ends.
func (n *Stack) closeOnEnd(ctx context.Context, c io.Closer) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-ctx.Done():
		case <-n.ctx.Done():
		}
		c.Close()
	}()
	return ctx, cancel
}
