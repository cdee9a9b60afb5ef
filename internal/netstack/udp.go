package netstack

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/netpolicy"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// udpIdle ends a UDP flow (and a DNS client's socket) after this long
// without traffic.
const (
	udpIdle = 60 * time.Second
	dnsIdle = 5 * time.Second
)

// onUDP decides one new UDP flow. Port 53 to any address is answered by
// the stack's DNS; a denied flow is dropped with an ICMP port unreachable.
func (n *Stack) onUDP(r *udp.ForwarderRequest) bool {
	id := r.ID()
	dst, port := addrOf(id.LocalAddress), id.LocalPort
	pol := n.policy.Load()
	if port == 53 && pol.Enabled() {
		var wq waiter.Queue
		ep, terr := r.CreateEndpoint(&wq)
		if terr != nil {
			return true
		}
		go n.serveDNSUDP(gonet.NewUDPConn(&wq, ep))
		return true
	}
	if real, ok := n.loop.hostAddr(dst); ok {
		dst = real
	}
	dest := netip.AddrPortFrom(dst, port).String()
	var d netpolicy.Decision
	var domains []string
	switch dst {
	case GatewayIP, DNSIP:
		d = netpolicy.Decision{Rule: "the host is reached over TCP only"}
	default:
		domains = n.pins.names(dst)
		d = pol.Conn(dst, port, "udp", domains)
	}
	name := ""
	if len(domains) > 0 {
		name = domains[0]
	}
	if !d.Allow {
		n.event(api.NetworkEvent{Kind: "udp", Dest: dest, Name: name, Action: "denied", Rule: d.Rule})
		return false
	}
	up, err := net.Dial("udp", dest)
	if err != nil {
		n.event(api.NetworkEvent{Kind: "udp", Dest: dest, Name: name, Action: "allowed", Rule: d.Rule, Detail: "dial failed: " + err.Error()})
		return false
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		up.Close()
		return true
	}
	go n.relayUDP(api.NetworkEvent{Kind: "udp", Dest: dest, Name: name, Action: "allowed", Rule: d.Rule}, gonet.NewUDPConn(&wq, ep), up)
	return true
}

func (n *Stack) relayUDP(e api.NetworkEvent, guest *gonet.UDPConn, up net.Conn) {
	start := time.Now()
	var out, in atomic.Int64
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	pump := func(dst, src net.Conn, count *atomic.Int64) {
		buf := make([]byte, 65536)
		for {
			src.SetReadDeadline(time.Now().Add(udpIdle))
			k, err := src.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < udpIdle {
					continue
				}
				break
			}
			last.Store(time.Now().UnixNano())
			count.Add(int64(k))
			dst.Write(buf[:k])
		}
		done <- struct{}{}
	}
	go pump(up, guest, &out)
	go pump(guest, up, &in)
	select {
	case <-done:
	case <-n.ctx.Done():
	}
	guest.Close()
	up.Close()
	e.BytesOut, e.BytesIn, e.DurationMS = out.Load(), in.Load(), time.Since(start).Milliseconds()
	n.event(e)
}

func (n *Stack) serveDNSUDP(c *gonet.UDPConn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(dnsIdle))
		k, err := c.Read(buf)
		if err != nil {
			return
		}
		if reply := n.answer(buf[:k]); reply != nil {
			if len(reply) > 512 {
				reply = truncate(reply)
			}
			c.Write(reply)
		}
	}
}

// truncate cuts a UDP answer to its header and question, with TC set.
func truncate(reply []byte) []byte {
	out := append([]byte(nil), reply[:12]...)
	out[2] |= 0x02
	binary.BigEndian.PutUint16(out[6:], 0)
	return out
}

// acceptDNSOverTCP serves DNS over TCP (2-byte length framing) to any
// address on port 53.
func (n *Stack) acceptDNSOverTCP(r *tcp.ForwarderRequest) {
	conn, err := n.accept(r)
	if err != nil {
		return
	}
	defer conn.Close()
	for {
		conn.SetReadDeadline(time.Now().Add(dnsIdle))
		var hdr [2]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(conn, msg); err != nil {
			return
		}
		reply := n.answer(msg)
		if reply == nil {
			return
		}
		conn.Write(binary.BigEndian.AppendUint16(nil, uint16(len(reply))))
		conn.Write(reply)
	}
}

// answer is the stack's DNS: names no rule allows get NXDOMAIN here and
// are never sent upstream; allowed names are resolved upstream (A records
// only; other types get an empty answer), answers that are not public are
// dropped unless a rule names their range (rebinding), and kept answers
// become DNS pins.
func (n *Stack) answer(msg []byte) []byte {
	q, err := parseQuestion(msg)
	if err != nil {
		if len(msg) >= 12 {
			r := append([]byte(nil), msg[:12]...)
			r[2], r[3] = 0x80|msg[2]&0x79, 0x80|rcodeFormErr
			for i := 4; i < 12; i++ {
				r[i] = 0
			}
			return r
		}
		return nil
	}
	pol := n.policy.Load()
	ev := api.NetworkEvent{Kind: "dns", Dest: q.name}
	if q.qclass != classIN {
		ev.Action, ev.Rule = "denied", "only class IN"
		n.event(ev)
		return q.reply(rcodeRefused, nil)
	}
	if q.name == netpolicy.HostName {
		if len(pol.AllowHost) == 0 || !pol.Enabled() {
			ev.Action, ev.Rule = "denied", netpolicy.ReasonHostDenied
			n.event(ev)
			return q.reply(rcodeNXDomain, nil)
		}
		if q.qtype != typeA {
			return q.reply(rcodeOK, nil)
		}
		a := GatewayIP.As4()
		return q.reply(rcodeOK, []record{{name: q.name, rtype: typeA, ttl: 60, data: a[:]}})
	}
	d := pol.Name(q.name)
	ev.Rule = d.Rule
	if !d.Allow {
		ev.Action = "denied"
		n.event(ev)
		return q.reply(rcodeNXDomain, nil)
	}
	if q.qtype != typeA {
		// IPv4 only; AAAA and other types get an empty answer (NODATA).
		return q.reply(rcodeOK, nil)
	}
	rcode, recs, err := n.resolve(q)
	if err != nil {
		ev.Action, ev.Detail = "allowed", "upstream: "+err.Error()
		n.event(ev)
		return q.reply(rcodeServFail, nil)
	}
	var kept []record
	var dropped []string
	for _, r := range recs {
		if r.rtype == typeA {
			ip := netip.AddrFrom4([4]byte(r.data))
			if !pol.AnswerAllowed(ip) {
				dropped = append(dropped, ip.String())
				continue
			}
			n.pins.add(ip, q.name)
			if r.ttl > 300 {
				r.ttl = 300
			}
			if ip.IsLoopback() {
				s := n.loop.guestAddr(ip).As4()
				r.data = s[:]
			}
		}
		kept = append(kept, r)
	}
	ev.Action = "allowed"
	if len(dropped) > 0 {
		ev.Detail = "dropped answers that are not public (rebinding): " + strings.Join(dropped, " ")
		if !hasA(kept) {
			ev.Action = "denied"
			n.event(ev)
			return q.reply(rcodeNXDomain, nil)
		}
	}
	n.event(ev)
	return q.reply(rcode, kept)
}

func hasA(rs []record) bool {
	for _, r := range rs {
		if r.rtype == typeA {
			return true
		}
	}
	return false
}

// resolve asks the upstream resolver for q (two tries); answers are
// cached for their TTL (at most a minute), so a burst of lookups of one
// name costs one upstream query. The policy is applied to every answer,
// cached or not.
func (n *Stack) resolve(q *question) (int, []record, error) {
	if rcode, recs, ok := n.cache.get(q.name); ok {
		return rcode, recs, nil
	}
	rcode, recs, err := n.resolveUpstream(q)
	if err == nil {
		n.cache.put(q.name, rcode, recs)
	}
	return rcode, recs, err
}

func (n *Stack) resolveUpstream(q *question) (int, []record, error) {
	var lastErr error
	for try := 0; try < 2; try++ {
		ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
		rcode, recs, err := n.exchange(ctx, q)
		cancel()
		if err == nil {
			return rcode, recs, nil
		}
		lastErr = err
	}
	return 0, nil, lastErr
}

func (n *Stack) exchange(ctx context.Context, q *question) (int, []record, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", n.upstream)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	id := uint16(rand.Uint32())
	if _, err := c.Write(q.query(id)); err != nil {
		return 0, nil, err
	}
	buf := make([]byte, 4096)
	for {
		k, err := c.Read(buf)
		if err != nil {
			return 0, nil, fmt.Errorf("%s: %w", n.upstream, err)
		}
		gid, rcode, recs, err := parseAnswer(buf[:k])
		if err != nil || gid != id {
			continue
		}
		return rcode, recs, nil
	}
}
