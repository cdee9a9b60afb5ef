package workspace

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/cmdlog"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// ExecOptions describe one command.
type ExecOptions struct {
	// Argv runs a program directly; Shell runs a string with /bin/sh -c.
	// Exactly one is set.
	Argv  []string
	Shell string
	Cwd   string
	// Env entries are "K=V".
	Env     []string
	Timeout time.Duration
	// Stdin, when set, is streamed to the command; otherwise it reads EOF.
	Stdin io.Reader
	// Stdout and Stderr receive the output as it arrives (may be nil).
	Stdout, Stderr io.Writer
	// Capture keeps up to api.OutputLimit bytes of each stream in the
	// result. The Go SDK and every other surface always set it (the
	// contract returns output); the field stays for compatibility.
	Capture bool
	// Detach starts the command and returns at once with status "running"
	// and its command id; the workspace's supervisor keeps it running and
	// logs its output. Follow up with CommandWait, CommandRead, CommandKill.
	Detach bool
	// Yield, when > 0, waits at most this long: a command still running
	// then comes back with status "running" and the output so far (not an
	// error), and keeps running like a detached one.
	Yield time.Duration
	// SecretEnv names the workspace's env secrets to set in the command's
	// environment (see secrets.go).
	SecretEnv []string
}

func (o *ExecOptions) validate() error {
	if len(o.Argv) == 0 && o.Shell == "" {
		return fmt.Errorf("no command given: pass the command after `--`, e.g. `-- ls -la`: %w", errdefs.ErrInvalidArgument)
	}
	if len(o.Argv) > 0 && o.Shell != "" {
		return fmt.Errorf("give either a command (argv) or a shell string, not both: %w", errdefs.ErrInvalidArgument)
	}
	if len(o.Argv) > 0 && o.Argv[0] == "" {
		return fmt.Errorf("empty command name: %w", errdefs.ErrInvalidArgument)
	}
	for _, e := range o.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("environment entry %q: want KEY=VALUE: %w", e, errdefs.ErrInvalidArgument)
		}
	}
	if o.Timeout < 0 {
		return fmt.Errorf("negative timeout %s: %w", o.Timeout, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (o *ExecOptions) request() *guestproto.ExecRequest {
	return &guestproto.ExecRequest{Argv: o.Argv, Shell: o.Shell, Cwd: o.Cwd, Env: o.Env, TimeoutMS: o.Timeout.Milliseconds()}
}

// capture keeps the first limit bytes written and counts all of them.
type capture struct {
	mu    sync.Mutex
	buf   []byte
	total int64
	limit int
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(len(p))
	if room := c.limit - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// encodeOutput returns text and its encoding ("" for UTF-8, "base64").
func encodeOutput(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

// fillResult converts a guest result into the public one.
func fillResult(r *guestproto.ExecResult, out, errb *capture) *api.ExecResult {
	res := &api.ExecResult{
		ExitCode: r.ExitCode, Reason: r.Reason, Signal: r.Signal, DurationMS: r.DurationMS,
		TimedOut: r.Reason == guestproto.ReasonTimeout, Message: r.Message,
	}
	if out != nil {
		res.Stdout, res.StdoutEncoding = encodeOutput(out.buf)
		res.StdoutBytes, res.StdoutTruncated = out.total, out.total > int64(len(out.buf))
	}
	if errb != nil {
		res.Stderr, res.StderrEncoding = encodeOutput(errb.buf)
		res.StderrBytes, res.StderrTruncated = errb.total, errb.total > int64(len(errb.buf))
	}
	return res
}

// Exec runs a command in a running workspace. The command, its exit and
// its output (up to the log's cap) go into the workspace's command log. A
// stopped workspace is an error that says how to start it (no automatic
// start: starting a VM is a visible, costly step the caller should choose).
func (m *Manager) Exec(ctx context.Context, ref string, o ExecOptions) (*api.ExecResult, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	rec, release, err := m.beginCall(ctx, ref, "exec")
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := m.client(rec)
	if err != nil {
		return nil, err
	}
	sx, err := m.execSecrets(rec, &o)
	if err != nil {
		return nil, err
	}
	if o.Detach || o.Yield > 0 {
		if o.Stdout != nil || o.Stderr != nil {
			return nil, fmt.Errorf("a detached command's output goes to the command log, not to writers: read it with CommandRead: %w", errdefs.ErrInvalidArgument)
		}
		res, err := m.execDetached(ctx, rec, o, sx)
		return sx.result(res), sx.red.Error(err)
	}
	run, err := m.commandLog(rec.ID).Begin(sx.command(api.Command{Argv: o.Argv, Shell: o.Shell, Cwd: o.Cwd}), cmdlog.Self())
	if err != nil {
		return nil, err
	}
	var capOut, capErr *capture
	stdout := []io.Writer{run.Stdout}
	stderr := []io.Writer{run.Stderr}
	if o.Capture {
		capOut, capErr = &capture{limit: api.OutputLimit}, &capture{limit: api.OutputLimit}
		stdout, stderr = append(stdout, capOut), append(stderr, capErr)
	}
	if o.Stdout != nil {
		stdout = append(stdout, o.Stdout)
	}
	if o.Stderr != nil {
		stderr = append(stderr, o.Stderr)
	}
	// Output is redacted before anything keeps or shows it.
	outW, errW := sx.red.NewWriter(io.MultiWriter(stdout...)), sx.red.NewWriter(io.MultiWriter(stderr...))
	r, err := c.Exec(ctx, sx.request(&o), guest.ExecIO{Stdin: o.Stdin, Stdout: outW, Stderr: errW})
	outW.Flush()
	errW.Flush()
	entry := run.Cmd
	entry.DurationMS = time.Since(entry.StartedAt).Milliseconds()
	if err != nil {
		err = sx.red.Error(err)
		entry.Status, entry.Reason = api.CommandLost, api.ReasonLost
		entry.Message = "the exec stream to the guest broke: " + err.Error()
		run.End()
		return nil, fmt.Errorf("exec in %s: %w", rec.Name, err)
	}
	r.Message = sx.red.String(r.Message)
	code := r.ExitCode
	entry.Status, entry.Reason, entry.Signal, entry.ExitCode, entry.Message = api.CommandFinished, r.Reason, r.Signal, &code, r.Message
	if r.DurationMS > 0 {
		entry.DurationMS = r.DurationMS
	}
	if err := run.End(); err != nil {
		return nil, err
	}
	res := fillResult(r, capOut, capErr)
	res.CommandID, res.Status = entry.ID, api.StatusFinished
	// The true sizes, also of output past the log's cap.
	res.StdoutBytes, res.StderrBytes = entry.StdoutBytes, entry.StderrBytes
	return res, nil
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// commandLog returns a workspace's command log (see package cmdlog).
func (m *Manager) commandLog(id string) *cmdlog.Store {
	return cmdlog.Open(m.logDir(id), cmdlog.Options{OutputCap: m.outputCap, Quota: m.logQuota, Alive: m.alive})
}

// LogsOptions select command log entries.
type LogsOptions struct {
	// Tail keeps only the last N commands (0: all).
	Tail int
}

// Logs returns a workspace's command log. Commands that were running when
// their VM or the host process running them went away are reported lost.
func (m *Manager) Logs(ctx context.Context, ref string, o LogsOptions) ([]api.Command, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	if o.Tail < 0 {
		return nil, fmt.Errorf("tail %d: want 0 (all) or more: %w", o.Tail, errdefs.ErrInvalidArgument)
	}
	cmds, err := m.commandLog(rec.ID).List(o.Tail)
	if err != nil {
		return nil, fmt.Errorf("command log of %s: %w", rec.Name, err)
	}
	vm := m.vmCheck(rec.ID)
	for i := range cmds {
		vm.settle(&cmds[i])
	}
	return cmds, nil
}

// vmCheck reports running commands lost when their VM is not running, or
// (for entries of older versions, which lack the supervisor's pid) when
// they began before the VM's current supervisor started. The command log
// itself records them lost when their runner died; this covers the rest
// (e.g. a VM that stopped under a foreground command whose caller still
// hangs on). It is a report, not recorded.
type vmCheck struct {
	m     *Manager
	id    string
	known bool
	vm    vmState
}

func (m *Manager) vmCheck(id string) *vmCheck { return &vmCheck{m: m, id: id} }

func (v *vmCheck) settle(c *api.Command) {
	if c.Status != api.CommandRunning {
		return
	}
	if !v.known {
		v.vm, v.known = v.m.vmState(v.id), true
	}
	switch {
	case v.vm.state != api.StateRunning:
		c.Message = "the workspace's VM is not running"
	case c.Detached && c.HostPID == 0 && c.StartedAt.Before(v.vm.status.StartedAt):
		c.Message = "it began under an earlier supervisor of this workspace, which is gone"
	default:
		return
	}
	c.Status, c.Reason = api.CommandLost, api.ReasonLost
}

// PruneLogsOptions select what PruneLogs removes.
type PruneLogsOptions = cmdlog.PruneOptions

// PruneLogsResult says what PruneLogs removed.
type PruneLogsResult = cmdlog.PruneResult

// PruneLogs removes the kept output of a workspace's finished commands,
// oldest first, as selected by o; their entries stay, marked pruned.
// Running commands are never pruned.
func (m *Manager) PruneLogs(ctx context.Context, ref string, o PruneLogsOptions) (*PruneLogsResult, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	res, err := m.commandLog(rec.ID).Prune(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rec.Name, err)
	}
	return res, nil
}

// command returns one logged command, reconciled with its VM's state.
func (m *Manager) command(rec *record, id string) (*api.Command, error) {
	c, err := m.commandLog(rec.ID).Get(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("no command %q in the log of %s (workspace_logs lists them): %w", id, rec.Name, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("command log of %s: %w", rec.Name, err)
	}
	m.vmCheck(rec.ID).settle(c)
	return c, nil
}

// CommandOutput opens one command's kept stdout or stderr ("stdout",
// "stderr") from the command log.
func (m *Manager) CommandOutput(ctx context.Context, ref, cmdID, stream string) (io.ReadCloser, *api.Command, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	if stream != "stdout" && stream != "stderr" {
		return nil, nil, fmt.Errorf("stream %q: want stdout or stderr: %w", stream, errdefs.ErrInvalidArgument)
	}
	c, err := m.command(rec, cmdID)
	if err != nil {
		return nil, nil, err
	}
	f, err := m.openOutput(rec, c, stream)
	if err != nil {
		return nil, nil, err
	}
	return f, c, nil
}

// openOutput opens a command's kept stream.
func (m *Manager) openOutput(rec *record, c *api.Command, stream string) (*os.File, error) {
	if c.Pruned {
		return nil, fmt.Errorf("the output of %s was pruned from the log of %s (its entry is kept): %w", c.ID, rec.Name, errdefs.ErrNotFound)
	}
	f, err := os.Open(m.commandLog(rec.ID).OutputPath(c.ID, stream))
	if err != nil {
		return nil, fmt.Errorf("output of %s: %w", c.ID, err)
	}
	return f, nil
}
