package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
)

// Published ports. The supervisor, the one host process that lives as
// long as the VM, listens on each published host address and carries every
// accepted connection over the agent channel as a port_connect stream; the
// agent dials 127.0.0.1:GUEST_PORT inside the guest. It serves
// publish/unpublish/list requests on DIR/ports.sock, one JSON request and
// one JSON answer per connection.

// PortsSocket is the name of the ports control socket in the run directory.
const PortsSocket = "ports.sock"

// PortSpec is one published port.
type PortSpec struct {
	// HostAddr is the host IP address listened on (127.0.0.1 by default).
	HostAddr string `json:"host_addr"`
	// HostPort is the host TCP port (0 in a request: any free port).
	HostPort  int `json:"host_port"`
	GuestPort int `json:"guest_port"`
}

// String is the spec as written: HOST_ADDR:HOST_PORT:GUEST_PORT.
func (p PortSpec) String() string {
	return net.JoinHostPort(p.HostAddr, strconv.Itoa(p.HostPort)) + ":" + strconv.Itoa(p.GuestPort)
}

// HostKey is the host side, HOST_ADDR:HOST_PORT, which identifies a
// published port.
func (p PortSpec) HostKey() string { return net.JoinHostPort(p.HostAddr, strconv.Itoa(p.HostPort)) }

// Loopback reports whether the host address is a loopback address.
func (p PortSpec) Loopback() bool {
	a, err := netip.ParseAddr(p.HostAddr)
	return err == nil && a.IsLoopback()
}

// ParsePortSpec reads [HOST_ADDR:]HOST_PORT:GUEST_PORT; HOST_ADDR is an IP
// address (IPv6 in brackets) or "localhost", 127.0.0.1 when absent.
func ParsePortSpec(s string) (PortSpec, error) {
	bad := func(why string) error {
		return fmt.Errorf("port %q: %s: write [HOST_ADDR:]HOST_PORT:GUEST_PORT, as in 8080:3000 or 127.0.0.1:8080:3000: %w", s, why, errdefs.ErrInvalidArgument)
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return PortSpec{}, bad("no host port")
	}
	hostPart, guestPart := s[:i], s[i+1:]
	p := PortSpec{HostAddr: "127.0.0.1"}
	var err error
	if p.GuestPort, err = portNumber(guestPart, false); err != nil {
		return PortSpec{}, bad("guest port: " + err.Error())
	}
	hostPort := hostPart
	if j := strings.LastIndexByte(hostPart, ':'); j >= 0 {
		addr := hostPart[:j]
		hostPort = hostPart[j+1:]
		addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if addr == "localhost" {
			addr = "127.0.0.1"
		}
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" {
			return PortSpec{}, bad(fmt.Sprintf("host address %q is not an IP address", addr))
		}
		p.HostAddr = a.Unmap().String()
	}
	if p.HostPort, err = portNumber(hostPort, true); err != nil {
		return PortSpec{}, bad("host port: " + err.Error())
	}
	return p, nil
}

func portNumber(s string, zeroOK bool) (int, error) {
	n, err := strconv.Atoi(s)
	lo := 1
	if zeroOK {
		lo = 0
	}
	if err != nil || n < lo || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number from %d to 65535", s, lo)
	}
	return n, nil
}

// CheckHostPortFree reports whether the host address and port can be
// listened on now (port 0 always can).
func CheckHostPortFree(p PortSpec) error {
	if p.HostPort == 0 {
		return nil
	}
	ln, err := listenTCP(p)
	if err != nil {
		return err
	}
	ln.Close()
	return nil
}

func listenTCP(p PortSpec) (net.Listener, error) {
	ln, err := net.Listen("tcp", p.HostKey())
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("host port %s is in use by another program: pick another host port: %w", p.HostKey(), errdefs.ErrConflict)
		}
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, fmt.Errorf("host address %s is not an address of this machine: %w", p.HostAddr, errdefs.ErrInvalidArgument)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("listen on %s: permission denied (ports below 1024 need privileges): %w", p.HostKey(), errdefs.ErrFailedPrecondition)
		}
		return nil, fmt.Errorf("listen on %s: %w", p.HostKey(), err)
	}
	return ln, nil
}

// PortStatus is a published port as the supervisor sees it.
type PortStatus struct {
	PortSpec
	// Active is true while the supervisor listens.
	Active bool   `json:"active"`
	Error  string `json:"error,omitempty"`
	// Connections counts accepted connections; Open those still open.
	Connections int64 `json:"connections"`
	Open        int64 `json:"open"`
}

// Forwarder holds a VM's published ports.
type Forwarder struct {
	agent *guest.Client
	log   *slog.Logger
	mu    sync.Mutex
	ports map[string]*fwdPort
}

type fwdPort struct {
	spec  PortSpec
	ln    net.Listener
	err   string
	conns atomic.Int64
	open  atomic.Int64
	done  chan struct{}
}

// NewForwarder returns a forwarder that reaches the guest through agent.
func NewForwarder(agent *guest.Client, log *slog.Logger) *Forwarder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Forwarder{agent: agent, log: log, ports: map[string]*fwdPort{}}
}

// Publish listens on p's host side and forwards to its guest port. It
// returns the port's status (with the chosen port when HostPort was 0).
func (f *Forwarder) Publish(p PortSpec) (PortStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.ports[p.HostKey()]; ok && p.HostPort != 0 {
		return PortStatus{}, fmt.Errorf("host port %s is already published (to guest port %d): unpublish it first: %w", p.HostKey(), old.spec.GuestPort, errdefs.ErrAlreadyExists)
	}
	ln, err := listenTCP(p)
	if err != nil {
		return PortStatus{}, err
	}
	p.HostPort = ln.Addr().(*net.TCPAddr).Port
	fp := &fwdPort{spec: p, ln: ln, done: make(chan struct{})}
	f.ports[p.HostKey()] = fp
	go f.serve(fp)
	f.log.Info("port published", "host", p.HostKey(), "guest_port", p.GuestPort)
	return fp.status(), nil
}

// Unpublish stops listening on hostKey (HOST_ADDR:HOST_PORT); open
// connections are left to finish.
func (f *Forwarder) Unpublish(hostKey string) (PortStatus, error) {
	f.mu.Lock()
	fp, ok := f.ports[hostKey]
	delete(f.ports, hostKey)
	f.mu.Unlock()
	if !ok {
		return PortStatus{}, fmt.Errorf("host port %s is not published: %w", hostKey, errdefs.ErrNotFound)
	}
	if fp.ln != nil {
		fp.ln.Close()
	}
	st := fp.status()
	st.Active = false
	return st, nil
}

// List returns the published ports, sorted by host port.
func (f *Forwarder) List() []PortStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PortStatus, 0, len(f.ports))
	for _, fp := range f.ports {
		out = append(out, fp.status())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].HostPort != out[j].HostPort {
			return out[i].HostPort < out[j].HostPort
		}
		return out[i].HostAddr < out[j].HostAddr
	})
	return out
}

// Close stops every listener.
func (f *Forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fp := range f.ports {
		if fp.ln != nil {
			fp.ln.Close()
		}
	}
}

func (fp *fwdPort) status() PortStatus {
	st := PortStatus{PortSpec: fp.spec, Error: fp.err, Connections: fp.conns.Load(), Open: fp.open.Load()}
	if fp.ln != nil {
		select {
		case <-fp.done:
		default:
			st.Active = true
		}
	}
	return st
}

func (f *Forwarder) serve(fp *fwdPort) {
	defer close(fp.done)
	for {
		c, err := fp.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.log.Warn("accept on a published port", "host", fp.spec.HostKey(), "err", err)
			time.Sleep(50 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		fp.conns.Add(1)
		fp.open.Add(1)
		go func() {
			defer fp.open.Add(-1)
			f.forward(c, fp.spec)
		}()
	}
}

// forward carries one host connection to the guest port.
func (f *Forwarder) forward(c net.Conn, p PortSpec) {
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	g, err := f.agent.PortConnect(ctx, p.GuestPort)
	cancel()
	if err != nil {
		f.log.Info("published port: guest connection failed", "host", p.HostKey(), "guest_port", p.GuestPort, "err", err)
		return
	}
	defer g.Close()
	proxy(c, g)
}

// proxy copies both ways until both directions ended, half-closing each
// side at its peer's EOF.
func proxy(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyHalf(b, a)
	}()
	copyHalf(a, b)
	wg.Wait()
}

// proxyBufs are the copy buffers: an idle supervisor keeps a small heap,
// so connections borrow them.
var proxyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func copyHalf(dst, src net.Conn) {
	bp := proxyBufs.Get().(*[]byte)
	_, err := io.CopyBuffer(dst, struct{ io.Reader }{src}, *bp)
	proxyBufs.Put(bp)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
	if err != nil {
		src.Close()
	}
}

// portsRequest is one request on ports.sock.
type portsRequest struct {
	Op   string   `json:"op"` // "publish", "unpublish", "list"
	Port PortSpec `json:"port"`
}

type portsResponse struct {
	Ports []PortStatus `json:"ports,omitempty"`
	Error string       `json:"error,omitempty"`
	Kind  errdefs.Kind `json:"kind,omitempty"`
}

// servePorts answers requests on ln until it is closed.
func (f *Forwarder) servePorts(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			var req portsRequest
			if err := json.NewDecoder(io.LimitReader(c, 1<<16)).Decode(&req); err != nil {
				json.NewEncoder(c).Encode(portsResponse{Error: "bad ports request: " + err.Error(), Kind: errdefs.KindInvalidArgument})
				return
			}
			json.NewEncoder(c).Encode(f.handle(&req))
		}()
	}
}

func (f *Forwarder) handle(req *portsRequest) portsResponse {
	fail := func(err error) portsResponse {
		k := errdefs.Classify(err)
		return portsResponse{Error: strings.TrimSuffix(err.Error(), ": "+errdefs.FromKind(k).Error()), Kind: k}
	}
	switch req.Op {
	case "publish":
		st, err := f.Publish(req.Port)
		if err != nil {
			return fail(err)
		}
		return portsResponse{Ports: []PortStatus{st}}
	case "unpublish":
		st, err := f.Unpublish(req.Port.HostKey())
		if err != nil {
			return fail(err)
		}
		return portsResponse{Ports: []PortStatus{st}}
	case "list":
		return portsResponse{Ports: f.List()}
	}
	return fail(fmt.Errorf("unknown ports op %q: %w", req.Op, errdefs.ErrInvalidArgument))
}

// listenPorts serves f on DIR/ports.sock; the returned function stops it.
func listenPorts(dir string, f *Forwarder) (func(), error) {
	path := filepath.Join(dir, PortsSocket)
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("ports socket: %w", err)
	}
	os.Chmod(path, 0o600)
	go f.servePorts(ln)
	return func() { ln.Close(); os.Remove(path); f.Close() }, nil
}

// PortsCall sends one request to the ports socket of the supervisor
// running in dir.
func PortsCall(ctx context.Context, dir, op string, p PortSpec) ([]PortStatus, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", filepath.Join(dir, PortsSocket))
	if err != nil {
		return nil, fmt.Errorf("reach the VM's supervisor for its ports: %w: %w", err, errdefs.ErrUnavailable)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(c).Encode(portsRequest{Op: op, Port: p}); err != nil {
		return nil, fmt.Errorf("ports request: %w: %w", err, errdefs.ErrUnavailable)
	}
	var resp portsResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("ports answer: %w: %w", err, errdefs.ErrUnavailable)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("%s: %w", resp.Error, errdefs.FromKind(resp.Kind))
	}
	return resp.Ports, nil
}
