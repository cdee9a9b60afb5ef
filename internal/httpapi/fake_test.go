package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
)

// fake is an SDK-shaped Service for tests where the VM is not the point:
// it records each call and returns err, or what the hook returns.
type fake struct {
	mu    sync.Mutex
	calls []string
	args  []any
	err   error
	// exec, when set, serves Exec and Run.
	exec func(ctx context.Context, o hearth.ExecOptions) (*api.ExecResult, error)
	// show, when set, serves Show.
	show func(ctx context.Context, ws string) (*api.Workspace, error)
}

func (f *fake) rec(name string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	f.args = append(f.args, args)
	return f.err
}

func (f *fake) last() (string, []any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return "", nil
	}
	return f.calls[len(f.calls)-1], f.args[len(f.args)-1].([]any)
}

func ws(name string) *api.Workspace {
	return &api.Workspace{ID: "w-" + name, Name: name, State: api.StateRunning, CreatedAt: time.Unix(1700000000, 0).UTC()}
}

func (f *fake) Run(ctx context.Context, o hearth.RunOptions) (*api.ExecResult, error) {
	if err := f.rec("Run", o); err != nil {
		return nil, err
	}
	if f.exec != nil {
		return f.exec(ctx, o.Exec)
	}
	return &api.ExecResult{Status: "finished", Reason: "exited"}, nil
}

func (f *fake) CreateWorkspace(ctx context.Context, o hearth.CreateOptions) (*api.Workspace, error) {
	if err := f.rec("CreateWorkspace", o); err != nil {
		return nil, err
	}
	return ws(o.Name), nil
}

func (f *fake) ListWorkspaces(ctx context.Context) ([]api.Workspace, error) {
	return nil, f.rec("ListWorkspaces")
}

func (f *fake) Show(ctx context.Context, w string) (*api.Workspace, error) {
	if err := f.rec("Show", w); err != nil {
		return nil, err
	}
	if f.show != nil {
		return f.show(ctx, w)
	}
	return ws(w), nil
}

func (f *fake) Start(ctx context.Context, w string) (*api.Workspace, error) {
	return ws(w), f.rec("Start", w)
}

func (f *fake) Stop(ctx context.Context, w string) (*api.Workspace, error) {
	return ws(w), f.rec("Stop", w)
}

func (f *fake) Delete(ctx context.Context, w string, force bool) (*api.Workspace, error) {
	return ws(w), f.rec("Delete", w, force)
}

func (f *fake) Exec(ctx context.Context, w string, o hearth.ExecOptions) (*api.ExecResult, error) {
	if err := f.rec("Exec", w, o); err != nil {
		return nil, err
	}
	if f.exec != nil {
		return f.exec(ctx, o)
	}
	return &api.ExecResult{CommandID: "c1", Status: "finished", Reason: "exited", Stdout: "hi\n", StdoutBytes: 3}, nil
}

func (f *fake) Logs(ctx context.Context, w string, o hearth.LogsOptions) ([]api.Command, error) {
	return nil, f.rec("Logs", w, o)
}

func (f *fake) SyncPush(ctx context.Context, w, src string, o hearth.SyncOptions) (*hearth.SyncResult, error) {
	return &hearth.SyncResult{Source: src, Dest: "/workspace"}, f.rec("SyncPush", w, src, o)
}

func (f *fake) Diff(ctx context.Context, w string, o hearth.DiffOptions) (*hearth.DiffResult, error) {
	return &hearth.DiffResult{}, f.rec("Diff", w, o)
}

func (f *fake) Export(ctx context.Context, w, g, h string, o hearth.ExportOptions) (*hearth.ExportResult, error) {
	return &hearth.ExportResult{GuestPath: g, HostPath: h}, f.rec("Export", w, g, h, o)
}

func (f *fake) CommandWait(ctx context.Context, w, id string, t time.Duration) (*api.ExecResult, error) {
	return &api.ExecResult{CommandID: id}, f.rec("CommandWait", w, id, t)
}

func (f *fake) CommandRead(ctx context.Context, w, id, stream string, off int64, limit int) (*api.CommandOutput, error) {
	return &api.CommandOutput{CommandID: id, Stream: stream}, f.rec("CommandRead", w, id, stream, off, limit)
}

func (f *fake) CommandKill(ctx context.Context, w, id, sig string) (*api.ExecResult, error) {
	return &api.ExecResult{CommandID: id}, f.rec("CommandKill", w, id, sig)
}

func (f *fake) ShellOpen(ctx context.Context, w string, o hearth.ShellOpenOptions) (*api.Shell, error) {
	return &api.Shell{ID: "s1"}, f.rec("ShellOpen", w, o)
}

func (f *fake) ShellWrite(ctx context.Context, w, id string, data []byte) (*api.Shell, error) {
	return &api.Shell{ID: id}, f.rec("ShellWrite", w, id, data)
}

func (f *fake) ShellRead(ctx context.Context, w, id string, o hearth.ShellReadOptions) (*api.ShellOutput, error) {
	return &api.ShellOutput{}, f.rec("ShellRead", w, id, o)
}

func (f *fake) ShellResize(ctx context.Context, w, id string, cols, rows int) (*api.Shell, error) {
	return &api.Shell{ID: id, Cols: cols, Rows: rows}, f.rec("ShellResize", w, id, cols, rows)
}

func (f *fake) ShellSignal(ctx context.Context, w, id, sig string) (*api.Shell, error) {
	return &api.Shell{ID: id}, f.rec("ShellSignal", w, id, sig)
}

func (f *fake) ShellClose(ctx context.Context, w, id string) (*api.Shell, error) {
	return &api.Shell{ID: id}, f.rec("ShellClose", w, id)
}

func (f *fake) ShellList(ctx context.Context, w string) ([]api.Shell, error) {
	return nil, f.rec("ShellList", w)
}
