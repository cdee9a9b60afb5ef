package netstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/netpolicy"
	"github.com/hearthvm/hearth/internal/netstack/dnstest"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// testGuest is a second gVisor stack playing the guest, linked to the
// Stack under test by the same frame protocol QEMU speaks.
type testGuest struct {
	s *stack.Stack
}

func newTestGuest(t *testing.T, n *Stack) *testGuest {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	hf, gf := os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "guest")
	hostSide, err := net.FileConn(hf)
	if err != nil {
		t.Fatal(err)
	}
	guestSide, err := net.FileConn(gf)
	if err != nil {
		t.Fatal(err)
	}
	hf.Close() // FileConn dups them
	gf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go n.ServeFrames(ctx, hostSide)

	gs := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	ep := channel.New(1024, MTU+header.EthernetMinimumSize, tcpip.LinkAddress("\x52\x54\x00\x12\x34\x56"))
	if terr := gs.CreateNIC(1, ethernet.New(ep)); terr != nil {
		t.Fatal(terr)
	}
	gs.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(GuestIP.As4()), PrefixLen: 24}}, stack.AddressProperties{})
	sub, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{10, 0, 2, 0}), tcpip.MaskFromBytes([]byte{255, 255, 255, 0}))
	gs.SetRouteTable([]tcpip.Route{{Destination: sub, NIC: 1}, {Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(GatewayIP.As4()), NIC: 1}})
	go func() {
		for {
			pkt := ep.ReadContext(ctx)
			if pkt == nil {
				return
			}
			var b []byte
			for _, s := range pkt.AsSlices() {
				b = append(b, s...)
			}
			pkt.DecRef()
			if _, err := guestSide.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)); err != nil {
				return
			}
		}
	}()
	go func() {
		var hdr [4]byte
		for {
			if _, err := io.ReadFull(guestSide, hdr[:]); err != nil {
				return
			}
			f := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(guestSide, f); err != nil {
				return
			}
			pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(f)})
			ep.InjectInbound(0, pkt)
			pkt.DecRef()
		}
	}()
	t.Cleanup(func() {
		cancel()
		guestSide.Close()
		gs.Close()
	})
	return &testGuest{s: gs}
}

func full(a netip.Addr, port uint16) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(a.As4()), Port: port}
}

// lookup asks the stack's DNS for name's A record from the guest.
func (g *testGuest) lookup(t *testing.T, name string) (rcode int, ips []netip.Addr) {
	t.Helper()
	c, err := gonet.DialUDP(g.s, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(DNSIP.As4()), Port: 53}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := &question{name: name, qtype: typeA}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(q.query(7)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	k, err := c.Read(buf)
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	_, rcode, recs, err := parseAnswer(buf[:k])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.rtype == typeA {
			ips = append(ips, netip.AddrFrom4([4]byte(r.data)))
		}
	}
	return rcode, ips
}

func (g *testGuest) dial(a netip.Addr, port uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return gonet.DialContextTCP(ctx, g.s, full(a, port), ipv4.ProtocolNumber)
}

// serve listens on addr and answers each connection with banner, or
// echoes when banner is empty.
func serve(t *testing.T, addr, banner string) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if banner != "" {
					io.WriteString(c, banner)
					return
				}
				// Plain reads and writes: io.Copy(c, c) would splice a
				// socket into itself.
				io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 32<<10))
			}()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func newTestStack(t *testing.T, p netpolicy.Policy, dns *dnstest.Server) (*Stack, string) {
	t.Helper()
	dir := t.TempDir()
	pf := filepath.Join(dir, "network.json")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := netpolicy.Save(pf, &p); err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{PolicyFile: pf, LogFile: filepath.Join(dir, "network.log"), Upstream: dns.Addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n, dir
}

func refused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "refused")
}

func TestEgressPolicy(t *testing.T) {
	allowedIP, deniedIP := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	allowedPort := serve(t, "127.0.0.2:0", "allowed-server")
	deniedPort := serve(t, "127.0.0.3:0", "denied-server")
	loopPort := serve(t, "127.0.0.1:0", "host-loopback")
	otherHostPort := serve(t, "127.0.0.1:0", "other-host-port")
	dns := dnstest.Start(t, map[string]netip.Addr{
		"allowed.test": allowedIP, "denied.test": deniedIP, "rebind.test": netip.MustParseAddr("127.0.0.1"),
	})
	pol := netpolicy.Policy{Mode: netpolicy.ModeEgress, AllowHost: []int{int(loopPort)}, Rules: []netpolicy.Rule{
		netpolicy.Allow("allowed.test"), netpolicy.Allow("rebind.test"), netpolicy.Allow("127.0.0.2/32"),
	}}
	n, dir := newTestStack(t, pol, dns)
	g := newTestGuest(t, n)

	read := func(c net.Conn) string {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}

	// allowed.test resolves (to the guest's stand-in for the host's
	// 127.0.0.2) and its server answers.
	rc, ips := g.lookup(t, "allowed.test")
	if rc != rcodeOK || len(ips) != 1 || !LoopbackPool.Contains(ips[0]) {
		t.Fatalf("allowed.test: rcode %d, %v", rc, ips)
	}
	c, err := g.dial(ips[0], allowedPort)
	if err != nil {
		t.Fatalf("dial allowed.test's server: %v", err)
	}
	if got := read(c); got != "allowed-server" {
		t.Fatalf("allowed server said %q", got)
	}

	// denied.test: NXDOMAIN from the stack, never asked upstream.
	if rc, ips := g.lookup(t, "denied.test"); rc != rcodeNXDomain || len(ips) != 0 {
		t.Fatalf("denied.test: rcode %d, %v; want NXDOMAIN", rc, ips)
	}
	// Exfiltration through long labels under a denied name.
	secret := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".x1.denied.test"
	if rc, _ := g.lookup(t, secret); rc != rcodeNXDomain {
		t.Fatalf("exfil name: rcode %d, want NXDOMAIN", rc)
	}
	if dns.AskedAbout("denied.test") {
		t.Fatalf("the upstream resolver was asked about a denied name: %v", dns.Asked())
	}

	// Rebinding: a name answering the host's loopback gets no answer.
	if rc, ips := g.lookup(t, "rebind.test"); rc != rcodeNXDomain || len(ips) != 0 {
		t.Fatalf("rebind.test: rcode %d, %v; want NXDOMAIN (answer dropped)", rc, ips)
	}

	// allow_host: one host port through the gateway, no other (refused
	// at once: a RST).
	if rc, ips := g.lookup(t, netpolicy.HostName); rc != rcodeOK || len(ips) != 1 || ips[0] != GatewayIP {
		t.Fatalf("%s: rcode %d, %v", netpolicy.HostName, rc, ips)
	}
	c, err = g.dial(GatewayIP, loopPort)
	if err != nil {
		t.Fatalf("dial allow_host port: %v", err)
	}
	if got := read(c); got != "host-loopback" {
		t.Fatalf("host port said %q", got)
	}
	start := time.Now()
	if _, err := g.dial(GatewayIP, otherHostPort); !refused(err) {
		t.Fatalf("dial another host port: %v, want refused", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("denial took %v, want a fast RST", d)
	}

	// A live change: denied.test allowed without a restart.
	save := func() {
		t.Helper()
		if err := netpolicy.Save(filepath.Join(dir, "network.json"), &pol); err != nil {
			t.Fatal(err)
		}
		if err := n.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	base := pol.Rules
	pol.Rules = append(append([]netpolicy.Rule(nil), base...), netpolicy.Allow("denied.test"), netpolicy.Allow("127.0.0.3/32"))
	save()
	rc, deniedIPs := g.lookup(t, "denied.test")
	if rc != rcodeOK || len(deniedIPs) != 1 {
		t.Fatalf("after the change denied.test: rcode %d, %v", rc, deniedIPs)
	}
	c, err = g.dial(deniedIPs[0], deniedPort)
	if err != nil {
		t.Fatalf("after the change: %v", err)
	}
	if got := read(c); got != "denied-server" {
		t.Fatalf("denied server said %q", got)
	}
	// Denied again: its address as a literal is refused.
	pol.Rules = base
	save()
	if _, err := g.dial(deniedIPs[0], deniedPort); !refused(err) {
		t.Fatalf("dial the denied server's address literal: %v, want refused", err)
	}

	// The log says what happened.
	log, _ := os.ReadFile(filepath.Join(dir, "network.log"))
	for _, want := range []string{`"dest":"denied.test","action":"denied"`, `"action":"denied","rule":"default deny"`, `"action":"allowed","rule":"allow allowed.test"`, "rebinding", `"rule":"allow_host ` + strconv.Itoa(int(loopPort))} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("network log lacks %s:\n%s", want, log)
		}
	}
}

func TestNoneDeniesEverything(t *testing.T) {
	dns := dnstest.Start(t, map[string]netip.Addr{"allowed.test": netip.MustParseAddr("127.0.0.2")})
	port := serve(t, "127.0.0.2:0", "x")
	n, _ := newTestStack(t, netpolicy.Policy{Mode: netpolicy.ModeEgress, Rules: []netpolicy.Rule{netpolicy.Allow("127.0.0.2/32")}}, dns)
	g := newTestGuest(t, n)
	n.SetPolicy(&netpolicy.Policy{Mode: netpolicy.ModeNone})
	if _, err := g.dial(GatewayIP, port); !refused(err) {
		t.Fatalf("mode none: dial %v, want refused", err)
	}
	if len(dns.Asked()) != 0 {
		t.Fatalf("mode none asked upstream: %v", dns.Asked())
	}
}

func TestConcurrentFlows(t *testing.T) {
	dns := dnstest.Start(t, map[string]netip.Addr{"echo.test": netip.MustParseAddr("127.0.0.2")})
	port := serve(t, "127.0.0.2:0", "")
	n, dir := newTestStack(t, netpolicy.Policy{Mode: netpolicy.ModeEgress, Rules: []netpolicy.Rule{netpolicy.Allow("echo.test:1-65535/tcp"), netpolicy.Allow("127.0.0.2/32")}}, dns)
	g := newTestGuest(t, n)
	_, ips := g.lookup(t, "echo.test")
	if len(ips) != 1 {
		t.Fatalf("echo.test: %v", ips)
	}
	const flows, size = 100, 64 << 10
	// One connection first: the guest stack resolves the gateway's MAC.
	if c, err := g.dial(ips[0], port); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	var wg sync.WaitGroup
	errs := make(chan error, flows)
	for i := 0; i < flows; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, size)
			rand.Read(payload)
			c, err := g.dial(ips[0], port)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(payload)
				c.(*gonet.TCPConn).CloseWrite()
				werr <- err
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				errs <- err
				return
			}
			if err := <-werr; err != nil {
				errs <- fmt.Errorf("flow %d: write: %v", i, err)
			}
			if sha256.Sum256(got) != sha256.Sum256(payload) {
				errs <- fmt.Errorf("flow %d: %d bytes back, checksum differs", i, len(got))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every flow is logged with its bytes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		log, _ := os.ReadFile(filepath.Join(dir, "network.log"))
		if k := bytes.Count(log, []byte(fmt.Sprintf(`"bytes_out":%d,"bytes_in":%d`, size, size))); k >= flows {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d of %d flows logged with their bytes:\n%s", k, flows, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSniff(t *testing.T) {
	a, b := net.Pipe()
	go tls.Client(a, &tls.Config{ServerName: "Pkg.Example.test"}).Handshake()
	buf := make([]byte, 16<<10)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, err := b.Read(buf)
	a.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if name, ok := sniffName(buf[:k]); !ok || name != "pkg.example.test" {
		t.Errorf("SNI: %q %v", name, ok)
	}
	if name, ok := sniffName([]byte("GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: Allowed.test:8080\r\n\r\n")); !ok || name != "allowed.test" {
		t.Errorf("Host: %q %v", name, ok)
	}
	if _, ok := sniffName([]byte("GET / HTTP/1.1\r\nUser-Ag")); ok {
		t.Error("a partial request is complete")
	}
}

// TestSharedAddressByName: several domains on one address (one CDN) under
// different rules. On ports 80 and 443 the name the connection asks for
// decides, by itself and in rule order.
func TestSharedAddressByName(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test server listens on port 80 of a loopback address")
	}
	shared := netip.MustParseAddr("127.0.0.6")
	if port := serve(t, shared.String()+":80", "cdn"); port != 80 {
		t.Fatalf("listening on port %d", port)
	}
	dns := dnstest.Start(t, map[string]netip.Addr{"a.test": shared, "b.test": shared, "c.test": shared})
	tests := []struct {
		name  string
		rules []netpolicy.Rule
		host  string
		want  bool
	}{
		{"second of two allowed names", []netpolicy.Rule{netpolicy.Allow("a.test"), netpolicy.Allow("b.test")}, "b.test", true},
		{"first of two allowed names", []netpolicy.Rule{netpolicy.Allow("a.test"), netpolicy.Allow("b.test")}, "a.test", true},
		{"allowed name after a denied one", []netpolicy.Rule{netpolicy.Deny("b.test"), netpolicy.Allow("*.test")}, "a.test", true},
		{"denied name, allowed by a later rule", []netpolicy.Rule{netpolicy.Deny("b.test"), netpolicy.Allow("*.test")}, "b.test", false},
		{"a name not resolved here", []netpolicy.Rule{netpolicy.Allow("a.test"), netpolicy.Allow("b.test")}, "c.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The last rule only lets the loopback answers through (a
			// stand-in for a public address); it matches no connection here.
			rules := append(tt.rules, netpolicy.Allow("127.0.0.6/32:9/udp"))
			n, _ := newTestStack(t, netpolicy.Policy{Mode: netpolicy.ModeEgress, Rules: rules}, dns)
			g := newTestGuest(t, n)
			var ip netip.Addr
			for _, name := range []string{"a.test", "b.test"} {
				if rc, ips := g.lookup(t, name); rc == rcodeOK && len(ips) == 1 {
					ip = ips[0]
				}
			}
			if !ip.IsValid() {
				t.Fatal("neither a.test nor b.test resolved")
			}
			c, err := g.dial(ip, 80)
			if err != nil {
				t.Fatalf("dial %s:80: %v", ip, err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", tt.host)
			b, _ := io.ReadAll(c)
			if got := string(b) == "cdn"; got != tt.want {
				t.Fatalf("Host %s: reached the server %v (%q), want %v", tt.host, got, b, tt.want)
			}
		})
	}
}
