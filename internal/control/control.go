// Package control is the protocol a workspace's supervisor serves on
// DIR/run/ctl.sock, and its server side: detached commands (exec with
// detach or yield) are run by the supervisor, the one host process that
// lives as long as the VM, so the call that starts one may exit while later
// calls wait for it, read its output from the command log, or kill it.
//
// One JSON Request and one JSON Response per connection.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/cmdlog"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/secrets"
)

// SocketName is the control socket's name in a workspace's run directory.
const SocketName = "ctl.sock"

// MaxStdin bounds the stdin a detached command can be given.
const MaxStdin = 1 << 20

// Ops of a Request.
const (
	// OpExec starts a command already begun in the command log (Record).
	OpExec = "exec"
	// OpWait waits up to TimeoutMS for the command to end.
	OpWait = "wait"
	// OpKill signals the command's process group.
	OpKill = "kill"
)

// Request is one control request.
type Request struct {
	Op        string                  `json:"op"`
	ID        string                  `json:"id"`
	Exec      *guestproto.ExecRequest `json:"exec,omitempty"`
	Stdin     []byte                  `json:"stdin,omitempty"`
	HasStdin  bool                    `json:"has_stdin,omitempty"`
	Record    *api.Command            `json:"record,omitempty"`
	TimeoutMS int64                   `json:"timeout_ms,omitempty"`
	Signal    string                  `json:"signal,omitempty"`
	// OutputCap and LogQuota are the caller's command log limits for an
	// exec (0: the defaults of package cmdlog).
	OutputCap int64 `json:"output_cap,omitempty"`
	LogQuota  int64 `json:"log_quota,omitempty"`
	// Redact are the secret values to redact from an exec's output before
	// it is logged (package secrets). They travel over the 0600 socket and
	// stay in this process's memory only.
	Redact []secrets.Secret `json:"redact,omitempty"`
}

// Response answers a Request.
type Response struct {
	Error string       `json:"error,omitempty"`
	Kind  errdefs.Kind `json:"kind,omitempty"`
	// Done is true when the command is not (or no longer) running here.
	Done bool `json:"done"`
}

// Call sends one request to the supervisor listening on socket. An
// unreachable supervisor is errdefs.ErrUnavailable; an error the
// supervisor answers keeps its kind.
func Call(ctx context.Context, socket string, req *Request) (*Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("%s: %w", resp.Error, errdefs.FromKind(resp.Kind))
	}
	return &resp, nil
}

// Server runs a supervisor's detached commands.
type Server struct {
	mu      sync.Mutex
	running map[string]*detached
	// agent returns the client of the guest agent at socket.
	agent func(socket string) *guest.Client
}

// detached is a command the server runs.
type detached struct {
	proc *guest.Process
	done chan struct{}
}

// NewServer returns a Server with no commands.
func NewServer() *Server {
	return &Server{running: map[string]*detached{}, agent: func(socket string) *guest.Client { return &guest.Client{Socket: socket} }}
}

// Serve serves one control connection; it has the shape of
// supervisor.ControlHandler. runDir is the workspace's run directory (its
// command log is the sibling logs/), agentSocket the guest agent's socket.
func (s *Server) Serve(ctx context.Context, conn net.Conn, runDir, agentSocket string) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var req Request
	if err := json.NewDecoder(io.LimitReader(conn, 4<<20)).Decode(&req); err != nil {
		json.NewEncoder(conn).Encode(Response{Error: "bad control request: " + err.Error(), Kind: errdefs.KindInvalidArgument})
		return
	}
	conn.SetReadDeadline(time.Time{})
	resp := s.handle(ctx, &req, filepath.Join(filepath.Dir(runDir), "logs"), agentSocket)
	json.NewEncoder(conn).Encode(resp)
}

func (s *Server) lookup(id string) *detached {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[id]
}

func (s *Server) handle(ctx context.Context, req *Request, logDir, agentSocket string) Response {
	fail := func(err error) Response { return Response{Error: err.Error(), Kind: errdefs.Classify(err)} }
	d := s.lookup(req.ID)
	switch req.Op {
	case OpExec:
		if d != nil || req.Exec == nil || req.Record == nil || req.Record.ID != req.ID {
			return fail(fmt.Errorf("bad exec request for %s: %w", req.ID, errdefs.ErrInvalidArgument))
		}
		if err := s.start(req, logDir, s.agent(agentSocket)); err != nil {
			return fail(err)
		}
		return Response{}
	case OpWait:
		if d == nil {
			return Response{Done: true}
		}
		t := time.NewTimer(time.Duration(req.TimeoutMS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-d.done:
			return Response{Done: true}
		case <-t.C:
		case <-ctx.Done():
		}
		return Response{}
	case OpKill:
		if d == nil {
			return Response{Done: true}
		}
		if err := d.proc.Signal(req.Signal); err != nil {
			return fail(err)
		}
		return Response{}
	}
	return fail(fmt.Errorf("unknown control op %q: %w", req.Op, errdefs.ErrInvalidArgument))
}

// start runs a begun command in the guest: its output goes to the command
// log (appended, capped), and the log records this process as its runner
// until the command ends.
func (s *Server) start(req *Request, logDir string, c *guest.Client) error {
	log := cmdlog.Open(logDir, cmdlog.Options{OutputCap: req.OutputCap, Quota: req.LogQuota})
	run, err := log.Attach(*req.Record)
	if err != nil {
		return err
	}
	var stdin io.Reader
	if req.HasStdin {
		stdin = bytes.NewReader(req.Stdin)
	}
	red := secrets.NewRedactor(req.Redact)
	outW, errW := red.NewWriter(run.Stdout), red.NewWriter(run.Stderr)
	proc, err := c.Start(context.Background(), req.Exec, guest.ExecIO{Stdin: stdin, Stdout: outW, Stderr: errW})
	if err != nil {
		run.Close()
		return red.Error(err)
	}
	if err := run.Running(cmdlog.Self()); err != nil {
		proc.Signal("KILL")
		proc.Wait()
		run.Close()
		return err
	}
	d := &detached{proc: proc, done: make(chan struct{})}
	s.mu.Lock()
	s.running[req.ID] = d
	s.mu.Unlock()
	go func() {
		r, err := proc.Wait()
		outW.Flush()
		errW.Flush()
		err = red.Error(err)
		if r != nil {
			r.Message = red.String(r.Message)
		}
		rec := run.Cmd
		rec.DurationMS = time.Since(rec.StartedAt).Milliseconds()
		if err != nil {
			rec.Status, rec.Reason = api.CommandLost, api.ReasonLost
			rec.Message = "the stream from the guest agent broke (the VM stopped, or the agent died): " + err.Error()
		} else {
			code := r.ExitCode
			rec.Status, rec.Reason, rec.Signal, rec.ExitCode, rec.Message = api.CommandFinished, r.Reason, r.Signal, &code, r.Message
			if r.DurationMS > 0 {
				rec.DurationMS = r.DurationMS
			}
		}
		run.End()
		s.mu.Lock()
		delete(s.running, req.ID)
		s.mu.Unlock()
		close(d.done)
	}()
	return nil
}
