package serialmux

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// echoGuest accepts streams and echoes them back, prefixed by the port.
func echoGuest(t *testing.T, pipe net.Conn) {
	g, err := NewGuest(pipe)
	if err != nil {
		t.Error(err)
		return
	}
	for {
		port, st, err := g.Accept()
		if err != nil {
			return
		}
		go func() {
			defer st.Close()
			if port != 1024 {
				return
			}
			io.Copy(st, st)
		}()
	}
}

func setup(t *testing.T) string {
	hostEnd, guestEnd := net.Pipe()
	go echoGuest(t, guestEnd)
	h, err := NewHost(hostEnd)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "v.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); h.Close() })
	go h.Serve(ctx, ln)
	return sock
}

// TestManyStreams runs several concurrent clients through one pipe, each
// sending more than a flow-control window.
func TestManyStreams(t *testing.T) {
	sock := setup(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := Dial(ctx, sock, 1024)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			data := make([]byte, 3<<20)
			rand.Read(data)
			go func() {
				c.Write(data)
				c.(*net.UnixConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("echo: %d bytes back, err %v", len(got), err)
			}
		}()
	}
	wg.Wait()
}

func TestBadHandshake(t *testing.T) {
	sock := setup(t)
	for _, line := range []string{"HELLO\n", "CONNECT x\n", "CONNECT 1 2\n"} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(line))
		b, _ := io.ReadAll(c)
		if !bytes.HasPrefix(b, []byte("ERR ")) {
			t.Errorf("%q: answer %q, want ERR", line, b)
		}
		c.Close()
	}
}

// TestUnknownPortCloses: a port nobody serves ends the stream.
func TestUnknownPortCloses(t *testing.T) {
	sock := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, sock, 9)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read on an unserved port: %v, want EOF", err)
	}
}
