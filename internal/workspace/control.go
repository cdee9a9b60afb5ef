package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/cmdlog"
	"github.com/hearthvm/hearth/internal/control"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// Detached commands (ExecOptions.Detach or Yield) are run by the
// workspace's supervisor (package control serves them there); the calls
// here begin them in the command log, hand them over, and wait for, read
// or kill them.

// control sends one request to a running workspace's supervisor.
func (m *Manager) control(ctx context.Context, rec *record, req *control.Request) (*control.Response, error) {
	if _, err := m.client(rec); err != nil {
		return nil, err
	}
	resp, err := control.Call(ctx, filepath.Join(m.runDir(rec.ID), control.SocketName), req)
	if err != nil {
		if errors.Is(err, errdefs.ErrUnavailable) {
			return nil, fmt.Errorf("reach the supervisor of %s: %w", rec.Name, err)
		}
		return nil, err
	}
	return resp, nil
}

// execDetached begins a command in the command log, hands it to the
// supervisor and, with Yield, waits up to that long for it.
func (m *Manager) execDetached(ctx context.Context, rec *record, o ExecOptions, sx *execSecrets) (*api.ExecResult, error) {
	req := &control.Request{Op: control.OpExec, Exec: sx.request(&o), OutputCap: m.outputCap, LogQuota: m.logQuota, Redact: sx.redact()}
	if o.Stdin != nil {
		b, err := io.ReadAll(io.LimitReader(o.Stdin, control.MaxStdin+1))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		if len(b) > control.MaxStdin {
			return nil, fmt.Errorf("stdin of a detached command is limited to 1 MiB; write larger input to a file with sync push: %w", errdefs.ErrInvalidArgument)
		}
		req.Stdin, req.HasStdin = b, true
	}
	// This process is the command's runner until the supervisor takes it
	// (and records itself): if it dies in between, the command is lost.
	run, err := m.commandLog(rec.ID).Begin(sx.command(api.Command{Argv: o.Argv, Shell: o.Shell, Cwd: o.Cwd, Detached: true}), cmdlog.Self())
	if err != nil {
		return nil, err
	}
	run.Close()
	id := run.ID()
	req.ID, req.Record = id, run.Cmd
	if _, err := m.control(ctx, rec, req); err != nil {
		c := run.Cmd
		c.Status, c.Reason = api.CommandFinished, api.ReasonStartFailed
		c.Message = "the workspace's supervisor did not start it: " + err.Error()
		run.End()
		return nil, err
	}
	if o.Yield > 0 {
		if _, err := m.control(ctx, rec, &control.Request{Op: control.OpWait, ID: id, TimeoutMS: o.Yield.Milliseconds()}); err != nil {
			return nil, err
		}
	}
	return m.commandResult(rec, id, o.Capture)
}

// commandResult builds an ExecResult from the command log and the
// command's output files.
func (m *Manager) commandResult(rec *record, id string, capture bool) (*api.ExecResult, error) {
	c, err := m.command(rec, id)
	if err != nil {
		return nil, err
	}
	res := &api.ExecResult{CommandID: id, Status: api.StatusFinished, Reason: c.Reason, Signal: c.Signal, DurationMS: c.DurationMS, Message: c.Message}
	switch c.Status {
	case api.CommandRunning:
		res.Status, res.Reason = api.StatusRunning, ""
		res.DurationMS = time.Since(c.StartedAt).Milliseconds()
	case api.CommandLost:
		res.Reason, res.ExitCode = api.ReasonLost, -1
	default:
		if c.ExitCode != nil {
			res.ExitCode = *c.ExitCode
		} else {
			res.ExitCode = -1 // it never ran
		}
		res.TimedOut = c.Reason == api.ReasonTimeout
	}
	log := m.commandLog(rec.ID)
	for _, s := range []struct {
		name    string
		text    *string
		enc     *string
		total   *int64
		trunc   *bool
		written int64
	}{{"stdout", &res.Stdout, &res.StdoutEncoding, &res.StdoutBytes, &res.StdoutTruncated, c.StdoutBytes},
		{"stderr", &res.Stderr, &res.StderrEncoding, &res.StderrBytes, &res.StderrTruncated, c.StderrBytes}} {
		// A finished command's record has the true sizes, also of output
		// past the cap; a running one has logged what its file holds.
		*s.total = s.written
		var kept []byte
		if c.Status == api.CommandRunning || (capture && !c.Pruned) {
			f, err := os.Open(log.OutputPath(id, s.name))
			if err != nil {
				continue
			}
			if st, err := f.Stat(); err == nil && c.Status == api.CommandRunning {
				*s.total = st.Size()
			}
			if capture {
				kept, _ = io.ReadAll(io.LimitReader(f, api.OutputLimit))
			}
			f.Close()
		}
		if capture {
			*s.text, *s.enc = encodeOutput(kept)
			*s.trunc = *s.total > int64(len(kept))
		}
	}
	redactResult(m.redactor(rec), res) // output logged before a secret was added
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
	if _, err := m.control(ctx, rec, &control.Request{Op: control.OpWait, ID: id, TimeoutMS: timeout.Milliseconds()}); err != nil {
		return nil, err
	}
	return m.commandResult(rec, id, true)
}

// CommandRead returns a slice of a command's kept stdout or stderr from
// offset, at most limit bytes (default 64 KiB, at most 1 MiB).
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
	// The status is read before the output, so "finished" with
	// NextOffset == TotalBytes means there is no more.
	c, err := m.command(rec, id)
	if err != nil {
		return nil, err
	}
	status := api.StatusFinished
	if c.Status == api.CommandRunning {
		status = api.StatusRunning
	}
	f, err := m.openOutput(rec, c, stream)
	if err != nil {
		return nil, err
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
	if enc == "" {
		text = m.redactor(rec).String(text) // output logged before a secret was added
	}
	return &api.CommandOutput{CommandID: id, Stream: stream, Data: text, Encoding: enc, Offset: offset, NextOffset: offset + int64(n), TotalBytes: st.Size(), Status: status}, nil
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
	resp, err := m.control(ctx, rec, &control.Request{Op: control.OpKill, ID: id, Signal: signal})
	if err != nil {
		return nil, err
	}
	if resp.Done {
		return nil, fmt.Errorf("command %s was not started detached, so only the call that runs it can stop it (Ctrl-C it there): %w", id, errdefs.ErrFailedPrecondition)
	}
	if signal == "KILL" || signal == "TERM" {
		m.control(ctx, rec, &control.Request{Op: control.OpWait, ID: id, TimeoutMS: 5000})
	}
	return m.commandResult(rec, id, true)
}
