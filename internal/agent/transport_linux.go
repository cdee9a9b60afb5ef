package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/serialmux"
	"golang.org/x/sys/unix"
)

// serialReconnectDelay is the pause between serial sessions: after the host
// goes away the port reads EOF until a host connects again.
const serialReconnectDelay = 100 * time.Millisecond

// serveTransports serves srv on every transport the VM offers: vsock
// (Firecracker, vhost-vsock) and the named virtio-serial port (QEMU). It
// returns at once; the transports run until the VM ends.
func serveTransports(ctx context.Context, srv *Server, log *slog.Logger) {
	if ln, err := listenVsock(guestproto.AgentPort); err != nil {
		log.Info("vsock unavailable", "err", err)
	} else {
		log.Info("serving on vsock", "port", guestproto.AgentPort)
		go func() {
			err := srv.Serve(ctx, ln)
			log.Error("vsock listener ended", "err", err)
		}()
	}
	go func() {
		path, err := waitSerialPort(ctx, "/sys/class/virtio-ports", "/dev", guestproto.SerialPortName, log)
		if err != nil {
			log.Info("no serial transport", "err", err)
			return
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			log.Error("open serial port", "path", path, "err", err)
			return
		}
		log.Info("serving on virtio-serial", "path", path)
		serveSerial(ctx, srv, log, f)
	}()
}

// findSerialPort returns the device of the virtio-serial port named name
// (the kernel's numbering differs between machines, the name does not).
func findSerialPort(sysDir, devDir, name string) (string, error) {
	ents, err := os.ReadDir(sysDir)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(sysDir, e.Name(), "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return filepath.Join(devDir, e.Name()), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %q in %s", name, sysDir)
}

// waitSerialPort polls for the port: its name arrives from the host
// asynchronously after the device appears. It gives up when the VM has no
// virtio-serial ports at all after a while.
func waitSerialPort(ctx context.Context, sysDir, devDir, name string, log *slog.Logger) (string, error) {
	start := time.Now()
	delay := 10 * time.Millisecond
	for {
		p, err := findSerialPort(sysDir, devDir, name)
		if err == nil {
			return p, nil
		}
		if time.Since(start) > 10*time.Second {
			if _, serr := os.Stat(sysDir); serr != nil {
				return "", err // no virtio-serial device at all
			}
			if time.Since(start) > 60*time.Second {
				return "", err
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

// sessionEpoch counts the host's resyncs (a restore from a memory
// snapshot, see serialmux.NewHostResync). A stream that breaks because its
// session was resynced away was not closed by the host: an exec on it is
// left running, detached (see execRun.readHost).
var sessionEpoch atomic.Uint64

// serveSerial runs multiplexing sessions on port for ever: a session ends
// when the host goes away, or when a host restored from a snapshot asks
// for a fresh one (a resync, answered at once); the next starts on the
// same port.
func serveSerial(ctx context.Context, srv *Server, log *slog.Logger, port io.ReadWriter) {
	gr := serialmux.NewGuestReader(port)
	gr.OnResync = func() { sessionEpoch.Add(1) }
	for ctx.Err() == nil {
		g, err := serialmux.NewGuestSession(gr, port)
		if err != nil {
			log.Error("serial session", "err", err)
		} else {
			serveSession(ctx, srv, log, g)
		}
		if nonce, ok := gr.TakeResync(); ok {
			if err := serialmux.Ack(port, nonce); err != nil {
				log.Error("serial resync: acknowledge", "err", err)
			} else {
				log.Info("serial session resynced by a new host")
			}
			continue
		}
		// The host went away mid-frame, perhaps: start reading afresh.
		gr = serialmux.NewGuestReader(port)
		gr.OnResync = func() { sessionEpoch.Add(1) }
		select {
		case <-ctx.Done():
		case <-time.After(serialReconnectDelay):
		}
	}
}

// serveSession accepts streams until the session ends.
func serveSession(ctx context.Context, srv *Server, log *slog.Logger, g *serialmux.Guest) {
	defer g.Close()
	stop := context.AfterFunc(ctx, func() { g.Close() })
	defer stop()
	for {
		port, c, err := g.Accept()
		if err != nil {
			select {
			case <-g.Done():
				return
			default:
			}
			log.Debug("serial accept", "err", err)
			continue
		}
		if port != guestproto.AgentPort {
			log.Debug("stream to an unknown port", "port", port)
			c.Close()
			continue
		}
		go srv.ServeConn(ctx, c)
	}
}

// vsockListener accepts AF_VSOCK connections through the runtime poller.
type vsockListener struct {
	f    *os.File
	rc   syscall.RawConn
	addr vsockAddr
}

// vsockAddr is a vsock address.
type vsockAddr struct{ cid, port uint32 }

func (vsockAddr) Network() string  { return "vsock" }
func (a vsockAddr) String() string { return fmt.Sprintf("vsock:%d:%d", a.cid, a.port) }

// listenVsock listens on VMADDR_CID_ANY:port.
func listenVsock(port uint32) (net.Listener, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock bind port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock listen: %w", err)
	}
	f := os.NewFile(uintptr(fd), "vsock-listener")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &vsockListener{f: f, rc: rc, addr: vsockAddr{unix.VMADDR_CID_ANY, port}}, nil
}

func (l *vsockListener) Accept() (net.Conn, error) {
	for {
		var nfd int
		var sa unix.Sockaddr
		var aerr error
		err := l.rc.Read(func(fd uintptr) bool {
			nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
			return aerr != unix.EAGAIN
		})
		if err != nil {
			return nil, err
		}
		if aerr != nil {
			if errors.Is(aerr, unix.ECONNABORTED) || errors.Is(aerr, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("vsock accept: %w", aerr)
		}
		remote := vsockAddr{}
		if vm, ok := sa.(*unix.SockaddrVM); ok {
			remote = vsockAddr{vm.CID, vm.Port}
		}
		return &vsockConn{File: os.NewFile(uintptr(nfd), "vsock"), local: l.addr, remote: remote}, nil
	}
}

func (l *vsockListener) Close() error   { return l.f.Close() }
func (l *vsockListener) Addr() net.Addr { return l.addr }

// vsockConn is an accepted vsock connection; the poller gives it deadlines.
type vsockConn struct {
	*os.File
	local, remote vsockAddr
}

func (c *vsockConn) LocalAddr() net.Addr  { return c.local }
func (c *vsockConn) RemoteAddr() net.Addr { return c.remote }

// CloseWrite shuts down the sending side.
func (c *vsockConn) CloseWrite() error {
	rc, err := c.File.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_WR) }); err != nil {
		return err
	}
	return serr
}
