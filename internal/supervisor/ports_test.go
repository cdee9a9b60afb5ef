package supervisor

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/agent"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
)

func TestParsePortSpec(t *testing.T) {
	good := map[string]PortSpec{
		"8080:3000":            {"127.0.0.1", 8080, 3000},
		"0:3000":               {"127.0.0.1", 0, 3000},
		"127.0.0.1:8080:3000":  {"127.0.0.1", 8080, 3000},
		"localhost:8080:3000":  {"127.0.0.1", 8080, 3000},
		"0.0.0.0:80:8000":      {"0.0.0.0", 80, 8000},
		"[::1]:8080:3000":      {"::1", 8080, 3000},
		"[::]:8080:3000":       {"::", 8080, 3000},
		"192.168.1.5:9000:900": {"192.168.1.5", 9000, 900},
	}
	for in, want := range good {
		got, err := ParsePortSpec(in)
		if err != nil || got != want {
			t.Errorf("ParsePortSpec(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if p, _ := ParsePortSpec("[::1]:8080:3000"); p.String() != "[::1]:8080:3000" || !p.Loopback() {
		t.Errorf("v6 spec: %s loopback=%v", p, p.Loopback())
	}
	if p, _ := ParsePortSpec("0.0.0.0:80:8000"); p.Loopback() {
		t.Error("0.0.0.0 is not loopback")
	}
	for in, want := range map[string]string{
		"8080":               "no host port",
		"8080:0":             "guest port",
		"8080:70000":         "guest port",
		"x:3000":             "host port",
		"-1:3000":            "host port",
		"host.example:1:2":   "not an IP address",
		"[fe80::1%eth0]:1:2": "not an IP address",
		"":                   "no host port",
	} {
		_, err := ParsePortSpec(in)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParsePortSpec(%q) = %v, want an invalid-argument error with %q", in, err, want)
		}
	}
}

// testAgent serves a real agent on a Unix socket (half-close works there
// as on the real transports).
func testAgent(t *testing.T) *guest.Client {
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go agent.NewServer(nil).Serve(context.Background(), ln)
	return &guest.Client{Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
}

// echoServer answers every connection with the SHA-256 of what it read,
// then what it read.
func echoServer(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
				b, _ := io.ReadAll(c)
				sum := sha256.Sum256(b)
				c.Write(sum[:])
				c.Write(b)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestForwarderConcurrentChecksummed(t *testing.T) {
	f := NewForwarder(testAgent(t), nil)
	defer f.Close()
	guestPort := echoServer(t)
	st, err := f.Publish(PortSpec{HostAddr: "127.0.0.1", HostPort: 0, GuestPort: guestPort})
	if err != nil || !st.Active || st.HostPort == 0 {
		t.Fatalf("%+v %v", st, err)
	}
	const conns, size = 32, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, size+i)
			rand.Read(payload)
			c, err := net.Dial("tcp", st.HostKey())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			go func() { c.Write(payload); c.(*net.TCPConn).CloseWrite() }()
			got, err := io.ReadAll(c)
			want := sha256.Sum256(payload)
			if err != nil || len(got) != 32+len(payload) || !bytes.Equal(got[:32], want[:]) || !bytes.Equal(got[32:], payload) {
				errs <- errors.New("payload corrupted or cut")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	l := f.List()
	if len(l) != 1 || l[0].Connections != conns {
		t.Fatalf("%+v", l)
	}
}

func TestForwarderErrors(t *testing.T) {
	f := NewForwarder(testAgent(t), nil)
	defer f.Close()
	st, err := f.Publish(PortSpec{HostAddr: "127.0.0.1", HostPort: 0, GuestPort: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Publish(st.PortSpec); !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "already published") {
		t.Fatalf("duplicate: %v", err)
	}
	// A host port another program holds.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	taken := PortSpec{HostAddr: "127.0.0.1", HostPort: ln.Addr().(*net.TCPAddr).Port, GuestPort: 2}
	if _, err := f.Publish(taken); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("taken: %v", err)
	}
	if err := CheckHostPortFree(taken); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("CheckHostPortFree: %v", err)
	}
	if len(f.List()) != 1 {
		t.Fatalf("a failed publish left a port: %+v", f.List())
	}
	// A connection to a guest port nothing listens on is closed at once.
	c, err := net.Dial("tcp", st.HostKey())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read from a dead guest port: %d %v", n, err)
	}
	c.Close()
	if _, err := f.Unpublish(st.HostKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Unpublish(st.HostKey()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unpublish twice: %v", err)
	}
	if _, err := net.Dial("tcp", st.HostKey()); err == nil {
		t.Fatal("still listening after unpublish")
	}
}

func TestPortsSocket(t *testing.T) {
	dir := t.TempDir()
	f := NewForwarder(testAgent(t), nil)
	stop, err := listenPorts(dir, f)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	sts, err := PortsCall(ctx, dir, "publish", PortSpec{HostAddr: "127.0.0.1", GuestPort: 80})
	if err != nil || len(sts) != 1 || !sts[0].Active {
		t.Fatalf("%+v %v", sts, err)
	}
	_, err = PortsCall(ctx, dir, "publish", sts[0].PortSpec)
	if !errors.Is(err, errdefs.ErrAlreadyExists) || strings.Count(err.Error(), "already exists") != 1 {
		t.Fatalf("duplicate over the socket: %v", err)
	}
	if l, err := PortsCall(ctx, dir, "list", PortSpec{}); err != nil || len(l) != 1 {
		t.Fatalf("%+v %v", l, err)
	}
	if _, err := PortsCall(ctx, dir, "nonsense", PortSpec{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatal(err)
	}
}
