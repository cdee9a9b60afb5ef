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
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/backend"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/hearthvm/hearth/internal/ops"
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
	ErrCanceled           = errdefs.ErrCanceled
	// ErrInternal marks a failure of hearth itself. An error of no other
	// kind is internal too: compare kinds with KindOf when in doubt.
	ErrInternal = errdefs.ErrInternal
)

// KindOf returns the contract's error kind of err ("not_found",
// "invalid_argument", …; "internal" for an error of no other kind), the
// same word the HTTP API, MCP and the CLI's --json report.
func KindOf(err error) string { return string(errdefs.Classify(err)) }

// Client is the entry point of the SDK. Every operation goes through the
// operation table (internal/ops): in-process on the local engine, or over
// the HTTP API with WithRemote.
type Client struct {
	local  *workspace.Manager
	remote *remote
}

// Streams travel beside a request in-process: a command's stdin and its
// output as it is made, and progress messages of long operations.
type Streams = ops.IO

// Invoke runs the operation called name (see docs/public-contract.md)
// with req, a pointer to its request type in package api, and returns its
// result (a pointer to the api result type). Defaults are applied to req.
// The CLI, HTTP API and MCP server use it; Go programs usually call the
// typed methods.
func (c *Client) Invoke(ctx context.Context, name string, req any, s Streams) (any, error) {
	op, ok := ops.ByName(name)
	if !ok {
		return nil, fmt.Errorf("no operation %q (see docs/public-contract.md): %w", name, ErrNotImplemented)
	}
	if c.remote != nil {
		return c.remote.invoke(ctx, op, req, s)
	}
	if err := op.Prepare(req, false); err != nil {
		return nil, err
	}
	return op.Call(ctx, c.local, req, s)
}

// invoke runs a typed operation.
func invoke[Res any](ctx context.Context, c *Client, name string, req any, s Streams) (*Res, error) {
	out, err := c.Invoke(ctx, name, req, s)
	if err != nil {
		return nil, err
	}
	r, ok := out.(*Res)
	if !ok {
		return nil, fmt.Errorf("%s returned %T: %w", name, out, errdefs.ErrInternal)
	}
	return r, nil
}

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
		return &Client{remote: r}, nil
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
	return &Client{local: m}, nil
}

// Home returns the client's state directory ("" for a remote Client).
func (c *Client) Home() string {
	if c.local == nil {
		return ""
	}
	return c.local.Home()
}

// commandSpec converts ExecOptions to the request's command fields;
// stdin travels as a stream.
func commandSpec(o ExecOptions) api.CommandSpec {
	return api.CommandSpec{Argv: o.Argv, Command: o.Shell, Cwd: o.Cwd, Env: o.Env, TimeoutMS: millis(o.Timeout)}
}

func execStreams(o ExecOptions) Streams {
	return Streams{Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr}
}

func millis(d time.Duration) int64 {
	if d > 0 && d < time.Millisecond {
		return 1
	}
	return d.Milliseconds()
}

// Run boots a throwaway VM, runs one command and removes the VM.
func (c *Client) Run(ctx context.Context, o RunOptions) (*ExecResult, error) {
	req := api.RunRequest{Image: o.Image, Backend: o.Backend, CPUs: o.CPUs, MemoryMiB: o.MemoryMiB, CommandSpec: commandSpec(o.Exec)}
	if o.Exec.Detach || o.Exec.Yield > 0 {
		return nil, errdefs.Arg("detach", "run does not take detach or yield (a throwaway VM ends with its command): use a workspace")
	}
	return invoke[ExecResult](ctx, c, "run", &req, execStreams(o.Exec))
}

// CreateWorkspace creates a workspace and returns it once its guest answers.
// A remote Client does not call o.Progress.
func (c *Client) CreateWorkspace(ctx context.Context, o CreateOptions) (*Workspace, error) {
	req := api.CreateRequest{Name: o.Name, Image: o.Image, Backend: o.Backend, CPUs: o.CPUs, MemoryMiB: o.MemoryMiB, Seed: o.Seed,
		Publish: o.Publish, AllowNonLoopback: o.AllowNonLoopback, Disks: diskSpecs(o.Disks),
		Secrets: o.Secrets, SecretEnvAll: o.SecretEnvAll, NetworkSpec: o.Network.Spec()}
	if c.remote != nil {
		req.Seed = absPath(o.Seed)
	}
	if o.DiskSize != 0 {
		req.DiskSize = strconv.FormatInt(o.DiskSize, 10)
	}
	info, err := invoke[WorkspaceInfo](ctx, c, "workspace_create", &req, Streams{Progress: o.Progress})
	if err != nil {
		return nil, err
	}
	return &Workspace{c: c, ref: info.ID, Info: *info}, nil
}

// ListWorkspaces returns every workspace, oldest first.
func (c *Client) ListWorkspaces(ctx context.Context) ([]WorkspaceInfo, error) {
	l, err := invoke[api.WorkspaceList](ctx, c, "workspace_list", &api.ListRequest{}, Streams{})
	if err != nil {
		return nil, err
	}
	return l.Workspaces, nil
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

func (w *Workspace) req() api.WorkspaceRequest { return api.WorkspaceRequest{Workspace: w.ref} }

// Show returns the workspace's current state.
func (w *Workspace) Show(ctx context.Context) (*WorkspaceInfo, error) {
	r := w.req()
	return w.keep(invoke[WorkspaceInfo](ctx, w.c, "workspace_show", &r, Streams{}))
}

// Start boots a stopped workspace, or resumes a suspended one (no-op
// when running).
func (w *Workspace) Start(ctx context.Context) (*WorkspaceInfo, error) {
	r := w.req()
	return w.keep(invoke[WorkspaceInfo](ctx, w.c, "workspace_start", &r, Streams{}))
}

// Stop shuts the workspace down cleanly (no-op when stopped). It waits
// for calls in flight (at most 30 s) and then refuses naming them; see
// StopForce.
func (w *Workspace) Stop(ctx context.Context) (*WorkspaceInfo, error) {
	return w.keep(invoke[WorkspaceInfo](ctx, w.c, "workspace_stop", &api.StopRequest{Workspace: w.ref}, Streams{}))
}

// StopForce stops the workspace even while calls are in flight (they fail).
func (w *Workspace) StopForce(ctx context.Context) (*WorkspaceInfo, error) {
	return w.keep(invoke[WorkspaceInfo](ctx, w.c, "workspace_stop", &api.StopRequest{Workspace: w.ref, Force: true}, Streams{}))
}

// Suspend saves the guest's memory as it stops (QEMU); the next Start
// resumes its processes instead of booting. It waits for calls in flight
// like Stop.
func (w *Workspace) Suspend(ctx context.Context) (*WorkspaceInfo, error) {
	return w.keep(invoke[WorkspaceInfo](ctx, w.c, "workspace_stop", &api.StopRequest{Workspace: w.ref, Suspend: true}, Streams{}))
}

// Delete removes the workspace and all its files; a running one only with
// force.
func (w *Workspace) Delete(ctx context.Context, force bool) (*WorkspaceInfo, error) {
	return invoke[WorkspaceInfo](ctx, w.c, "workspace_delete", &api.DeleteRequest{Workspace: w.ref, Force: force}, Streams{})
}

// Exec runs a command and records it in the command log. The result
// carries up to api.OutputLimit bytes of each stream (the whole output is
// in the command log); o.Stdout and o.Stderr also receive it as it is
// made.
func (w *Workspace) Exec(ctx context.Context, o ExecOptions) (*ExecResult, error) {
	req := api.ExecRequest{Workspace: w.ref, CommandSpec: commandSpec(o), YieldMS: millis(o.Yield), Detach: o.Detach, SecretEnv: o.SecretEnv}
	if (o.Detach || o.Yield > 0) && (o.Stdout != nil || o.Stderr != nil) {
		return nil, errdefs.Arg("detach", "a detached command's output goes to the command log, not to writers: read it with CommandRead")
	}
	return invoke[ExecResult](ctx, w.c, "workspace_exec", &req, execStreams(o))
}

// Logs returns the command log (the last o.Tail entries, or all), reading
// it page by page.
func (w *Workspace) Logs(ctx context.Context, o LogsOptions) ([]Command, error) {
	var all []Command
	for off := 0; ; {
		l, err := invoke[api.CommandList](ctx, w.c, "workspace_logs", &api.LogsRequest{Workspace: w.ref, Tail: o.Tail, Offset: off, Limit: 10000}, Streams{})
		if err != nil {
			return nil, err
		}
		all = append(all, l.Commands...)
		if l.NextOffset >= l.Total || len(l.Commands) == 0 {
			return all, nil
		}
		off = l.NextOffset
	}
}

// CommandOutput opens the full "stdout" or "stderr" of a logged command.
// A remote Client reads it page by page through CommandRead.
func (w *Workspace) CommandOutput(ctx context.Context, commandID, stream string) (io.ReadCloser, *Command, error) {
	if w.c.local != nil {
		return w.c.local.CommandOutput(ctx, w.ref, commandID, stream)
	}
	cmds, err := w.Logs(ctx, LogsOptions{})
	if err != nil {
		return nil, nil, err
	}
	for i := range cmds {
		if cmds[i].ID == commandID {
			return &outputReader{ctx: ctx, w: w, id: commandID, stream: stream}, &cmds[i], nil
		}
	}
	return nil, nil, fmt.Errorf("command %q in workspace %q: %w", commandID, w.ref, ErrNotFound)
}

// More public types.
type (
	// DiffOptions select what a diff reports.
	DiffOptions = workspace.DiffOptions
	// DiffResult is a structured diff against the baseline.
	DiffResult = api.DiffResult
	// ExportOptions configure an export.
	ExportOptions = workspace.ExportOptions
	// ExportResult says what an export wrote.
	ExportResult = api.ExportResult
	// SyncOptions configure a push.
	SyncOptions = workspace.SyncOptions
	// SyncResult says what a push did.
	SyncResult = api.SyncResult
	// Shell is a PTY shell session.
	Shell = api.Shell
	// ShellOutput is output read from a shell.
	ShellOutput = api.ShellOutput
	// ShellOpenOptions configure a new shell.
	ShellOpenOptions = workspace.ShellOpenOptions
	// ShellReadOptions select shell output.
	ShellReadOptions = workspace.ShellReadOptions
)

// hostPath makes a host path absolute for a remote Client (it is a path on
// the server's machine; relative paths are resolved here first).
func (c *Client) hostPath(p string) string {
	if c.remote != nil {
		return absPath(p)
	}
	return p
}

// SyncPush pushes a host directory into the workspace (only changed files
// cross). It never changes the baseline.
func (w *Workspace) SyncPush(ctx context.Context, src string, o SyncOptions) (*SyncResult, error) {
	req := api.SyncPushRequest{Workspace: w.ref, Source: w.c.hostPath(src), Dest: o.Dest, Delete: o.Delete, Exclude: o.Exclude}
	return invoke[SyncResult](ctx, w.c, "workspace_sync_push", &req, Streams{})
}

// Diff compares the live /workspace with the create-time baseline.
func (w *Workspace) Diff(ctx context.Context, o DiffOptions) (*DiffResult, error) {
	req := api.DiffRequest{Workspace: w.ref, Paths: o.Paths, NoPatch: o.NoPatch, Exclude: o.Exclude, MaxPatchBytes: o.MaxPatchBytes, MaxTotalPatchBytes: o.MaxTotalPatchBytes,
		Offset: o.Offset, Limit: o.Limit}
	return invoke[DiffResult](ctx, w.c, "workspace_diff", &req, Streams{})
}

// Export copies a file or directory under /workspace to a new host
// directory, or to an archive with o.Archive.
func (w *Workspace) Export(ctx context.Context, guestPath, hostDest string, o ExportOptions) (*ExportResult, error) {
	req := api.ExportRequest{Workspace: w.ref, GuestPath: guestPath, HostDest: w.c.hostPath(hostDest), Archive: o.Archive, Force: o.Force, PreserveMode: o.PreserveMode, Exclude: o.Exclude}
	return invoke[ExportResult](ctx, w.c, "workspace_export", &req, Streams{})
}

// ShellOpen starts a persistent PTY shell session.
func (w *Workspace) ShellOpen(ctx context.Context, o ShellOpenOptions) (*Shell, error) {
	req := api.ShellOpenRequest{Workspace: w.ref, Cwd: o.Cwd, Env: o.Env, Cols: o.Cols, Rows: o.Rows, SecretEnv: o.SecretEnv}
	return invoke[Shell](ctx, w.c, "shell_open", &req, Streams{})
}

// ShellWrite sends bytes to a shell exactly as given.
func (w *Workspace) ShellWrite(ctx context.Context, shellID string, data []byte) (*Shell, error) {
	req := api.ShellWriteRequest{Workspace: w.ref, ShellID: shellID}
	if utf8.Valid(data) {
		req.Data = string(data)
	} else {
		req.DataBase64 = base64.StdEncoding.EncodeToString(data)
	}
	return invoke[Shell](ctx, w.c, "shell_write", &req, Streams{})
}

// ShellRead returns a shell's output from a cursor on.
func (w *Workspace) ShellRead(ctx context.Context, shellID string, o ShellReadOptions) (*ShellOutput, error) {
	req := api.ShellReadRequest{Workspace: w.ref, ShellID: shellID, Cursor: o.Cursor, WaitMS: millis(o.Wait), Plain: o.Plain}
	return invoke[ShellOutput](ctx, w.c, "shell_read", &req, Streams{})
}

// ShellResize changes a shell's terminal size.
func (w *Workspace) ShellResize(ctx context.Context, shellID string, cols, rows int) (*Shell, error) {
	req := api.ShellResizeRequest{Workspace: w.ref, ShellID: shellID, Cols: cols, Rows: rows}
	return invoke[Shell](ctx, w.c, "shell_resize", &req, Streams{})
}

// ShellSignal signals a shell's foreground process group: one of
// api.Signals (INT, TERM, KILL, HUP, QUIT, USR1, USR2, TSTP, CONT).
func (w *Workspace) ShellSignal(ctx context.Context, shellID, signal string) (*Shell, error) {
	req := api.ShellSignalRequest{Workspace: w.ref, ShellID: shellID, Signal: signal}
	return invoke[Shell](ctx, w.c, "shell_signal", &req, Streams{})
}

// ShellClose ends a shell session. Closing a closed shell returns its
// final state.
func (w *Workspace) ShellClose(ctx context.Context, shellID string) (*Shell, error) {
	return invoke[Shell](ctx, w.c, "shell_close", &api.ShellRequest{Workspace: w.ref, ShellID: shellID}, Streams{})
}

// ShellList lists the workspace's shell sessions.
func (w *Workspace) ShellList(ctx context.Context) ([]Shell, error) {
	r := w.req()
	l, err := invoke[api.ShellList](ctx, w.c, "shell_list", &r, Streams{})
	if err != nil {
		return nil, err
	}
	return l.Shells, nil
}

// ShellAttach connects a terminal to a shell until it exits or stdin ends.
// A remote Client (WithRemote) returns ErrNotImplemented: use ShellWrite
// and ShellRead.
func (w *Workspace) ShellAttach(ctx context.Context, shellID string, stdin io.Reader, stdout io.Writer, resize <-chan [2]int) error {
	if w.c.local == nil {
		return fmt.Errorf("shell attach over the HTTP API: use ShellWrite and ShellRead, or attach with the local CLI: %w", ErrNotImplemented)
	}
	return w.c.local.ShellAttach(ctx, w.ref, shellID, stdin, stdout, resize)
}

// CommandOutput is a slice of a logged command's output.
type CommandOutput = api.CommandOutput

// CommandWait waits up to timeout for a command (started with Detach or
// Yield) to finish; status "running" means it has not yet. A zero timeout
// takes the contract's default (30 s); a check that does not wait passes
// a millisecond.
func (w *Workspace) CommandWait(ctx context.Context, commandID string, timeout time.Duration) (*ExecResult, error) {
	req := api.CommandWaitRequest{Workspace: w.ref, CommandID: commandID, TimeoutMS: millis(timeout)}
	return invoke[ExecResult](ctx, w.c, "command_wait", &req, Streams{})
}

// CommandRead returns up to limit bytes (0: 64 KiB, at most 1 MiB) of a
// command's "stdout" or "stderr" from offset.
func (w *Workspace) CommandRead(ctx context.Context, commandID, stream string, offset int64, limit int) (*CommandOutput, error) {
	req := api.CommandReadRequest{Workspace: w.ref, CommandID: commandID, Stream: stream, Offset: offset, Limit: limit}
	return invoke[CommandOutput](ctx, w.c, "command_read", &req, Streams{})
}

// CommandKill signals a running command's process group (default KILL).
func (w *Workspace) CommandKill(ctx context.Context, commandID, signal string) (*ExecResult, error) {
	req := api.CommandKillRequest{Workspace: w.ref, CommandID: commandID, Signal: signal}
	return invoke[ExecResult](ctx, w.c, "command_kill", &req, Streams{})
}

// outputReader pages through CommandRead up to the output's size.
type outputReader struct {
	ctx        context.Context
	w          *Workspace
	id, stream string
	off        int64
	buf        []byte
	done       bool
}

func (o *outputReader) Read(p []byte) (int, error) {
	for len(o.buf) == 0 {
		if o.done {
			return 0, io.EOF
		}
		out, err := o.w.CommandRead(o.ctx, o.id, o.stream, o.off, 1<<20)
		if err != nil {
			return 0, err
		}
		data := []byte(out.Data)
		if out.Encoding == "base64" {
			if data, err = base64.StdEncoding.DecodeString(out.Data); err != nil {
				return 0, fmt.Errorf("command output: %v: %w", err, errdefs.ErrInternal)
			}
		}
		o.buf, o.off = data, out.NextOffset
		o.done = out.NextOffset >= out.TotalBytes || len(data) == 0
	}
	n := copy(p, o.buf)
	o.buf = o.buf[n:]
	return n, nil
}

func (o *outputReader) Close() error { return nil }
