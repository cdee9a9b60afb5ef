package httpapi

import (
	"context"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
)

// Service is what the API serves: the Go SDK's operations with the
// workspace reference as an argument. FromClient adapts a *hearth.Client;
// tests use fakes.
type Service interface {
	Run(ctx context.Context, o hearth.RunOptions) (*api.ExecResult, error)
	CreateWorkspace(ctx context.Context, o hearth.CreateOptions) (*api.Workspace, error)
	ListWorkspaces(ctx context.Context) ([]api.Workspace, error)
	Show(ctx context.Context, ws string) (*api.Workspace, error)
	Start(ctx context.Context, ws string) (*api.Workspace, error)
	Stop(ctx context.Context, ws string) (*api.Workspace, error)
	Delete(ctx context.Context, ws string, force bool) (*api.Workspace, error)
	Exec(ctx context.Context, ws string, o hearth.ExecOptions) (*api.ExecResult, error)
	Logs(ctx context.Context, ws string, o hearth.LogsOptions) ([]api.Command, error)
	SyncPush(ctx context.Context, ws, src string, o hearth.SyncOptions) (*hearth.SyncResult, error)
	Diff(ctx context.Context, ws string, o hearth.DiffOptions) (*hearth.DiffResult, error)
	Export(ctx context.Context, ws, guestPath, hostDest string, o hearth.ExportOptions) (*hearth.ExportResult, error)
	CommandWait(ctx context.Context, ws, id string, timeout time.Duration) (*api.ExecResult, error)
	CommandRead(ctx context.Context, ws, id, stream string, offset int64, limit int) (*api.CommandOutput, error)
	CommandKill(ctx context.Context, ws, id, signal string) (*api.ExecResult, error)
	ShellOpen(ctx context.Context, ws string, o hearth.ShellOpenOptions) (*api.Shell, error)
	ShellWrite(ctx context.Context, ws, id string, data []byte) (*api.Shell, error)
	ShellRead(ctx context.Context, ws, id string, o hearth.ShellReadOptions) (*api.ShellOutput, error)
	ShellResize(ctx context.Context, ws, id string, cols, rows int) (*api.Shell, error)
	ShellSignal(ctx context.Context, ws, id, signal string) (*api.Shell, error)
	ShellClose(ctx context.Context, ws, id string) (*api.Shell, error)
	ShellList(ctx context.Context, ws string) ([]api.Shell, error)
}

// FromClient serves a Go SDK client.
func FromClient(c *hearth.Client) Service { return sdk{c} }

type sdk struct{ c *hearth.Client }

func (s sdk) Run(ctx context.Context, o hearth.RunOptions) (*api.ExecResult, error) {
	return s.c.Run(ctx, o)
}

func (s sdk) CreateWorkspace(ctx context.Context, o hearth.CreateOptions) (*api.Workspace, error) {
	w, err := s.c.CreateWorkspace(ctx, o)
	if err != nil {
		return nil, err
	}
	return &w.Info, nil
}

func (s sdk) ListWorkspaces(ctx context.Context) ([]api.Workspace, error) {
	return s.c.ListWorkspaces(ctx)
}

func (s sdk) Show(ctx context.Context, ws string) (*api.Workspace, error) {
	return s.c.Workspace(ws).Show(ctx)
}

func (s sdk) Start(ctx context.Context, ws string) (*api.Workspace, error) {
	return s.c.Workspace(ws).Start(ctx)
}

func (s sdk) Stop(ctx context.Context, ws string) (*api.Workspace, error) {
	return s.c.Workspace(ws).Stop(ctx)
}

func (s sdk) Delete(ctx context.Context, ws string, force bool) (*api.Workspace, error) {
	return s.c.Workspace(ws).Delete(ctx, force)
}

func (s sdk) Exec(ctx context.Context, ws string, o hearth.ExecOptions) (*api.ExecResult, error) {
	return s.c.Workspace(ws).Exec(ctx, o)
}

func (s sdk) Logs(ctx context.Context, ws string, o hearth.LogsOptions) ([]api.Command, error) {
	return s.c.Workspace(ws).Logs(ctx, o)
}

func (s sdk) SyncPush(ctx context.Context, ws, src string, o hearth.SyncOptions) (*hearth.SyncResult, error) {
	return s.c.Workspace(ws).SyncPush(ctx, src, o)
}

func (s sdk) Diff(ctx context.Context, ws string, o hearth.DiffOptions) (*hearth.DiffResult, error) {
	return s.c.Workspace(ws).Diff(ctx, o)
}

func (s sdk) Export(ctx context.Context, ws, guestPath, hostDest string, o hearth.ExportOptions) (*hearth.ExportResult, error) {
	return s.c.Workspace(ws).Export(ctx, guestPath, hostDest, o)
}

func (s sdk) CommandWait(ctx context.Context, ws, id string, timeout time.Duration) (*api.ExecResult, error) {
	return s.c.Workspace(ws).CommandWait(ctx, id, timeout)
}

func (s sdk) CommandRead(ctx context.Context, ws, id, stream string, offset int64, limit int) (*api.CommandOutput, error) {
	return s.c.Workspace(ws).CommandRead(ctx, id, stream, offset, limit)
}

func (s sdk) CommandKill(ctx context.Context, ws, id, signal string) (*api.ExecResult, error) {
	return s.c.Workspace(ws).CommandKill(ctx, id, signal)
}

func (s sdk) ShellOpen(ctx context.Context, ws string, o hearth.ShellOpenOptions) (*api.Shell, error) {
	return s.c.Workspace(ws).ShellOpen(ctx, o)
}

func (s sdk) ShellWrite(ctx context.Context, ws, id string, data []byte) (*api.Shell, error) {
	return s.c.Workspace(ws).ShellWrite(ctx, id, data)
}

func (s sdk) ShellRead(ctx context.Context, ws, id string, o hearth.ShellReadOptions) (*api.ShellOutput, error) {
	return s.c.Workspace(ws).ShellRead(ctx, id, o)
}

func (s sdk) ShellResize(ctx context.Context, ws, id string, cols, rows int) (*api.Shell, error) {
	return s.c.Workspace(ws).ShellResize(ctx, id, cols, rows)
}

func (s sdk) ShellSignal(ctx context.Context, ws, id, signal string) (*api.Shell, error) {
	return s.c.Workspace(ws).ShellSignal(ctx, id, signal)
}

func (s sdk) ShellClose(ctx context.Context, ws, id string) (*api.Shell, error) {
	return s.c.Workspace(ws).ShellClose(ctx, id)
}

func (s sdk) ShellList(ctx context.Context, ws string) ([]api.Shell, error) {
	return s.c.Workspace(ws).ShellList(ctx)
}
