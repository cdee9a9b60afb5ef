package ops

import (
	"context"
	"encoding/base64"
	"io"
	"strings"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/workspace"
)

// MCP's defaults, which keep every MCP call under its clients' usual
// 60-second limit. Each is documented under the argument's own name.
const (
	MCPYieldMS      = 10000
	MCPRunTimeoutMS = 40000
	// MCPMaxPatchBytes and MCPMaxTotalPatchBytes keep a diff result within a
	// model's context.
	MCPMaxPatchBytes      = 16 << 10
	MCPMaxTotalPatchBytes = 64 << 10
)

type m = workspace.Manager

// All lists the operations in the order the contract documents them.
var All = []Op{
	{
		Name: "run", Summary: "Run one command in a throwaway VM and remove it",
		Guide: "Boots a throwaway VM, runs one short command (argv or command) and removes the VM: nothing persists. " +
			"It cannot yield (its VM ends with the command): for longer work, or to keep files, use workspace_create then workspace_exec.",
		CLI: "run", Go: "Client.Run", Python: "Client.run", Method: "POST", Path: "/v1/run",
		Request: api.RunRequest{}, Result: api.ExecResult{}, Stream: true,
		MCP: map[string]int64{"timeout_ms": MCPRunTimeoutMS},
		local: bind(func(ctx context.Context, m *m, r api.RunRequest, s IO) (*api.ExecResult, error) {
			e, err := execOptions(r.CommandSpec, s)
			if err != nil {
				return nil, err
			}
			return m.Run(ctx, workspace.RunOptions{Image: r.Image, Backend: r.Backend, CPUs: r.CPUs, MemoryMiB: r.MemoryMiB, Exec: e})
		}),
	},
	{
		Name: "workspace_create", Summary: "Create a workspace (optionally seeded) and boot it",
		Guide: "Boots a persistent Linux microVM. With seed (a host directory or archive) /workspace starts as a copy of it, recorded as the baseline workspace_diff compares against. " +
			"Use the returned name or id as the workspace argument of the other tools: workspace_exec runs commands, shell_open opens an interactive shell. " +
			"Booting takes seconds (progress is reported). Delete it with workspace_delete when done.",
		CLI: "workspace create", Go: "Client.CreateWorkspace", Python: "Client.create_workspace", Method: "POST", Path: "/v1/workspaces",
		Request: api.CreateRequest{}, Result: api.Workspace{},
		local: bind(func(ctx context.Context, m *m, r api.CreateRequest, s IO) (*api.Workspace, error) {
			o := workspace.CreateOptions{Name: r.Name, Image: r.Image, Backend: r.Backend, CPUs: r.CPUs, MemoryMiB: r.MemoryMiB, Seed: r.Seed, Progress: s.Progress,
				Publish: r.Publish, PublishOptions: workspace.PublishOptions{AllowNonLoopback: r.AllowNonLoopback},
				Secrets: r.Secrets, SecretEnvAll: r.SecretEnvAll, Network: r.NetworkSpec.Policy()}
			n, err := ParseSize(r.DiskSize)
			if err != nil {
				return nil, errdefs.Arg("disk_size", "%v", err)
			}
			o.DiskSize = n
			if o.Disks, err = parseDisks(r.Disks); err != nil {
				return nil, err
			}
			return m.Create(ctx, o)
		}),
	},
	{
		Name: "workspace_list", Summary: "List workspaces",
		Guide: "Returns every workspace with its state (running, stopped, error), oldest first. Boot a stopped one with workspace_start.",
		CLI:   "workspace list", Go: "Client.ListWorkspaces", Python: "Client.list_workspaces", Method: "GET", Path: "/v1/workspaces",
		Request: api.ListRequest{}, Result: api.WorkspaceList{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, _ api.ListRequest, _ IO) (*api.WorkspaceList, error) {
			l, err := m.List(ctx)
			if err != nil {
				return nil, err
			}
			return &api.WorkspaceList{Workspaces: nonNil(l)}, nil
		}),
	},
	{
		Name: "workspace_show", Summary: "Show one workspace", Guide: "Returns the workspace's state and settings.",
		CLI: "workspace show", Go: "Workspace.Show", Python: "Workspace.show", Method: "GET", Path: "/v1/workspaces/{workspace}",
		Request: api.WorkspaceRequest{}, Result: api.Workspace{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.WorkspaceRequest, _ IO) (*api.Workspace, error) {
			return m.Get(ctx, r.Workspace)
		}),
	},
	{
		Name: "workspace_start", Summary: "Boot a stopped workspace from its disk",
		Guide: "No-op when running. Files persist across stop and start; running commands and shells do not, unless the stop was a suspend: then start resumes them.",
		CLI:   "workspace start", Go: "Workspace.Start", Python: "Workspace.start", Method: "POST", Path: "/v1/workspaces/{workspace}/start",
		Request: api.WorkspaceRequest{}, Result: api.Workspace{}, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.WorkspaceRequest, _ IO) (*api.Workspace, error) {
			return m.Start(ctx, r.Workspace)
		}),
	},
	{
		Name: "workspace_stop", Summary: "Shut a workspace down cleanly",
		Guide: "Its disk persists: boot it again with workspace_start. No-op when stopped. " +
			"With suspend=true (QEMU) the guest's memory is saved as it stops, and the next workspace_start resumes its processes, shells and services instead of booting; workspace_show says suspended.",
		CLI: "workspace stop", Go: "Workspace.Stop", Python: "Workspace.stop", Method: "POST", Path: "/v1/workspaces/{workspace}/stop",
		Request: api.StopRequest{}, Result: api.Workspace{}, Idempotent: true,
		ArgsDoc: map[string]string{
			"force":   "Stop even while calls (exec, export, …) are in flight: they fail. Without it the stop waits for them at most 30 s, then refuses naming them.",
			"suspend": "Save the guest's memory as it stops (QEMU): the next start resumes the running processes (pause and resume).",
		},
		local: bind(func(ctx context.Context, m *m, r api.StopRequest, _ IO) (*api.Workspace, error) {
			return m.StopWith(ctx, r.Workspace, workspace.StopOptions{Force: r.Force, Suspend: r.Suspend})
		}),
	},
	{
		Name: "workspace_delete", Summary: "Delete a workspace and all its files",
		Guide: "This cannot be undone: copy out what you need first with workspace_export. A running workspace needs force=true. " +
			"Deleting a workspace that no longer exists is not_found.",
		CLI: "workspace delete", Go: "Workspace.Delete", Python: "Workspace.delete", Method: "DELETE", Path: "/v1/workspaces/{workspace}",
		Request: api.DeleteRequest{}, Result: api.Workspace{}, Destructive: true,
		ArgsDoc: map[string]string{"force": "Delete it even when it is running (the VM is killed)."},
		local: bind(func(ctx context.Context, m *m, r api.DeleteRequest, _ IO) (*api.Workspace, error) {
			return m.Delete(ctx, r.Workspace, r.Force)
		}),
	},
	{
		Name: "workspace_exec", Summary: "Run a command in a workspace",
		Guide: "Runs argv directly, or command with /bin/sh -c, in the guest and waits up to yield_ms. " +
			"Finished: status \"finished\" with exit_code, stdout and stderr. Still running: status \"running\" with a command_id, not an error: the command keeps running; " +
			"call command_wait to wait more, command_read to page its output, command_kill to stop it. " +
			"stdout and stderr carry exact bytes; the *_truncated flags and *_offset fields say when part was left out (page the rest with command_read). For interactive programs use shell_open.",
		CLI: "workspace exec", Go: "Workspace.Exec", Python: "Workspace.exec", Method: "POST", Path: "/v1/workspaces/{workspace}/exec",
		Request: api.ExecRequest{}, Result: api.ExecResult{}, Destructive: true, Stream: true,
		MCP: map[string]int64{"yield_ms": MCPYieldMS},
		local: bind(func(ctx context.Context, m *m, r api.ExecRequest, s IO) (*api.ExecResult, error) {
			o, err := execOptions(r.CommandSpec, s)
			if err != nil {
				return nil, err
			}
			o.Detach, o.Yield, o.SecretEnv = r.Detach, ms(r.YieldMS), r.SecretEnv
			return m.Exec(ctx, r.Workspace, o)
		}),
	},
	{
		Name: "workspace_logs", Summary: "List the command log",
		Guide: "Returns the workspace's commands, oldest first, with their ids, status, exit codes and output sizes, a page at a time (offset, limit; next_offset continues, total counts all). Read a command's output with command_read.",
		CLI:   "workspace logs", Go: "Workspace.Logs", Python: "Workspace.logs", Method: "GET", Path: "/v1/workspaces/{workspace}/logs",
		Request: api.LogsRequest{}, Result: api.CommandList{}, ReadOnly: true, Idempotent: true,
		MCP: map[string]int64{"limit": 100},
		local: bind(func(ctx context.Context, m *m, r api.LogsRequest, _ IO) (*api.CommandList, error) {
			l, err := m.Logs(ctx, r.Workspace, workspace.LogsOptions{Tail: r.Tail})
			if err != nil {
				return nil, err
			}
			total := len(l)
			lo := min(r.Offset, total)
			hi := min(lo+r.Limit, total)
			return &api.CommandList{Commands: nonNil(l[lo:hi]), Total: total, NextOffset: hi}, nil
		}),
	},
	{
		Name: "workspace_logs_prune", Summary: "Remove finished commands' kept output",
		Guide: "Removes the output the host keeps of finished commands, oldest first: all of it, or as keep_last, older_than_ms and max_bytes select. " +
			"Their entries stay in the log, marked pruned. Running commands are never pruned. The log also prunes itself past its quota (about 1 GiB).",
		CLI: "workspace logs --prune", Go: "Workspace.PruneLogs", Python: "Workspace.logs_prune", Method: "POST", Path: "/v1/workspaces/{workspace}/logs/prune",
		Request: api.LogsPruneRequest{}, Result: api.LogsPruneResult{}, Destructive: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.LogsPruneRequest, _ IO) (*api.LogsPruneResult, error) {
			o := workspace.PruneLogsOptions{KeepLast: r.KeepLast, OlderThan: ms(r.OlderThanMS)}
			if r.MaxBytes != "" {
				n, err := ParseSize(r.MaxBytes)
				if err != nil {
					return nil, errdefs.Arg("max_bytes", "%v", err)
				}
				o.MaxBytes = n
			}
			res, err := m.PruneLogs(ctx, r.Workspace, o)
			if err != nil {
				return nil, err
			}
			return &api.LogsPruneResult{Pruned: nonNil(res.Pruned), FreedBytes: res.FreedBytes, LogBytes: res.LogBytes, QuotaBytes: res.QuotaBytes}, nil
		}),
	},
	{
		Name: "workspace_sync_push", Summary: "Push a host directory into the workspace",
		Guide: "Copies the files of a host directory that are new or changed into the guest (unchanged ones do not cross). The baseline is not changed, so workspace_diff then shows them as changes.",
		CLI:   "workspace sync push", Go: "Workspace.SyncPush", Python: "Workspace.sync_push", Method: "POST", Path: "/v1/workspaces/{workspace}/sync",
		Request: api.SyncPushRequest{}, Result: api.SyncResult{}, Destructive: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.SyncPushRequest, _ IO) (*api.SyncResult, error) {
			res, err := m.SyncPush(ctx, r.Workspace, r.Source, workspace.SyncOptions{Dest: r.Dest, Delete: r.Delete, Exclude: r.Exclude})
			if res != nil {
				res.Warnings = nonNil(res.Warnings)
			}
			return res, err
		}),
	},
	{
		Name: "workspace_diff", Summary: "Diff the live /workspace against the baseline",
		Guide: "Returns each changed path with its status (added, modified, deleted, type_changed, mode_changed), sizes, whether it is binary, and a unified patch for text files. " +
			"Read-only: no command log entry, shells untouched. Narrow with paths, use no_patch for a summary, or workspace_export a file to see it whole.",
		CLI: "workspace diff", Go: "Workspace.Diff", Python: "Workspace.diff", Method: "GET", Path: "/v1/workspaces/{workspace}/diff",
		Request: api.DiffRequest{}, Result: api.DiffResult{}, ReadOnly: true, Idempotent: true,
		MCP: map[string]int64{"max_patch_bytes": MCPMaxPatchBytes, "max_total_patch_bytes": MCPMaxTotalPatchBytes, "limit": 200},
		local: bind(func(ctx context.Context, m *m, r api.DiffRequest, _ IO) (*api.DiffResult, error) {
			res, err := m.Diff(ctx, r.Workspace, workspace.DiffOptions{Paths: r.Paths, NoPatch: r.NoPatch, Exclude: r.Exclude,
				MaxPatchBytes: r.MaxPatchBytes, MaxTotalPatchBytes: r.MaxTotalPatchBytes, Offset: r.Offset, Limit: r.Limit})
			if res != nil {
				res.Files = nonNil(res.Files)
			}
			return res, err
		}),
	},
	{
		Name: "workspace_export", Summary: "Copy a path out of /workspace to the host",
		Guide: "Writes to a new host path on the machine hearth runs on: a directory, or a tar archive with archive=true. The destination appears whole or not at all. " +
			"force=true replaces an existing destination, whole: everything that was at host_dest is gone afterwards.",
		CLI: "workspace export", Go: "Workspace.Export", Python: "Workspace.export", Method: "POST", Path: "/v1/workspaces/{workspace}/export",
		Request: api.ExportRequest{}, Result: api.ExportResult{}, Destructive: true,
		ArgsDoc: map[string]string{"force": "Replace an existing non-empty destination: everything at host_dest is removed and replaced, atomically."},
		local: bind(func(ctx context.Context, m *m, r api.ExportRequest, _ IO) (*api.ExportResult, error) {
			res, err := m.Export(ctx, r.Workspace, r.GuestPath, r.HostDest, workspace.ExportOptions{Archive: r.Archive, Force: r.Force, PreserveMode: r.PreserveMode, Exclude: r.Exclude})
			if res != nil {
				res.Warnings = nonNil(res.Warnings)
			}
			return res, err
		}),
	},
	{
		Name: "command_wait", Summary: "Wait for a running command",
		Guide: "For a command that workspace_exec returned with status \"running\". Waits up to timeout_ms; status \"running\" again means it still runs: call command_wait again, read output with command_read, or stop it with command_kill.",
		CLI:   "workspace wait", Go: "Workspace.CommandWait", Python: "Workspace.command_wait", Method: "POST", Path: "/v1/workspaces/{workspace}/commands/{command_id}/wait",
		Request: api.CommandWaitRequest{}, Result: api.ExecResult{}, ReadOnly: true, Idempotent: true,
		ArgsDoc: map[string]string{"timeout_ms": "Wait at most this many milliseconds (1 for a check that does not wait)."},
		local: bind(func(ctx context.Context, m *m, r api.CommandWaitRequest, _ IO) (*api.ExecResult, error) {
			return m.CommandWait(ctx, r.Workspace, r.CommandID, ms(r.TimeoutMS))
		}),
	},
	{
		Name: "command_read", Summary: "Read a command's output from an offset",
		Guide: "Reads a command's stdout or stderr from a byte offset: output left out of a workspace_exec result, or a running command's output so far. " +
			"Continue from next_offset; when status is \"finished\" and next_offset equals total_bytes there is no more.",
		CLI: "workspace output", Go: "Workspace.CommandRead", Python: "Workspace.command_read", Method: "GET", Path: "/v1/workspaces/{workspace}/commands/{command_id}/output",
		Request: api.CommandReadRequest{}, Result: api.CommandOutput{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.CommandReadRequest, _ IO) (*api.CommandOutput, error) {
			return m.CommandRead(ctx, r.Workspace, r.CommandID, r.Stream, r.Offset, r.Limit)
		}),
	},
	{
		Name: "command_kill", Summary: "Signal a running command",
		Guide: "Sends a signal to a running command's process group and returns the command's result.",
		CLI:   "workspace kill", Go: "Workspace.CommandKill", Python: "Workspace.command_kill", Method: "POST", Path: "/v1/workspaces/{workspace}/commands/{command_id}/kill",
		Request: api.CommandKillRequest{}, Result: api.ExecResult{}, Destructive: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.CommandKillRequest, _ IO) (*api.ExecResult, error) {
			return m.CommandKill(ctx, r.Workspace, r.CommandID, r.Signal)
		}),
	},
	{
		Name: "shell_open", Summary: "Open a persistent PTY shell",
		Guide: "Starts an interactive shell on a pseudo-terminal that keeps its state (cwd, environment, background jobs) between calls until shell_close or the workspace stops. " +
			"Send input with shell_write and read output with shell_read using the returned id as shell_id.",
		CLI: "workspace shell open", Go: "Workspace.ShellOpen", Python: "Workspace.shell_open", Method: "POST", Path: "/v1/workspaces/{workspace}/shells",
		Request: api.ShellOpenRequest{}, Result: api.Shell{},
		local: bind(func(ctx context.Context, m *m, r api.ShellOpenRequest, _ IO) (*api.Shell, error) {
			return m.ShellOpen(ctx, r.Workspace, workspace.ShellOpenOptions{Cwd: r.Cwd, Env: r.Env, Cols: r.Cols, Rows: r.Rows, SecretEnv: r.SecretEnv})
		}),
	},
	{
		Name: "shell_write", Summary: "Send bytes to a shell",
		Guide: "Input is sent exactly as given: end a command line with \"\\n\". Then call shell_read with wait_ms to see the output.",
		CLI:   "workspace shell write", Go: "Workspace.ShellWrite", Python: "Workspace.shell_write", Method: "POST", Path: "/v1/workspaces/{workspace}/shells/{shell_id}/write",
		Request: api.ShellWriteRequest{}, Result: api.Shell{}, Destructive: true,
		local: bind(func(ctx context.Context, m *m, r api.ShellWriteRequest, _ IO) (*api.Shell, error) {
			data, err := oneOf("data", r.Data, r.DataBase64)
			if err != nil {
				return nil, err
			}
			return m.ShellWrite(ctx, r.Workspace, r.ShellID, data)
		}),
	},
	{
		Name: "shell_read", Summary: "Read shell output from a cursor",
		Guide: "Returns output from cursor (default: where the previous read ended), waiting up to wait_ms for new output. Pass next_cursor to continue; plain=true strips terminal escapes. " +
			"dropped_bytes > 0 means output fell out of the shell's bounded buffer before it was read.",
		CLI: "workspace shell read", Go: "Workspace.ShellRead", Python: "Workspace.shell_read", Method: "GET", Path: "/v1/workspaces/{workspace}/shells/{shell_id}/output",
		Request: api.ShellReadRequest{}, Result: api.ShellOutput{}, ReadOnly: true,
		local: bind(func(ctx context.Context, m *m, r api.ShellReadRequest, _ IO) (*api.ShellOutput, error) {
			return m.ShellRead(ctx, r.Workspace, r.ShellID, workspace.ShellReadOptions{Cursor: r.Cursor, Wait: ms(r.WaitMS), Plain: r.Plain})
		}),
	},
	{
		Name: "shell_resize", Summary: "Resize a shell's terminal", Guide: "Sets the terminal size full-screen programs see.",
		CLI: "workspace shell resize", Go: "Workspace.ShellResize", Python: "Workspace.shell_resize", Method: "POST", Path: "/v1/workspaces/{workspace}/shells/{shell_id}/resize",
		Request: api.ShellResizeRequest{}, Result: api.Shell{}, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.ShellResizeRequest, _ IO) (*api.Shell, error) {
			return m.ShellResize(ctx, r.Workspace, r.ShellID, r.Cols, r.Rows)
		}),
	},
	{
		Name: "shell_signal", Summary: "Signal a shell's foreground process group",
		Guide: "INT interrupts the running program like Ctrl-C; TSTP suspends it like Ctrl-Z and CONT resumes it; TERM, KILL and HUP end it.",
		CLI:   "workspace shell signal", Go: "Workspace.ShellSignal", Python: "Workspace.shell_signal", Method: "POST", Path: "/v1/workspaces/{workspace}/shells/{shell_id}/signal",
		Request: api.ShellSignalRequest{}, Result: api.Shell{}, Destructive: true,
		local: bind(func(ctx context.Context, m *m, r api.ShellSignalRequest, _ IO) (*api.Shell, error) {
			return m.ShellSignal(ctx, r.Workspace, r.ShellID, r.Signal)
		}),
	},
	{
		Name: "shell_close", Summary: "Close a shell session",
		Guide: "Ends the shell and its processes. Closing a closed shell is fine: it returns the shell's final state.",
		CLI:   "workspace shell close", Go: "Workspace.ShellClose", Python: "Workspace.shell_close", Method: "DELETE", Path: "/v1/workspaces/{workspace}/shells/{shell_id}",
		Request: api.ShellRequest{}, Result: api.Shell{}, Destructive: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.ShellRequest, _ IO) (*api.Shell, error) {
			return m.ShellClose(ctx, r.Workspace, r.ShellID)
		}),
	},
	{
		Name: "shell_list", Summary: "List shell sessions", Guide: "Returns the workspace's shells with their state and output size.",
		CLI: "workspace shell list", Go: "Workspace.ShellList", Python: "Workspace.shell_list", Method: "GET", Path: "/v1/workspaces/{workspace}/shells",
		Request: api.WorkspaceRequest{}, Result: api.ShellList{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.WorkspaceRequest, _ IO) (*api.ShellList, error) {
			l, err := m.ShellList(ctx, r.Workspace)
			if err != nil {
				return nil, err
			}
			return &api.ShellList{Shells: nonNil(l)}, nil
		}),
	},
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

// execOptions converts a command spec. Output is always captured (bounded
// by api.OutputLimit): every surface returns it.
func execOptions(c api.CommandSpec, s IO) (workspace.ExecOptions, error) {
	o := workspace.ExecOptions{Argv: c.Argv, Shell: c.Command, Cwd: c.Cwd, Env: c.Env, Timeout: ms(c.TimeoutMS),
		Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, Capture: true}
	if c.Stdin != "" || c.StdinBase64 != "" {
		if s.Stdin != nil {
			return o, errdefs.Arg("stdin", "given both in the request and as a stream: give one")
		}
		b, err := oneOf("stdin", c.Stdin, c.StdinBase64)
		if err != nil {
			return o, err
		}
		o.Stdin = strings.NewReader(string(b))
	}
	return o, nil
}

// oneOf returns the bytes of a NAME / NAME_base64 argument pair.
func oneOf(name, text, b64 string) ([]byte, error) {
	if text != "" && b64 != "" {
		return nil, errdefs.Arg(name, "give %s or %s_base64, not both", name, name)
	}
	if b64 != "" {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, errdefs.Arg(name+"_base64", "not valid base64: %v", err)
		}
		return b, nil
	}
	return []byte(text), nil
}

// ReadAllLimited reads r up to limit bytes, failing beyond it (stdin sent
// inside a request).
func ReadAllLimited(r io.Reader, limit int64, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, errdefs.Arg(name, "read: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, errdefs.Arg(name, "more than %d bytes cannot travel in a request: push large input as a file with sync push", limit)
	}
	return b, nil
}
