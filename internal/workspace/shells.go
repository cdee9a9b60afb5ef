package workspace

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/termstrip"
)

// ShellOpenOptions configure a new shell session.
type ShellOpenOptions struct {
	Cwd  string
	Env  []string
	Cols int
	Rows int
	// SecretEnv names the workspace's env secrets to set in the shell's
	// environment.
	SecretEnv []string
}

// ShellReadOptions select shell output.
type ShellReadOptions struct {
	// Cursor is the output offset to read from; nil continues where the
	// previous read of this shell ended.
	Cursor *int64
	// Wait returns as soon as new output exists, or after this long.
	Wait time.Duration
	// Plain strips terminal escape sequences (for language models).
	Plain bool
}

func shellInfo(s *guestproto.ShellInfo) *api.Shell {
	return &api.Shell{ID: s.ID, State: s.State, ExitCode: s.ExitCode, Cols: s.Cols, Rows: s.Rows, Cwd: s.Cwd, CreatedAt: s.CreatedAt, OutputBytes: s.OutputBytes}
}

// shellClient takes a call's shared lock on the workspace (release it
// when the call ends) and returns its agent client.
func (m *Manager) shellClient(ctx context.Context, ref string) (*guest.Client, func(), error) {
	c, _, release, err := m.shellClientRec(ctx, ref)
	return c, release, err
}

// shellClientRec is shellClient that also returns the workspace's record.
func (m *Manager) shellClientRec(ctx context.Context, ref string) (*guest.Client, *record, func(), error) {
	rec, release, err := m.beginCall(ctx, ref, "shell")
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := m.client(rec)
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	return c, rec, release, nil
}

func checkSize(cols, rows int) error {
	if cols < 0 || rows < 0 || cols > 1000 || rows > 1000 {
		return fmt.Errorf("terminal size %dx%d: want 1-1000 columns and rows: %w", cols, rows, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ShellOpen starts a PTY shell session that lives in the guest agent,
// independent of any host process, until closed.
func (m *Manager) ShellOpen(ctx context.Context, ref string, o ShellOpenOptions) (*api.Shell, error) {
	if err := checkSize(o.Cols, o.Rows); err != nil {
		return nil, err
	}
	c, rec, release, err := m.shellClientRec(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer release()
	senv, err := m.secretEnv(rec, o.SecretEnv)
	if err != nil {
		return nil, err
	}
	env := o.Env
	if len(senv) > 0 {
		env = append(slices.Clip(env), senv...)
	}
	s, err := c.ShellOpen(ctx, &guestproto.ShellRequest{Cwd: o.Cwd, Env: env, Cols: o.Cols, Rows: o.Rows})
	if err != nil {
		return nil, m.redactErr(rec, err)
	}
	return shellInfo(s), nil
}

// ShellWrite sends bytes to a shell exactly as given.
func (m *Manager) ShellWrite(ctx context.Context, ref, id string, data []byte) (*api.Shell, error) {
	c, release, err := m.shellClient(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer release()
	s, err := c.ShellWrite(ctx, id, data)
	if err != nil {
		return nil, err
	}
	return shellInfo(s), nil
}

// ShellRead returns a shell's output from a cursor on.
func (m *Manager) ShellRead(ctx context.Context, ref, id string, o ShellReadOptions) (*api.ShellOutput, error) {
	if o.Wait < 0 || o.Wait > 50*time.Second {
		return nil, errdefs.Arg("wait_ms", "%d: want 0 to 50000", o.Wait.Milliseconds())
	}
	if o.Cursor != nil && *o.Cursor < 0 {
		return nil, fmt.Errorf("cursor %d: want 0 or more: %w", *o.Cursor, errdefs.ErrInvalidArgument)
	}
	c, rec, release, err := m.shellClientRec(ctx, ref)
	if err != nil {
		return nil, err
	}
	if o.Wait > 0 {
		// A waiting read touches nothing on the host and its output stays
		// in the guest, so it does not hold the workspace: a stop goes
		// ahead at once instead of waiting out a poll loop, and this read
		// then ends with the VM (unavailable).
		release()
	} else {
		defer release()
	}
	r, err := c.ShellRead(ctx, id, o.Cursor, o.Wait)
	if err != nil {
		return nil, m.redactErr(rec, err)
	}
	rawNext := r.NextCursor
	out := redactShellRead(m.redactor(rec), r)
	if r.NextCursor != rawNext && o.Cursor == nil {
		// The next read without a cursor must start at the held tail.
		if err := c.ShellSeek(ctx, id, r.NextCursor); err != nil {
			return nil, m.redactErr(rec, err)
		}
	}
	if o.Plain {
		out = m.redactor(rec).Bytes(termstrip.Strip(out))
	}
	text, enc := encodeOutput(out)
	return &api.ShellOutput{Output: text, Encoding: enc, Cursor: r.Cursor, NextCursor: r.NextCursor, DroppedBytes: r.DroppedBytes,
		State: r.Shell.State, ExitCode: r.Shell.ExitCode}, nil
}

// ShellResize changes a shell's terminal size.
func (m *Manager) ShellResize(ctx context.Context, ref, id string, cols, rows int) (*api.Shell, error) {
	if cols < 1 || rows < 1 {
		return nil, errdefs.Arg("cols", "resize needs cols and rows of at least 1")
	}
	if err := checkSize(cols, rows); err != nil {
		return nil, err
	}
	c, release, err := m.shellClient(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer release()
	s, err := c.ShellResize(ctx, id, cols, rows)
	if err != nil {
		return nil, err
	}
	return shellInfo(s), nil
}

// ShellSignal sends INT, TERM, KILL or HUP (and a few more) to the shell's
// foreground process group.
func (m *Manager) ShellSignal(ctx context.Context, ref, id, signal string) (*api.Shell, error) {
	c, release, err := m.shellClient(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer release()
	s, err := c.ShellSignal(ctx, id, strings.ToUpper(signal))
	if err != nil {
		return nil, err
	}
	return shellInfo(s), nil
}

// ShellClose ends a shell session and frees it.
func (m *Manager) ShellClose(ctx context.Context, ref, id string) (*api.Shell, error) {
	c, release, err := m.shellClient(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer release()
	s, err := c.ShellClose(ctx, id)
	if err != nil {
		return nil, err
	}
	return shellInfo(s), nil
}

// ShellList lists a workspace's shell sessions.
func (m *Manager) ShellList(ctx context.Context, ref string) ([]api.Shell, error) {
	c, release, err := m.shellClient(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer release()
	ss, err := c.ShellList(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Shell, 0, len(ss))
	for i := range ss {
		out = append(out, *shellInfo(&ss[i]))
	}
	return out, nil
}

// ShellAttach connects a terminal to a shell until the shell exits or
// stdin ends (detach); the shell keeps running after a detach.
func (m *Manager) ShellAttach(ctx context.Context, ref, id string, stdin io.Reader, stdout io.Writer, resize <-chan [2]int) error {
	c, rec, release, err := m.shellClientRec(ctx, ref)
	if err != nil {
		return err
	}
	defer release()
	w := m.redactor(rec).NewWriter(stdout)
	err = c.ShellAttach(ctx, id, stdin, w, resize)
	w.Flush()
	return m.redactErr(rec, err)
}
