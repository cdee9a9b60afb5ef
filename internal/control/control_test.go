package control

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/cmdlog"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// serve runs a Server on a Unix socket in a workspace-like directory
// whose guest agent is fake: each exec stream is served by agent.
func serve(t *testing.T, agent func(c net.Conn)) (socket string, log *cmdlog.Store) {
	t.Helper()
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	os.MkdirAll(run, 0o700)
	s := NewServer()
	s.agent = func(string) *guest.Client {
		return &guest.Client{Dial: func(ctx context.Context) (net.Conn, error) {
			a, b := net.Pipe()
			go func() {
				defer a.Close()
				if typ, _, err := guestproto.ReadFrame(a, nil); err != nil || typ != guestproto.FrameJSON {
					t.Errorf("first frame: %v %v", typ, err)
					return
				}
				agent(a)
			}()
			return b, nil
		}}
	}
	socket = filepath.Join(run, SocketName)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.Serve(ctx, c, run, "agent.sock")
		}
	}()
	return socket, cmdlog.Open(filepath.Join(dir, "logs"), cmdlog.Options{})
}

// waitControl reads frames until a Control message and returns its signal.
func waitControl(a net.Conn) string {
	for {
		typ, p, err := guestproto.ReadFrame(a, nil)
		if err != nil {
			return ""
		}
		if typ == guestproto.FrameJSON {
			var c guestproto.Control
			json.Unmarshal(p, &c)
			return c.Signal
		}
	}
}

func result(a net.Conn, r guestproto.ExecResult) {
	guestproto.WriteJSON(a, &guestproto.Response{Exec: &r})
}

func TestDetachedCommands(t *testing.T) {
	cases := []struct {
		name  string
		cap   int64
		agent func(a net.Conn)
		// kill signals the command while it runs (the agent waits for it).
		kill                    bool
		status, reason, message string
		stdout                  string
		stdoutBytes, dropped    int64
	}{
		{name: "finishes", agent: func(a net.Conn) {
			guestproto.WriteFrame(a, guestproto.FrameStdout, []byte("hello"))
			guestproto.WriteFrame(a, guestproto.FrameStderr, []byte("e"))
			result(a, guestproto.ExecResult{Reason: guestproto.ReasonExited})
		}, status: api.CommandFinished, reason: api.ReasonExited, stdout: "hello", stdoutBytes: 5},
		{name: "capped by the caller's setting", cap: 4, agent: func(a net.Conn) {
			guestproto.WriteFrame(a, guestproto.FrameStdout, []byte("hello"))
			result(a, guestproto.ExecResult{Reason: guestproto.ReasonExited})
		}, status: api.CommandFinished, reason: api.ReasonExited, stdout: "hell", stdoutBytes: 5, dropped: 1},
		{name: "agent stream breaks", agent: func(a net.Conn) {
			guestproto.WriteFrame(a, guestproto.FrameStdout, []byte("part"))
		}, status: api.CommandLost, reason: api.ReasonLost, message: "stream from the guest agent broke", stdout: "part", stdoutBytes: 4},
		{name: "killed", kill: true, agent: func(a net.Conn) {
			guestproto.WriteFrame(a, guestproto.FrameStdout, []byte("x"))
			sig := waitControl(a)
			result(a, guestproto.ExecResult{ExitCode: 137, Reason: guestproto.ReasonKilled, Signal: sig})
		}, status: api.CommandFinished, reason: api.ReasonKilled, stdout: "x", stdoutBytes: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			socket, log := serve(t, tc.agent)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			run, err := log.Begin(api.Command{Shell: "x", Detached: true}, cmdlog.Self())
			if err != nil {
				t.Fatal(err)
			}
			run.Close()
			id := run.ID()
			if _, err := Call(ctx, socket, &Request{Op: OpExec, ID: id, Exec: &guestproto.ExecRequest{Shell: "x"}, Record: run.Cmd, OutputCap: tc.cap}); err != nil {
				t.Fatal(err)
			}
			if tc.kill {
				// The supervisor records itself as the runner.
				c, err := log.Get(id)
				if err != nil || c.Status != api.CommandRunning || c.HostPID != os.Getpid() {
					t.Errorf("while running: %+v %v", c, err)
				}
				if _, err := Call(ctx, socket, &Request{Op: OpKill, ID: id, Signal: "KILL"}); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := Call(ctx, socket, &Request{Op: OpWait, ID: id, TimeoutMS: 30_000})
			if err != nil || !resp.Done {
				t.Fatalf("wait: %+v %v", resp, err)
			}
			// Done comes after the end is recorded.
			c, err := log.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			if c.Status != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.message) || (tc.message == "" && c.Message != "") {
				t.Errorf("entry: status %q reason %q message %q", c.Status, c.Reason, c.Message)
			}
			if c.StdoutBytes != tc.stdoutBytes || c.StdoutDroppedBytes != tc.dropped {
				t.Errorf("entry: %d stdout bytes, %d dropped", c.StdoutBytes, c.StdoutDroppedBytes)
			}
			b, _ := os.ReadFile(log.OutputPath(id, "stdout"))
			if string(b) != tc.stdout {
				t.Errorf("kept stdout %q, want %q", b, tc.stdout)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	socket, log := serve(t, func(a net.Conn) { result(a, guestproto.ExecResult{}) })
	ctx := context.Background()
	run, err := log.Begin(api.Command{Shell: "x", Detached: true}, cmdlog.Self())
	if err != nil {
		t.Fatal(err)
	}
	run.Close()
	cases := []struct {
		name     string
		req      Request
		wantErr  error
		wantDone bool
	}{
		{"record of another id", Request{Op: OpExec, ID: "cmd-000009", Exec: &guestproto.ExecRequest{Shell: "x"}, Record: run.Cmd}, errdefs.ErrInvalidArgument, false},
		{"no exec", Request{Op: OpExec, ID: run.ID(), Record: run.Cmd}, errdefs.ErrInvalidArgument, false},
		{"unknown op", Request{Op: "frobnicate", ID: run.ID()}, errdefs.ErrInvalidArgument, false},
		{"wait for an unknown command", Request{Op: OpWait, ID: "cmd-000042", TimeoutMS: 10}, nil, true},
		{"kill an unknown command", Request{Op: OpKill, ID: "cmd-000042", Signal: "KILL"}, nil, true},
	}
	for _, tc := range cases {
		resp, err := Call(ctx, socket, &tc.req)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || resp.Done != tc.wantDone {
			t.Errorf("%s: %+v %v", tc.name, resp, err)
		}
	}
	if _, err := Call(ctx, filepath.Join(t.TempDir(), "none.sock"), &Request{Op: OpWait}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("no supervisor: %v, want unavailable", err)
	}
}
