package netstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/egress"
	"github.com/hearthvm/hearth/internal/netpolicy"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// sniffTimeout bounds how long a connection on port 80 or 443 allowed by a
// domain rule may take to send its HTTP Host or TLS SNI.
const sniffTimeout = 10 * time.Second

// onTCP decides one guest connection. A denied connection is answered
// with a RST at once (the guest sees "connection refused"); so is an
// allowed one whose destination cannot be dialled.
func (n *Stack) onTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	dst, port := addrOf(id.LocalAddress), id.LocalPort
	if real, ok := n.loop.hostAddr(dst); ok {
		dst = real
	}
	dest := netip.AddrPortFrom(dst, port).String()
	pol := n.policy.Load()
	if port == 53 && pol.Enabled() {
		n.acceptDNSOverTCP(r)
		return
	}
	var d netpolicy.Decision
	var target string
	var domains []string
	switch {
	case dst == GatewayIP:
		d, target = pol.Host(port), net.JoinHostPort(n.hostAddr, strconv.Itoa(int(port)))
		dest = netpolicy.HostName + ":" + strconv.Itoa(int(port))
	case dst == DNSIP:
		d = netpolicy.Decision{Rule: "the DNS address serves port 53 only"}
	default:
		domains = n.pins.names(dst)
		d, target = pol.Conn(dst, port, "tcp", domains), dest
		if (port == 80 || port == 443) && len(domains) > 1 && !d.Allow {
			// Names sharing this address (one CDN, several domains) may
			// fall under different rules: the one the connection names
			// decides, after the sniff below. Let it that far if any of
			// them is allowed by a domain rule.
			for _, name := range domains {
				if di := pol.Conn(dst, port, "tcp", []string{name}); di.Allow && di.Domain != nil {
					d = di
					break
				}
			}
		}
	}
	name := ""
	if len(domains) > 0 {
		name = domains[0]
	}
	if !d.Allow {
		r.Complete(true)
		n.event(api.NetworkEvent{Kind: "tcp", Dest: dest, Name: name, Action: "denied", Rule: d.Rule})
		return
	}
	// A connection on port 80 or 443 to an address this workspace resolved
	// a brokered host's name to goes through the egress proxy (after the
	// policy allowed it).
	brk := n.broker.Load()
	brokered := brk != nil && (brk.Covers(dst.String(), port) || slices.ContainsFunc(domains, func(d string) bool { return brk.Covers(d, port) }))
	sniff := d.Domain != nil && (port == 80 || port == 443)
	if !sniff && !brokered {
		ctx, cancel := context.WithTimeout(n.ctx, n.dialer.Timeout)
		up, err := n.dialer.DialContext(ctx, "tcp", target)
		cancel()
		if err != nil {
			r.Complete(true)
			n.event(api.NetworkEvent{Kind: "tcp", Dest: dest, Name: name, Action: "allowed", Rule: d.Rule, Detail: "dial failed: " + err.Error()})
			return
		}
		conn, err := n.accept(r)
		if err != nil {
			up.Close()
			return
		}
		n.splice(api.NetworkEvent{Kind: "tcp", Dest: dest, Name: name, Action: "allowed", Rule: d.Rule}, conn, up, nil)
		return
	}
	conn, err := n.accept(r)
	if err != nil {
		return
	}
	// Ports 80 and 443 through a domain rule: the HTTP Host or TLS SNI
	// must name a domain the rule matches and this workspace resolved to
	// this address.
	conn.SetReadDeadline(time.Now().Add(sniffTimeout))
	buf := make([]byte, 0, 4096)
	var got string
	for len(buf) < 16<<10 {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
		k, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		var complete bool
		if got, complete = sniffName(buf); complete || err != nil {
			break
		}
	}
	conn.SetReadDeadline(time.Time{})
	if sniff {
		// The name asked for decides, by itself: it must be one this
		// workspace resolved to this address, and a domain rule must allow
		// it (a deny rule before it wins).
		ok := false
		if got != "" && slices.Contains(domains, got) {
			dg := pol.Conn(dst, port, "tcp", []string{got})
			if ok = dg.Allow && dg.Domain != nil; ok || !dg.Allow {
				d = dg
			}
		}
		if !ok {
			d.Domain = nil
		}
	}
	if sniff && d.Domain == nil {
		abort(conn)
		what := "TLS SNI"
		if port == 80 {
			what = "HTTP Host"
		}
		n.event(api.NetworkEvent{Kind: "tcp", Dest: dest, Name: got, Action: "denied", Rule: d.Rule,
			Detail: fmt.Sprintf("%s %q is not a domain this rule allows that resolved to %s", what, got, dst)})
		return
	}
	if got != "" {
		name = got
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.dialer.Timeout)
	up, err := n.dialer.DialContext(ctx, "tcp", target)
	cancel()
	if err != nil {
		abort(conn)
		n.event(api.NetworkEvent{Kind: "tcp", Dest: dest, Name: name, Action: "allowed", Rule: d.Rule, Detail: "dial failed: " + err.Error()})
		return
	}
	e := api.NetworkEvent{Kind: "tcp", Dest: dest, Name: name, Action: "allowed", Rule: d.Rule}
	if bname, ok := brokerName(brk, got, domains, dst, port); brokered && ok {
		n.serveBrokered(e, brk, conn, up, buf, bname, port, len(buf) > 0 && buf[0] == 0x16)
		return
	}
	n.splice(e, conn, up, buf)
}

// brokerName is the brokered host a connection is for: the name the
// guest asked for (TLS SNI, HTTP Host) when it is a brokered host this
// workspace resolved to this very address, or the address itself when a
// rule names it (and the guest asked for no other name). A name the guest
// merely claims is never enough: the upstream's certificate is verified
// for it, and over plain HTTP nothing else would be.
func brokerName(brk *egress.Proxy, got string, domains []string, dst netip.Addr, port uint16) (string, bool) {
	ip := dst.String()
	switch {
	case got != "" && slices.Contains(domains, got) && brk.Covers(got, port):
		return got, true
	case (got == "" || got == ip) && brk.Covers(ip, port):
		return ip, true
	}
	return "", false
}

// serveBrokered hands a guest connection to the egress proxy and logs the
// flow when it ends.
func (n *Stack) serveBrokered(e api.NetworkEvent, brk *egress.Proxy, guest *guestConn, up net.Conn, head []byte, name string, port uint16, useTLS bool) {
	n.wg.Add(1)
	defer n.wg.Done()
	start := time.Now()
	st := brk.Serve(n.ctx, guest, head, name, port, useTLS, up)
	e.BytesOut, e.BytesIn, e.DurationMS = st.BytesOut, st.BytesIn, time.Since(start).Milliseconds()
	e.Detail = fmt.Sprintf("brokered: %d header value(s) substituted", st.Substituted)
	if st.Err != "" {
		e.Detail += "; " + st.Err
	}
	n.event(e)
}

// accept completes the guest's handshake.
func (n *Stack) accept(r *tcp.ForwarderRequest) (*guestConn, error) {
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		return nil, fmt.Errorf("accept guest connection: %s", terr)
	}
	r.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	return &guestConn{gonet.NewTCPConn(&wq, ep), ep}, nil
}

// guestConn is the stack's end of a guest's TCP connection.
type guestConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// abort resets a guest connection.
func abort(c *guestConn) {
	c.ep.Abort()
	c.Close()
}

// splice copies both ways between the guest's conn and up (first sending
// head, bytes already read from the guest) and logs the flow when both
// directions end.
func (n *Stack) splice(e api.NetworkEvent, guest *guestConn, up net.Conn, head []byte) {
	start := time.Now()
	var out, in atomic.Int64
	var outErr atomic.Value
	if len(head) > 0 {
		k, err := up.Write(head)
		out.Add(int64(k))
		if err != nil {
			abort(guest)
			up.Close()
			return
		}
	}
	n.wg.Add(1)
	defer n.wg.Done()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		k, err := io.Copy(up, guest)
		out.Add(k)
		if err != nil {
			outErr.Store(err.Error())
		}
		if c, ok := up.(interface{ CloseWrite() error }); ok {
			c.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		k, _ := io.Copy(guest, up)
		in.Add(k)
		guest.CloseWrite()
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-n.ctx.Done():
	}
	guest.Close()
	up.Close()
	<-done
	e.BytesOut, e.BytesIn, e.DurationMS = out.Load(), in.Load(), time.Since(start).Milliseconds()
	if v, ok := outErr.Load().(string); ok {
		e.Detail = "from the guest: " + v
	}
	n.event(e)
}
