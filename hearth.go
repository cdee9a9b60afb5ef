// Package hearth is the Go SDK for hearth: persistent microVM workspaces
// that agents, people and programs inhabit.
//
// A Client works in-process from the state directory ($HEARTH_HOME); no
// daemon is needed. With WithRemote it speaks instead to a `hearth serve`
// HTTP API (docs/http-api.md) over a Unix socket or TCP, with the same
// methods, results and error kinds. The CLI, the MCP server and the HTTP API are thin
// layers over this package, so an operation has the same name, arguments,
// defaults and errors everywhere (docs/public-contract.md).
//
//	c, err := hearth.New()
//	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{Name: "demo"})
//	res, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"uname", "-a"}, Capture: true})
//	fmt.Print(res.Stdout)
//	_, err = ws.Delete(ctx, true)
//
// Errors carry a kind testable with errors.Is: ErrNotFound,
// ErrInvalidArgument, ErrFailedPrecondition, ErrAlreadyExists, ErrConflict,
// ErrUnavailable, ErrTimeout.
package hearth

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/backend"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/hearthvm/hearth/internal/workspace"
)

// Public data types (see package api).
type (
	// WorkspaceInfo describes a workspace.
	WorkspaceInfo = api.Workspace
	// ExecResult is the outcome of a command.
	ExecResult = api.ExecResult
	// Command is an entry of a workspace's command log.
	Command = api.Command
	// CreateOptions configure a new workspace.
	CreateOptions = workspace.CreateOptions
	// ExecOptions describe a command.
	ExecOptions = workspace.ExecOptions
	// RunOptions configure a throwaway VM.
	RunOptions = workspace.RunOptions
	// LogsOptions select command log entries.
	LogsOptions = workspace.LogsOptions
)

// Error kinds, for errors.Is.
var (
	ErrNotFound           = errdefs.ErrNotFound
	ErrAlreadyExists      = errdefs.ErrAlreadyExists
	ErrInvalidArgument    = errdefs.ErrInvalidArgument
	ErrFailedPrecondition = errdefs.ErrFailedPrecondition
	ErrConflict           = errdefs.ErrConflict
	ErrUnavailable        = errdefs.ErrUnavailable
	ErrTimeout            = errdefs.ErrTimeout
	ErrNotImplemented     = errdefs.ErrNotImplemented
	ErrResourceExhausted  = errdefs.ErrResourceExhausted
)

// Client is the entry point of the SDK.
type Client struct {
	m engine
}

// engine carries out operations: the local *workspace.Manager, or the
// remote engine that speaks the HTTP API of `hearth serve` (remote.go).
type engine interface {
	Home() string
	Run(ctx context.Context, o RunOptions) (*ExecResult, error)
	Create(ctx context.Context, o CreateOptions) (*WorkspaceInfo, error)
	List(ctx context.Context) ([]WorkspaceInfo, error)
	Get(ctx context.Context, ref string) (*WorkspaceInfo, error)
	Start(ctx context.Context, ref string) (*WorkspaceInfo, error)
	Stop(ctx context.Context, ref string) (*WorkspaceInfo, error)
	Delete(ctx context.Context, ref string, force bool) (*WorkspaceInfo, error)
	Exec(ctx context.Context, ref string, o ExecOptions) (*ExecResult, error)
	Logs(ctx context.Context, ref string, o LogsOptions) ([]Command, error)
	CommandOutput(ctx context.Context, ref, commandID, stream string) (io.ReadCloser, *Command, error)
	SyncPush(ctx context.Context, ref, src string, o SyncOptions) (*SyncResult, error)
	Diff(ctx context.Context, ref string, o DiffOptions) (*DiffResult, error)
	Export(ctx context.Context, ref, guestPath, hostDest string, o ExportOptions) (*ExportResult, error)
	ShellOpen(ctx context.Context, ref string, o ShellOpenOptions) (*Shell, error)
	ShellWrite(ctx context.Context, ref, shellID string, data []byte) (*Shell, error)
	ShellRead(ctx context.Context, ref, shellID string, o ShellReadOptions) (*ShellOutput, error)
	ShellResize(ctx context.Context, ref, shellID string, cols, rows int) (*Shell, error)
	ShellSignal(ctx context.Context, ref, shellID, signal string) (*Shell, error)
	ShellClose(ctx context.Context, ref, shellID string) (*Shell, error)
	ShellList(ctx context.Context, ref string) ([]Shell, error)
	ShellAttach(ctx context.Context, ref, shellID string, stdin io.Reader, stdout io.Writer, resize <-chan [2]int) error
	CommandWait(ctx context.Context, ref, commandID string, timeout time.Duration) (*ExecResult, error)
	CommandRead(ctx context.Context, ref, commandID, stream string, offset int64, limit int) (*CommandOutput, error)
	CommandKill(ctx context.Context, ref, commandID, signal string) (*ExecResult, error)
}

var _ engine = (*workspace.Manager)(nil)

type config struct {
	home string
	exe  string
	boot time.Duration
	log  *slog.Logger
	// remote and token select the remote engine (WithRemote).
	remote, token string
	remoteSet     bool
}

// Option configures a Client.
type Option func(*config)

// WithHome sets the state directory (default $HEARTH_HOME, else
// ${XDG_DATA_HOME:-$HOME/.local/share}/hearth).
func WithHome(dir string) Option { return func(c *config) { c.home = dir } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithExecutable sets the hearth binary that supervises VMs (`hearth
// _supervise`); needed when the calling program is not hearth itself. The
// default is $HEARTH_BIN, else `hearth` found next to hearth-agent.
func WithExecutable(path string) Option { return func(c *config) { c.exe = path } }

// WithBootTimeout bounds how long a guest may take to answer after its VMM
// starts (default 60 s).
func WithBootTimeout(d time.Duration) Option { return func(c *config) { c.boot = d } }

// WithRemote makes the Client speak to a `hearth serve` HTTP API instead
// of working in-process. addr is unix:///path/to/hearth.sock or
// http://host:port; token is the bearer token a TCP server requires ("" for
// a Unix socket). Host paths (a seed, a sync source, an export
// destination) are made absolute here and are paths on the machine the
// server runs on. WithHome, WithExecutable and WithBootTimeout do not
// apply to a remote Client.
func WithRemote(addr, token string) Option {
	return func(c *config) { c.remote, c.token, c.remoteSet = addr, token, true }
}

// New returns a Client over the local state directory, or over a `hearth
// serve` API with WithRemote.
func New(opts ...Option) (*Client, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.remoteSet {
		r, err := newRemote(cfg.remote, cfg.token)
		if err != nil {
			return nil, err
		}
		return &Client{m: r}, nil
	}
	if cfg.home == "" {
		cfg.home = home.Dir()
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if cfg.exe == "" {
		cfg.exe = defaultExe()
	}
	m, err := workspace.New(workspace.Options{
		Home: cfg.home, Exe: cfg.exe, Log: cfg.log, BootTimeout: cfg.boot,
		Backends: backend.Factory(backend.Config{CacheDir: home.Cache(cfg.home), Log: cfg.log}),
	})
	if err != nil {
		return nil, err
	}
	return &Client{m: m}, nil
}

// Home returns the client's state directory ("" for a remote Client).
func (c *Client) Home() string { return c.m.Home() }

// Run boots a throwaway VM, runs one command and removes the VM.
func (c *Client) Run(ctx context.Context, o RunOptions) (*ExecResult, error) {
	return c.m.Run(ctx, o)
}

// CreateWorkspace creates a workspace and returns it once its guest answers.
func (c *Client) CreateWorkspace(ctx context.Context, o CreateOptions) (*Workspace, error) {
	info, err := c.m.Create(ctx, o)
	if err != nil {
		return nil, err
	}
	return &Workspace{c: c, ref: info.ID, Info: *info}, nil
}

// ListWorkspaces returns every workspace, oldest first.
func (c *Client) ListWorkspaces(ctx context.Context) ([]WorkspaceInfo, error) {
	return c.m.List(ctx)
}

// Workspace returns a handle for a workspace id or name. It is not checked
// until used.
func (c *Client) Workspace(ref string) *Workspace { return &Workspace{c: c, ref: ref} }

// Workspace is a handle on one workspace.
type Workspace struct {
	c   *Client
	ref string
	// Info is the workspace as last seen by this handle (set by
	// CreateWorkspace and refreshed by Show, Start, Stop).
	Info WorkspaceInfo
}

// Ref returns the id or name the handle addresses.
func (w *Workspace) Ref() string { return w.ref }

func (w *Workspace) keep(i *WorkspaceInfo, err error) (*WorkspaceInfo, error) {
	if err == nil && i != nil {
		w.Info = *i
	}
	return i, err
}

// Show returns the workspace's current state.
func (w *Workspace) Show(ctx context.Context) (*WorkspaceInfo, error) {
	return w.keep(w.c.m.Get(ctx, w.ref))
}

// Start boots a stopped workspace (no-op when running).
func (w *Workspace) Start(ctx context.Context) (*WorkspaceInfo, error) {
	return w.keep(w.c.m.Start(ctx, w.ref))
}

// Stop shuts the workspace down cleanly (no-op when stopped).
func (w *Workspace) Stop(ctx context.Context) (*WorkspaceInfo, error) {
	return w.keep(w.c.m.Stop(ctx, w.ref))
}

// Delete removes the workspace and all its files; a running one only with
// force.
func (w *Workspace) Delete(ctx context.Context, force bool) (*WorkspaceInfo, error) {
	return w.c.m.Delete(ctx, w.ref, force)
}

// Exec runs a command and records it in the command log.
func (w *Workspace) Exec(ctx context.Context, o ExecOptions) (*ExecResult, error) {
	return w.c.m.Exec(ctx, w.ref, o)
}

// Logs returns the command log.
func (w *Workspace) Logs(ctx context.Context, o LogsOptions) ([]Command, error) {
	return w.c.m.Logs(ctx, w.ref, o)
}

// CommandOutput opens the full "stdout" or "stderr" of a logged command.
// A remote Client reads it page by page through CommandRead.
func (w *Workspace) CommandOutput(ctx context.Context, commandID, stream string) (io.ReadCloser, *Command, error) {
	return w.c.m.CommandOutput(ctx, w.ref, commandID, stream)
}

// More public types.
type (
	// DiffOptions select what a diff reports.
	DiffOptions = workspace.DiffOptions
	// DiffResult is a structured diff against the baseline.
	DiffResult = workspace.DiffResult
	// ExportOptions configure an export.
	ExportOptions = workspace.ExportOptions
	// ExportResult says what an export wrote.
	ExportResult = workspace.ExportResult
	// SyncOptions configure a push.
	SyncOptions = workspace.SyncOptions
	// SyncResult says what a push did.
	SyncResult = workspace.SyncResult
	// Shell is a PTY shell session.
	Shell = api.Shell
	// ShellOutput is output read from a shell.
	ShellOutput = api.ShellOutput
	// ShellOpenOptions configure a new shell.
	ShellOpenOptions = workspace.ShellOpenOptions
	// ShellReadOptions select shell output.
	ShellReadOptions = workspace.ShellReadOptions
)

// SyncPush pushes a host directory into the workspace (only changed files
// cross). It never changes the baseline.
func (w *Workspace) SyncPush(ctx context.Context, src string, o SyncOptions) (*SyncResult, error) {
	return w.c.m.SyncPush(ctx, w.ref, src, o)
}

// Diff compares the live /workspace with the create-time baseline.
func (w *Workspace) Diff(ctx context.Context, o DiffOptions) (*DiffResult, error) {
	return w.c.m.Diff(ctx, w.ref, o)
}

// Export copies a file or directory under /workspace to a new host
// directory, or to an archive with o.Archive.
func (w *Workspace) Export(ctx context.Context, guestPath, hostDest string, o ExportOptions) (*ExportResult, error) {
	return w.c.m.Export(ctx, w.ref, guestPath, hostDest, o)
}

// ShellOpen starts a persistent PTY shell session.
func (w *Workspace) ShellOpen(ctx context.Context, o ShellOpenOptions) (*Shell, error) {
	return w.c.m.ShellOpen(ctx, w.ref, o)
}

// ShellWrite sends bytes to a shell exactly as given.
func (w *Workspace) ShellWrite(ctx context.Context, shellID string, data []byte) (*Shell, error) {
	return w.c.m.ShellWrite(ctx, w.ref, shellID, data)
}

// ShellRead returns a shell's output from a cursor on.
func (w *Workspace) ShellRead(ctx context.Context, shellID string, o ShellReadOptions) (*ShellOutput, error) {
	return w.c.m.ShellRead(ctx, w.ref, shellID, o)
}

// ShellResize changes a shell's terminal size.
func (w *Workspace) ShellResize(ctx context.Context, shellID string, cols, rows int) (*Shell, error) {
	return w.c.m.ShellResize(ctx, w.ref, shellID, cols, rows)
}

// ShellSignal signals a shell's foreground process group (INT, TERM, KILL, HUP).
func (w *Workspace) ShellSignal(ctx context.Context, shellID, signal string) (*Shell, error) {
	return w.c.m.ShellSignal(ctx, w.ref, shellID, signal)
}

// ShellClose ends a shell session.
func (w *Workspace) ShellClose(ctx context.Context, shellID string) (*Shell, error) {
	return w.c.m.ShellClose(ctx, w.ref, shellID)
}

// ShellList lists the workspace's shell sessions.
func (w *Workspace) ShellList(ctx context.Context) ([]Shell, error) {
	return w.c.m.ShellList(ctx, w.ref)
}

// ShellAttach connects a terminal to a shell until it exits or stdin ends.
// A remote Client (WithRemote) returns ErrNotImplemented: use ShellWrite
// and ShellRead.
func (w *Workspace) ShellAttach(ctx context.Context, shellID string, stdin io.Reader, stdout io.Writer, resize <-chan [2]int) error {
	return w.c.m.ShellAttach(ctx, w.ref, shellID, stdin, stdout, resize)
}

// CommandOutput is a slice of a logged command's output.
type CommandOutput = api.CommandOutput

// CommandWait waits up to timeout for a command (started with Detach or
// Yield) to finish; status "running" means it has not yet.
func (w *Workspace) CommandWait(ctx context.Context, commandID string, timeout time.Duration) (*ExecResult, error) {
	return w.c.m.CommandWait(ctx, w.ref, commandID, timeout)
}

// CommandRead returns up to limit bytes of a command's "stdout" or
// "stderr" from offset.
func (w *Workspace) CommandRead(ctx context.Context, commandID, stream string, offset int64, limit int) (*CommandOutput, error) {
	return w.c.m.CommandRead(ctx, w.ref, commandID, stream, offset, limit)
}

// CommandKill signals a running command's process group (default KILL).
func (w *Workspace) CommandKill(ctx context.Context, commandID, signal string) (*ExecResult, error) {
	return w.c.m.CommandKill(ctx, w.ref, commandID, signal)
}
