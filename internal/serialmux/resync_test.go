package serialmux

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// relay stands for the VMM: the guest's port stays, the host behind it
// changes (a restore starts a new host process on a new pipe).
type relay struct {
	mu    sync.Mutex
	cur   net.Conn
	guest net.Conn
}

func newRelay(guest net.Conn) *relay {
	r := &relay{guest: guest}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := guest.Read(buf)
			r.mu.Lock()
			c := r.cur
			r.mu.Unlock()
			if n > 0 && c != nil {
				c.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// attach connects a new host and returns its end of the pipe.
func (r *relay) attach() net.Conn {
	host, mine := net.Pipe()
	r.mu.Lock()
	if r.cur != nil {
		r.cur.Close() // the old host is gone
	}
	r.cur = mine
	r.mu.Unlock()
	go io.Copy(r.guest, mine)
	return host
}

// serveGuest runs sessions on port the way the agent does: a resync is
// acknowledged and a new session starts on the same reader. Streams echo.
// A stream that breaks because of a resync reports it on detached.
func serveGuest(port net.Conn, detached chan<- string) {
	gr := NewGuestReader(port)
	for {
		g, err := NewGuestSession(gr, port)
		if err != nil {
			return
		}
		for {
			_, st, err := g.Accept()
			if err != nil {
				break
			}
			go func() {
				defer st.Close()
				_, err := io.Copy(st, st)
				if detached != nil && gr != nil {
					select {
					case detached <- "stream ended: " + errString(err):
					default:
					}
				}
			}()
		}
		g.Close()
		nonce, ok := gr.TakeResync()
		if !ok {
			return
		}
		if err := Ack(port, nonce); err != nil {
			return
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "eof"
	}
	return err.Error()
}

func echo(t *testing.T, h *Host, msg string) {
	t.Helper()
	st, err := h.Open(1024)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(st, got); err != nil {
		t.Fatalf("echo %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
}

// TestResyncAfterRestore: a guest that kept its session (and an open
// stream) gets a new host, which resyncs; streams work again, and the
// old stream ends on the guest's side.
func TestResyncAfterRestore(t *testing.T) {
	guestPort, vmmEnd := net.Pipe()
	defer guestPort.Close()
	r := newRelay(vmmEnd)
	detached := make(chan string, 1)
	go serveGuest(guestPort, detached)

	h1, err := NewHost(r.attach())
	if err != nil {
		t.Fatal(err)
	}
	echo(t, h1, "before")
	// A long-lived stream, like a detached command's.
	held, err := h1.Open(1024)
	if err != nil {
		t.Fatal(err)
	}
	held.Write([]byte("x"))
	io.ReadFull(held, make([]byte, 1))

	for i, name := range []string{"first restore", "second restore"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		h2, err := NewHostResync(ctx, r.attach())
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for j := 0; j < 3; j++ { // stream ids start again at 1: no collision
			echo(t, h2, name+string(rune('a'+j)))
		}
		if i == 0 {
			select {
			case <-detached:
			case <-time.After(10 * time.Second):
				t.Fatal("the old session's stream did not end on the guest's side")
			}
		}
		h2.Close()
	}
}

// TestResyncTimeout: a guest that never answers fails the resync within
// the context, with a clear error.
func TestResyncTimeout(t *testing.T) {
	host, guest := net.Pipe()
	defer guest.Close()
	go io.Copy(io.Discard, guest)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := NewHostResync(ctx, host)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
}

// TestGuestReaderFrames: marker bytes inside a frame's payload are data;
// only a marker between frames ends the session.
func TestGuestReaderFrames(t *testing.T) {
	var in bytes.Buffer
	payload := append(marker(tagReset, [8]byte{1}), []byte("tail")...)
	hdr := make([]byte, 12)
	hdr[1] = 0 // data
	binary.BigEndian.PutUint32(hdr[8:12], uint32(len(payload)))
	in.Write(hdr)
	in.Write(payload)
	win := make([]byte, 12)
	win[1] = 1 // window update: no payload
	in.Write(win)
	in.Write(marker(tagReset, [8]byte{9, 9}))
	in.Write([]byte("after"))

	gr := NewGuestReader(&in)
	var got bytes.Buffer
	buf := make([]byte, 7)
	var err error
	for {
		var n int
		n, err = gr.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	var rs *ErrResync
	if !errors.As(err, &rs) || rs.Nonce != [8]byte{9, 9} {
		t.Fatalf("ended with %v, want the resync of nonce 9 9", err)
	}
	want := append(append(append([]byte{}, hdr...), payload...), win...)
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("passed through %q, want %q", got.Bytes(), want)
	}
	if n, ok := gr.TakeResync(); !ok || n != [8]byte{9, 9} {
		t.Fatal("TakeResync lost the nonce")
	}
	if _, ok := gr.TakeResync(); ok {
		t.Fatal("TakeResync returned the nonce twice")
	}
	rest, _ := io.ReadAll(&in)
	if string(rest) != "after" {
		t.Fatalf("the reader consumed past the marker: %q left", rest)
	}
}
