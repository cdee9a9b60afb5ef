package agent

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/serialmux"
)

func TestFindSerialPort(t *testing.T) {
	sys := t.TempDir()
	for dev, name := range map[string]string{"vport0p1": "org.other\n", "vport1p1": guestproto.SerialPortName + "\n", "vport1p2": ""} {
		os.MkdirAll(filepath.Join(sys, dev), 0o755)
		os.WriteFile(filepath.Join(sys, dev, "name"), []byte(name), 0o644)
	}
	got, err := findSerialPort(sys, "/dev", guestproto.SerialPortName)
	if err != nil || got != "/dev/vport1p1" {
		t.Fatalf("findSerialPort = %q, %v; want /dev/vport1p1", got, err)
	}
	if _, err := findSerialPort(sys, "/dev", "org.missing"); err == nil {
		t.Fatal("found a port that does not exist")
	}
}

// fakePort behaves like a virtio-serial port behind QEMU's socket chardev:
// reads return EOF while no host is connected, and the same port carries
// the next host connection.
type fakePort struct {
	mu   sync.Mutex
	conn net.Conn
}

func (p *fakePort) attach(c net.Conn) { p.mu.Lock(); p.conn = c; p.mu.Unlock() }

func (p *fakePort) current() net.Conn { p.mu.Lock(); defer p.mu.Unlock(); return p.conn }

func (p *fakePort) Read(b []byte) (int, error) {
	c := p.current()
	if c == nil {
		time.Sleep(time.Millisecond) // a real port returns EOF at once; don't spin
		return 0, io.EOF
	}
	n, err := c.Read(b)
	if err != nil {
		p.mu.Lock()
		if p.conn == c {
			p.conn = nil
		}
		p.mu.Unlock()
		return n, io.EOF
	}
	return n, nil
}

func (p *fakePort) Write(b []byte) (int, error) {
	c := p.current()
	if c == nil {
		return len(b), nil // nobody listens: the bytes are lost
	}
	return c.Write(b)
}

func TestSerialSessionSurvivesHostReconnect(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	port := &fakePort{}
	go serveSerial(ctx, newHostServer(), discardLog(), port)
	for round := range 3 {
		hostEnd, guestEnd := net.Pipe()
		port.attach(guestEnd)
		h, err := serialmux.NewHost(hostEnd)
		if err != nil {
			t.Fatal(err)
		}
		c := &guest.Client{Dial: func(ctx context.Context) (net.Conn, error) { return h.Open(guestproto.AgentPort) }}
		hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
		hello, err := c.Hello(hctx)
		hcancel()
		if err != nil || hello.ProtocolVersion != guestproto.ProtocolVersion {
			t.Fatalf("round %d: hello: %+v, %v", round, hello, err)
		}
		// A stream to another port is refused, the session goes on.
		if st, err := h.Open(7); err == nil {
			st.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := st.Read(make([]byte, 1)); err == nil {
				t.Fatalf("round %d: stream to port 7 was served", round)
			}
			st.Close()
		}
		h.Close()
		hostEnd.Close()
	}
}
