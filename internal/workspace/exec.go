package workspace

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hearthvm/hearth/api"
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
	// Capture keeps up to api.OutputLimit bytes of each stream in the result.
	Capture bool
	// Detach starts the command and returns at once with status "running"
	// and its command id; the workspace's supervisor keeps it running and
	// logs its output. Follow up with CommandWait, CommandRead, CommandKill.
	Detach bool
	// Yield, when > 0, waits at most this long: a command still running
	// then comes back with status "running" and the output so far (not an
	// error), and keeps running like a detached one.
	Yield time.Duration
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
// its full output go into the workspace's command log. A stopped workspace
// is an error that says how to start it (no automatic start: starting a VM
// is a visible, costly step the caller should choose).
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
	if o.Detach || o.Yield > 0 {
		if o.Stdout != nil || o.Stderr != nil {
			return nil, fmt.Errorf("a detached command's output goes to the command log, not to writers: read it with CommandRead: %w", errdefs.ErrInvalidArgument)
		}
		return m.execDetached(ctx, rec, o)
	}
	log := &cmdLog{dir: m.logDir(rec.ID)}
	entry, outF, errF, err := log.begin(&o)
	if err != nil {
		return nil, fmt.Errorf("command log: %w", err)
	}
	defer outF.Close()
	defer errF.Close()
	var capOut, capErr *capture
	stdout := []io.Writer{outF}
	stderr := []io.Writer{errF}
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
	cOut, cErr := &counter{w: io.MultiWriter(stdout...)}, &counter{w: io.MultiWriter(stderr...)}
	r, err := c.Exec(ctx, o.request(), guest.ExecIO{Stdin: o.Stdin, Stdout: cOut, Stderr: cErr})
	entry.StdoutBytes, entry.StderrBytes = cOut.n, cErr.n
	entry.DurationMS = time.Since(entry.StartedAt).Milliseconds()
	if err != nil {
		entry.Status = api.CommandLost
		entry.Reason = "lost: " + err.Error()
		log.end(entry)
		return nil, fmt.Errorf("exec in %s: %w", rec.Name, err)
	}
	entry.Status, entry.Reason = api.CommandFinished, r.Reason
	code := r.ExitCode
	entry.ExitCode = &code
	if r.DurationMS > 0 {
		entry.DurationMS = r.DurationMS
	}
	if err := log.end(entry); err != nil {
		return nil, fmt.Errorf("command log: %w", err)
	}
	res := fillResult(r, capOut, capErr)
	res.CommandID, res.Status = entry.ID, api.StatusFinished
	res.StdoutBytes, res.StderrBytes = cOut.n, cErr.n
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

// cmdLog is a workspace's command log: logs/commands.jsonl (one JSON line
// per state change; the last line of an id wins) and logs/<id>.stdout,
// logs/<id>.stderr with each command's full output.
type cmdLog struct{ dir string }

func (l *cmdLog) path() string { return filepath.Join(l.dir, "commands.jsonl") }

func (l *cmdLog) append(c *api.Command) error {
	unlock, err := lock(context.Background(), filepath.Join(l.dir, "lock"))
	if err != nil {
		return err
	}
	defer unlock()
	f, err := os.OpenFile(l.path(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(c)
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// nextID allocates a command id from a counter file under the log lock.
func (l *cmdLog) nextID() (string, error) {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return "", err
	}
	unlock, err := lock(context.Background(), filepath.Join(l.dir, "lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	p := filepath.Join(l.dir, "seq")
	b, _ := os.ReadFile(p)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	n++
	if err := os.WriteFile(p, []byte(strconv.Itoa(n)), 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf("cmd-%06d", n), nil
}

func (l *cmdLog) begin(o *ExecOptions) (*api.Command, *os.File, *os.File, error) {
	id, err := l.nextID()
	if err != nil {
		return nil, nil, nil, err
	}
	c := &api.Command{ID: id, Argv: o.Argv, Shell: o.Shell, Cwd: o.Cwd, StartedAt: time.Now().UTC(), Status: api.CommandRunning, HostPID: os.Getpid()}
	outF, err := os.OpenFile(filepath.Join(l.dir, id+".stdout"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, nil, err
	}
	errF, err := os.OpenFile(filepath.Join(l.dir, id+".stderr"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		outF.Close()
		return nil, nil, nil, err
	}
	if err := l.append(c); err != nil {
		outF.Close()
		errF.Close()
		return nil, nil, nil, err
	}
	return c, outF, errF, nil
}

func (l *cmdLog) end(c *api.Command) error { return l.append(c) }

// list returns the commands, oldest first, the last record of each id.
func (l *cmdLog) list() ([]api.Command, error) {
	f, err := os.Open(l.path())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return []api.Command{}, nil
		}
		return nil, err
	}
	defer f.Close()
	byID := map[string]api.Command{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var c api.Command
		if json.Unmarshal(sc.Bytes(), &c) == nil && c.ID != "" {
			byID[c.ID] = c
		}
	}
	out := make([]api.Command, 0, len(byID))
	for _, c := range byID {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, sc.Err()
}

// LogsOptions select command log entries.
type LogsOptions struct {
	// Tail keeps only the last N commands (0: all).
	Tail int
}

// Logs returns a workspace's command log. Commands that were running when
// their VM went away are reported as lost.
func (m *Manager) Logs(ctx context.Context, ref string, o LogsOptions) ([]api.Command, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	cmds, err := (&cmdLog{dir: m.logDir(rec.ID)}).list()
	if err != nil {
		return nil, err
	}
	vmUp := m.vmState(rec.ID).state == api.StateRunning
	for i := range cmds {
		c := &cmds[i]
		if c.Status != api.CommandRunning {
			continue
		}
		// The VM stopped under it, or the host process that ran it died:
		// the caller of a foreground command (its guest process was killed
		// with the stream), the supervisor of a detached one (the VM died
		// with it; a VM running now is a later boot).
		if !vmUp || runnerGone(c) {
			c.Status = api.CommandLost
		}
	}
	if o.Tail > 0 && len(cmds) > o.Tail {
		cmds = cmds[len(cmds)-o.Tail:]
	}
	return cmds, nil
}

// CommandOutput opens one command's full stdout or stderr ("stdout",
// "stderr") from the command log.
func (m *Manager) CommandOutput(ctx context.Context, ref, cmdID, stream string) (io.ReadCloser, *api.Command, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	if stream != "stdout" && stream != "stderr" {
		return nil, nil, fmt.Errorf("stream %q: want stdout or stderr: %w", stream, errdefs.ErrInvalidArgument)
	}
	cmds, err := m.Logs(ctx, ref, LogsOptions{})
	if err != nil {
		return nil, nil, err
	}
	for i := range cmds {
		if cmds[i].ID == cmdID {
			f, err := os.Open(filepath.Join(m.logDir(rec.ID), cmdID+"."+stream))
			if err != nil {
				return nil, nil, fmt.Errorf("output of %s: %w", cmdID, err)
			}
			return f, &cmds[i], nil
		}
	}
	return nil, nil, fmt.Errorf("no command %q in the log of %s: see `hearth workspace logs %s`: %w", cmdID, rec.Name, rec.Name, errdefs.ErrNotFound)
}
