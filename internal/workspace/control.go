package workspace

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// Detached commands (ExecOptions.Detach or Yield) are run by the
// workspace's supervisor, the one host process that lives as long as the
// VM: the CLI call that starts one may exit, and later calls wait for it,
// read its output from the command log, or kill it. The supervisor serves
// these requests on DIR/run/ctl.sock, one JSON request and one JSON answer
// per connection.

type ctlRequest struct {
	Op        string                  `json:"op"` // "exec", "wait", "kill"
	ID        string                  `json:"id"`
	Exec      *guestproto.ExecRequest `json:"exec,omitempty"`
	Stdin     []byte                  `json:"stdin,omitempty"`
	HasStdin  bool                    `json:"has_stdin,omitempty"`
	Record    *api.Command            `json:"record,omitempty"`
	TimeoutMS int64                   `json:"timeout_ms,omitempty"`
	Signal    string                  `json:"signal,omitempty"`
}

type ctlResponse struct {
	Error string       `json:"error,omitempty"`
	Kind  errdefs.Kind `json:"kind,omitempty"`
	// Done is true when the command is no longer running.
	Done bool `json:"done"`
}

// detached is a command the supervisor runs.
type detached struct {
	proc *guest.Process
	done chan struct{}
}

var (
	detachedMu sync.Mutex
	running    = map[string]*detached{}
)

// maxDetachedStdin bounds the stdin a detached command can be given.
const maxDetachedStdin = 1 << 20

// ServeControl serves one control connection inside a workspace's
// supervisor (see supervisor.ControlHandler).
func ServeControl(ctx context.Context, conn net.Conn, runDir, agentSocket string) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var req ctlRequest
	if err := json.NewDecoder(io.LimitReader(conn, 4<<20)).Decode(&req); err != nil {
		json.NewEncoder(conn).Encode(ctlResponse{Error: "bad control request: " + err.Error(), Kind: errdefs.KindInvalidArgument})
		return
	}
	conn.SetReadDeadline(time.Time{})
	resp := handleControl(ctx, &req, runDir, agentSocket)
	json.NewEncoder(conn).Encode(resp)
}

func handleControl(ctx context.Context, req *ctlRequest, runDir, agentSocket string) ctlResponse {
	fail := func(err error) ctlResponse { return ctlResponse{Error: err.Error(), Kind: errdefs.Classify(err)} }
	detachedMu.Lock()
	d := running[req.ID]
	detachedMu.Unlock()
	switch req.Op {
	case "exec":
		if d != nil || req.Exec == nil || req.Record == nil {
			return fail(fmt.Errorf("bad exec request for %s: %w", req.ID, errdefs.ErrInvalidArgument))
		}
		if err := startDetached(req, runDir, agentSocket); err != nil {
			return fail(err)
		}
		return ctlResponse{}
	case "wait":
		if d == nil {
			return ctlResponse{Done: true}
		}
		t := time.NewTimer(time.Duration(req.TimeoutMS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-d.done:
			return ctlResponse{Done: true}
		case <-t.C:
			return ctlResponse{}
		case <-ctx.Done():
			return ctlResponse{}
		}
	case "kill":
		if d == nil {
			return ctlResponse{Done: true}
		}
		if err := d.proc.Signal(req.Signal); err != nil {
			return fail(err)
		}
		return ctlResponse{}
	}
	return fail(fmt.Errorf("unknown control op %q: %w", req.Op, errdefs.ErrInvalidArgument))
}

func startDetached(req *ctlRequest, runDir, agentSocket string) error {
	log := &cmdLog{dir: filepath.Join(filepath.Dir(runDir), "logs")}
	outF, err := os.OpenFile(filepath.Join(log.dir, req.ID+".stdout"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	errF, err := os.OpenFile(filepath.Join(log.dir, req.ID+".stderr"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		outF.Close()
		return err
	}
	cOut, cErr := &counter{w: outF}, &counter{w: errF}
	var stdin io.Reader
	if req.HasStdin {
		stdin = bytes.NewReader(req.Stdin)
	}
	c := &guest.Client{Socket: agentSocket}
	proc, err := c.Start(context.Background(), req.Exec, guest.ExecIO{Stdin: stdin, Stdout: cOut, Stderr: cErr})
	if err != nil {
		outF.Close()
		errF.Close()
		return err
	}
	d := &detached{proc: proc, done: make(chan struct{})}
	detachedMu.Lock()
	running[req.ID] = d
	detachedMu.Unlock()
	go func() {
		r, err := proc.Wait()
		outF.Close()
		errF.Close()
		rec := *req.Record
		rec.StdoutBytes, rec.StderrBytes = cOut.n, cErr.n
		rec.DurationMS = time.Since(rec.StartedAt).Milliseconds()
		if err != nil {
			rec.Status, rec.Reason = api.CommandLost, "lost: "+err.Error()
		} else {
			code := r.ExitCode
			rec.Status, rec.Reason, rec.Signal, rec.ExitCode = api.CommandFinished, r.Reason, r.Signal, &code
			if r.DurationMS > 0 {
				rec.DurationMS = r.DurationMS
			}
		}
		log.end(&rec)
		detachedMu.Lock()
		delete(running, req.ID)
		detachedMu.Unlock()
		close(d.done)
	}()
	return nil
}

// control sends one request to a running workspace's supervisor.
func (m *Manager) control(ctx context.Context, rec *record, req *ctlRequest) (*ctlResponse, error) {
	if _, err := m.client(rec); err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(m.runDir(rec.ID), "ctl.sock"))
	if err != nil {
		return nil, fmt.Errorf("reach the supervisor of %s: %w: %w", rec.Name, err, errdefs.ErrUnavailable)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, err
	}
	var resp ctlResponse
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("supervisor of %s: %w: %w", rec.Name, err, errdefs.ErrUnavailable)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("%s: %w", resp.Error, errdefs.FromKind(resp.Kind))
	}
	return &resp, nil
}

// execDetached starts a command under the supervisor and, with Yield,
// waits up to that long for it.
func (m *Manager) execDetached(ctx context.Context, rec *record, o ExecOptions) (*api.ExecResult, error) {
	req := &ctlRequest{Op: "exec", Exec: o.request()}
	if o.Stdin != nil {
		b, err := io.ReadAll(io.LimitReader(o.Stdin, maxDetachedStdin+1))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		if len(b) > maxDetachedStdin {
			return nil, fmt.Errorf("stdin of a detached command is limited to 1 MiB; write larger input to a file with sync push: %w", errdefs.ErrInvalidArgument)
		}
		req.Stdin, req.HasStdin = b, true
	}
	log := &cmdLog{dir: m.logDir(rec.ID)}
	id, err := log.nextID()
	if err != nil {
		return nil, err
	}
	c := &api.Command{ID: id, Argv: o.Argv, Shell: o.Shell, Cwd: o.Cwd, StartedAt: time.Now().UTC(), Status: api.CommandRunning, Detached: true,
		HostPID: m.supervisorPID(rec.ID)}
	if err := log.append(c); err != nil {
		return nil, err
	}
	req.ID, req.Record = id, c
	if _, err := m.control(ctx, rec, req); err != nil {
		c.Status, c.Reason = api.CommandLost, "did not start: "+err.Error()
		log.end(c)
		return nil, err
	}
	if o.Yield > 0 {
		if _, err := m.control(ctx, rec, &ctlRequest{Op: "wait", ID: id, TimeoutMS: o.Yield.Milliseconds()}); err != nil {
			return nil, err
		}
	}
	return m.commandResult(rec, id, o.Capture)
}

// commandResult builds an ExecResult from the command log and the
// command's output files.
func (m *Manager) commandResult(rec *record, id string, capture bool) (*api.ExecResult, error) {
	cmds, err := (&cmdLog{dir: m.logDir(rec.ID)}).list()
	if err != nil {
		return nil, err
	}
	var c *api.Command
	for i := range cmds {
		if cmds[i].ID == id {
			c = &cmds[i]
		}
	}
	if c == nil {
		return nil, fmt.Errorf("no command %q in the log of %s: see `hearth workspace logs %s`: %w", id, rec.Name, rec.Name, errdefs.ErrNotFound)
	}
	res := &api.ExecResult{CommandID: id, Status: api.StatusFinished, Reason: c.Reason, Signal: c.Signal, DurationMS: c.DurationMS}
	switch c.Status {
	case api.CommandRunning:
		if m.vmState(rec.ID).state == api.StateRunning && !runnerGone(c) {
			res.Status, res.Reason = api.StatusRunning, ""
			res.DurationMS = time.Since(c.StartedAt).Milliseconds()
		} else {
			res.Reason, res.ExitCode = api.CommandLost, -1
		}
	case api.CommandLost:
		res.Reason, res.ExitCode = api.CommandLost, -1
		res.Message = c.Reason
	default:
		if c.ExitCode != nil {
			res.ExitCode = *c.ExitCode
		}
		res.TimedOut = c.Reason == api.ReasonTimeout
	}
	for _, s := range []struct {
		name  string
		text  *string
		enc   *string
		total *int64
		trunc *bool
	}{{"stdout", &res.Stdout, &res.StdoutEncoding, &res.StdoutBytes, &res.StdoutTruncated}, {"stderr", &res.Stderr, &res.StderrEncoding, &res.StderrBytes, &res.StderrTruncated}} {
		p := filepath.Join(m.logDir(rec.ID), id+"."+s.name)
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		*s.total = st.Size()
		if !capture {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(f, api.OutputLimit))
		f.Close()
		*s.text, *s.enc = encodeOutput(b)
		*s.trunc = st.Size() > int64(len(b))
	}
	return res, nil
}

// CommandWait waits up to timeout for a logged command to finish and
// returns its result (status "running" if it is still running).
func (m *Manager) CommandWait(ctx context.Context, ref, id string, timeout time.Duration) (*api.ExecResult, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	if timeout < 0 {
		return nil, fmt.Errorf("negative timeout: %w", errdefs.ErrInvalidArgument)
	}
	res, err := m.commandResult(rec, id, true)
	if err != nil || res.Status != api.StatusRunning || timeout == 0 {
		return res, err
	}
	if _, err := m.control(ctx, rec, &ctlRequest{Op: "wait", ID: id, TimeoutMS: timeout.Milliseconds()}); err != nil {
		return nil, err
	}
	return m.commandResult(rec, id, true)
}

// CommandRead returns a slice of a command's stdout or stderr from offset,
// at most limit bytes (default 64 KiB, at most 1 MiB).
func (m *Manager) CommandRead(ctx context.Context, ref, id, stream string, offset int64, limit int) (*api.CommandOutput, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	if stream == "" {
		stream = "stdout"
	}
	if stream != "stdout" && stream != "stderr" {
		return nil, fmt.Errorf("stream %q: want stdout or stderr: %w", stream, errdefs.ErrInvalidArgument)
	}
	if limit <= 0 {
		limit = 64 << 10
	}
	limit = min(limit, 1<<20)
	if offset < 0 {
		return nil, fmt.Errorf("offset %d: want 0 or more: %w", offset, errdefs.ErrInvalidArgument)
	}
	res, err := m.commandResult(rec, id, false)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(m.logDir(rec.ID), id+"."+stream))
	if err != nil {
		return nil, fmt.Errorf("output of %s: %w", id, err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if offset > st.Size() {
		return nil, fmt.Errorf("offset %d is past the end of %s's %s (%d bytes so far): %w", offset, id, stream, st.Size(), errdefs.ErrInvalidArgument)
	}
	buf := make([]byte, min(int64(limit), st.Size()-offset))
	n, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	buf = buf[:n]
	text, enc := encodeOutput(buf)
	return &api.CommandOutput{CommandID: id, Stream: stream, Data: text, Encoding: enc, Offset: offset, NextOffset: offset + int64(n), TotalBytes: st.Size(), Status: res.Status}, nil
}

// CommandKill signals a detached command's process group (default KILL)
// and, for KILL and TERM, waits briefly for it to end.
func (m *Manager) CommandKill(ctx context.Context, ref, id, signal string) (*api.ExecResult, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	if signal == "" {
		signal = "KILL"
	}
	signal = strings.ToUpper(strings.TrimPrefix(strings.ToUpper(signal), "SIG"))
	switch signal {
	case "KILL", "TERM", "INT", "HUP", "QUIT", "USR1", "USR2":
	default:
		return nil, fmt.Errorf("signal %q: use KILL, TERM, INT, HUP, QUIT, USR1 or USR2: %w", signal, errdefs.ErrInvalidArgument)
	}
	res, err := m.commandResult(rec, id, false)
	if err != nil {
		return nil, err
	}
	if res.Status != api.StatusRunning {
		return m.commandResult(rec, id, true)
	}
	resp, err := m.control(ctx, rec, &ctlRequest{Op: "kill", ID: id, Signal: signal})
	if err != nil {
		return nil, err
	}
	if resp.Done {
		return nil, fmt.Errorf("command %s was not started detached, so only the call that runs it can stop it (Ctrl-C it there): %w", id, errdefs.ErrFailedPrecondition)
	}
	if signal == "KILL" || signal == "TERM" {
		m.control(ctx, rec, &ctlRequest{Op: "wait", ID: id, TimeoutMS: 5000})
	}
	return m.commandResult(rec, id, true)
}
