package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// fakeAgent serves one stream with fn on the agent's end of a pipe.
func fakeAgent(t *testing.T, fn func(c net.Conn, req *guestproto.Request)) *Client {
	t.Helper()
	return &Client{Dial: func(ctx context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		go func() {
			defer a.Close()
			typ, p, err := guestproto.ReadFrame(a, nil)
			if err != nil || typ != guestproto.FrameJSON {
				t.Errorf("first frame: %v %v", typ, err)
				return
			}
			var req guestproto.Request
			if err := json.Unmarshal(p, &req); err != nil {
				t.Errorf("request: %v", err)
				return
			}
			fn(a, &req)
		}()
		return b, nil
	}}
}

func TestExecStreamsAndReturnsResult(t *testing.T) {
	c := fakeAgent(t, func(a net.Conn, req *guestproto.Request) {
		if req.Op != guestproto.OpExec || !req.Exec.Stdin {
			t.Errorf("request %+v, want exec with stdin", req)
		}
		// Echo stdin back as stdout until stdin EOF.
		for {
			typ, p, err := guestproto.ReadFrame(a, nil)
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			if typ == guestproto.FrameStdinEOF {
				break
			}
			if typ == guestproto.FrameStdin {
				guestproto.WriteFrame(a, guestproto.FrameStdout, p)
			}
		}
		guestproto.WriteFrame(a, guestproto.FrameStderr, []byte("warn"))
		guestproto.WriteJSON(a, &guestproto.Response{Exec: &guestproto.ExecResult{ExitCode: 3, Reason: guestproto.ReasonExited}})
	})
	in := strings.Repeat("x", 100_000)
	var out, errOut bytes.Buffer
	res, err := c.Exec(context.Background(), &guestproto.ExecRequest{Argv: []string{"cat"}}, ExecIO{Stdin: strings.NewReader(in), Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || out.String() != in || errOut.String() != "warn" {
		t.Fatalf("res %+v, stdout %d bytes, stderr %q", res, out.Len(), errOut.String())
	}
}

func TestExecErrors(t *testing.T) {
	tests := []struct {
		name  string
		agent func(a net.Conn, req *guestproto.Request)
		want  error
	}{
		{"connection lost", func(a net.Conn, req *guestproto.Request) {
			guestproto.WriteFrame(a, guestproto.FrameStdout, []byte("partial"))
		}, errdefs.ErrUnavailable},
		{"guest error", func(a net.Conn, req *guestproto.Request) {
			guestproto.WriteJSON(a, &guestproto.Response{Error: &guestproto.Error{Code: guestproto.CodeInvalid, Message: "exec: working directory /x does not exist"}})
		}, errdefs.ErrInvalidArgument},
		{"empty result", func(a net.Conn, req *guestproto.Request) {
			guestproto.WriteJSON(a, &guestproto.Response{})
		}, errdefs.ErrInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fakeAgent(t, tt.agent).Exec(context.Background(), &guestproto.ExecRequest{Argv: []string{"true"}}, ExecIO{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// readControl reads frames until a Control message and returns its signal.
func readControl(a net.Conn) (string, error) {
	for {
		typ, p, err := guestproto.ReadFrame(a, nil)
		if err != nil {
			return "", err
		}
		if typ == guestproto.FrameJSON {
			var c guestproto.Control
			err := json.Unmarshal(p, &c)
			return c.Signal, err
		}
	}
}

func TestExecCancelSendsKill(t *testing.T) {
	got := make(chan string, 1)
	c := fakeAgent(t, func(a net.Conn, req *guestproto.Request) {
		guestproto.WriteFrame(a, guestproto.FrameStdout, []byte("ready\n"))
		sig, _ := readControl(a)
		got <- sig
	})
	ctx, cancel := context.WithCancel(context.Background())
	out := writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil })
	_, err := c.Exec(ctx, &guestproto.ExecRequest{Argv: []string{"sleep", "100"}}, ExecIO{Stdout: out})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	select {
	case sig := <-got:
		if sig != "KILL" {
			t.Fatalf("agent got signal %q, want KILL", sig)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("agent got no control message")
	}
}

func TestProcessSignal(t *testing.T) {
	c := fakeAgent(t, func(a net.Conn, req *guestproto.Request) {
		sig, err := readControl(a)
		if err != nil {
			t.Errorf("read control: %v", err)
		}
		guestproto.WriteJSON(a, &guestproto.Response{Exec: &guestproto.ExecResult{ExitCode: 130, Reason: guestproto.ReasonKilled, Signal: sig}})
	})
	p, err := c.Start(context.Background(), &guestproto.ExecRequest{Argv: []string{"sleep", "100"}}, ExecIO{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal("INT"); err != nil {
		t.Fatal(err)
	}
	res, err := p.Wait()
	if err != nil || res.Signal != "INT" {
		t.Fatalf("res %+v, err %v", res, err)
	}
	if err := p.Signal("INT"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("signal after exit: %v", err)
	}
}

func TestExecWriterErrorKills(t *testing.T) {
	c := fakeAgent(t, func(a net.Conn, req *guestproto.Request) {
		var mu sync.Mutex
		go func() {
			for i := 0; i < 1000; i++ {
				mu.Lock()
				err := guestproto.WriteFrame(a, guestproto.FrameStdout, []byte("data"))
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		sig, _ := readControl(a)
		mu.Lock()
		defer mu.Unlock()
		guestproto.WriteJSON(a, &guestproto.Response{Exec: &guestproto.ExecResult{ExitCode: 137, Reason: guestproto.ReasonKilled, Signal: sig}})
	})
	boom := errors.New("disk full")
	res, err := c.Exec(context.Background(), &guestproto.ExecRequest{Argv: []string{"yes"}}, ExecIO{Stdout: writerFunc(func(p []byte) (int, error) { return 0, boom })})
	if !errors.Is(err, boom) || res == nil || res.Signal != "KILL" {
		t.Fatalf("res %+v, err %v; want the writer's error and a KILL", res, err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var _ io.Writer = writerFunc(nil)
