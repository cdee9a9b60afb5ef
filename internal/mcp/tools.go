package mcp

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Waits: no call blocks for more than about 50 s (clients time out around
// 60 s), so waits are capped and long commands yield a handle.
const (
	// DefaultYieldMS is workspace_exec's wait when yield_ms is not given.
	DefaultYieldMS = 10000
	// DefaultWaitMS is command_wait's wait when timeout_ms is not given.
	DefaultWaitMS = 10000
	// MaxWaitMS caps yield_ms, command_wait's timeout_ms and shell_read's
	// wait_ms.
	MaxWaitMS = 45000
	// DefaultRunTimeoutMS and MaxRunTimeoutMS bound `run`'s command, which
	// cannot yield (its VM ends with it).
	DefaultRunTimeoutMS = 40000
	MaxRunTimeoutMS     = 45000
)

// Tool inputs: "workspace" plus the api request shape of the operation.
type (
	wsIn struct {
		Workspace string `json:"workspace"`
	}
	deleteIn struct {
		Workspace string `json:"workspace"`
		Force     bool   `json:"force,omitempty"`
	}
	execIn struct {
		Workspace string `json:"workspace"`
		api.ExecRequest
	}
	logsIn struct {
		Workspace string `json:"workspace"`
		api.LogsRequest
	}
	syncIn struct {
		Workspace string `json:"workspace"`
		api.SyncPushRequest
	}
	diffIn struct {
		Workspace string `json:"workspace"`
		api.DiffRequest
	}
	exportIn struct {
		Workspace string `json:"workspace"`
		api.ExportRequest
	}
	cmdWaitIn struct {
		Workspace string `json:"workspace"`
		CommandID string `json:"command_id"`
		api.CommandWaitRequest
	}
	cmdReadIn struct {
		Workspace string `json:"workspace"`
		CommandID string `json:"command_id"`
		api.CommandReadRequest
	}
	cmdKillIn struct {
		Workspace string `json:"workspace"`
		CommandID string `json:"command_id"`
		api.CommandKillRequest
	}
	shellOpenIn struct {
		Workspace string `json:"workspace"`
		api.ShellOpenRequest
	}
	shellIn struct {
		Workspace string `json:"workspace"`
		ShellID   string `json:"shell_id"`
	}
	shellWriteIn struct {
		Workspace string `json:"workspace"`
		ShellID   string `json:"shell_id"`
		api.ShellWriteRequest
	}
	shellReadIn struct {
		Workspace string `json:"workspace"`
		ShellID   string `json:"shell_id"`
		api.ShellReadRequest
	}
	shellResizeIn struct {
		Workspace string `json:"workspace"`
		ShellID   string `json:"shell_id"`
		api.ShellResizeRequest
	}
	shellSignalIn struct {
		Workspace string `json:"workspace"`
		ShellID   string `json:"shell_id"`
		api.ShellSignalRequest
	}
)

// List results are wrapped in an object (structuredContent is an object).
type (
	// WorkspaceList is workspace_list's result.
	WorkspaceList struct {
		Workspaces []api.Workspace `json:"workspaces"`
	}
	// CommandList is workspace_logs's result.
	CommandList struct {
		Commands []api.Command `json:"commands"`
	}
	// ShellList is shell_list's result.
	ShellList struct {
		Shells []api.Shell `json:"shells"`
	}
)

// register adds one tool per operation.
func (h *server) register(s *sdk.Server) {
	addTool(s, h, "run", toolSpec{
		guide: "Boots a throwaway VM, runs one short command (argv or command) and removes the VM: nothing persists. " +
			"The command is limited to 45 s (timeout_ms, default 40000). For longer work, or to keep files, use workspace_create then workspace_exec.",
		args: map[string]string{"timeout_ms": "Kill the command after this many milliseconds (default 40000, at most 45000).",
			"yield_ms": "Not accepted by run (its VM ends with the command); use a workspace.", "detach": "Not accepted by run; use a workspace."},
	}, h.run)
	addTool(s, h, "workspace_create", toolSpec{
		guide: "Boots a persistent Linux microVM. With seed (a host directory or archive) /workspace starts as a copy of it, recorded as the baseline workspace_diff compares against. " +
			"Use the returned name or id as the workspace argument of the other tools: workspace_exec runs commands, shell_open opens an interactive shell. " +
			"Booting takes seconds (progress is reported). Delete it with workspace_delete when done.",
	}, h.create)
	addTool(s, h, "workspace_list", toolSpec{
		guide: "Returns every workspace with its state (running, stopped, error). Boot a stopped one with workspace_start.",
	}, h.list)
	addTool(s, h, "workspace_show", toolSpec{guide: "Returns the workspace's state and settings."}, h.show)
	addTool(s, h, "workspace_start", toolSpec{
		guide: "No-op when running. Files under /workspace persist across stop and start; running commands and shells do not.",
	}, h.start)
	addTool(s, h, "workspace_stop", toolSpec{
		guide: "Its disk persists: boot it again with workspace_start. No-op when stopped.",
	}, h.stop)
	addTool(s, h, "workspace_delete", toolSpec{
		guide: "This cannot be undone: copy out what you need first with workspace_export. A running workspace needs force=true.",
		args:  map[string]string{"force": "Delete it even when it is running."},
	}, h.delete)
	addTool(s, h, "workspace_exec", toolSpec{
		guide: "Runs argv directly, or command with /bin/sh -c, in the guest (cwd /workspace unless given) and waits up to yield_ms (default 10000, at most 45000). " +
			"Finished: status \"finished\" with exit_code, stdout and stderr. Still running: status \"running\" with a command_id, not an error: the command keeps running; " +
			"call command_wait to wait more, command_read to page its output, command_kill to stop it. " +
			"stdout and stderr keep their first and last 16 KiB here (the *_truncated flags say when), page the rest with command_read. For interactive programs use shell_open.",
	}, h.exec)
	addTool(s, h, "workspace_logs", toolSpec{
		guide: "Returns the workspace's commands with their ids, status, exit codes and output sizes. Read a command's output with command_read.",
	}, h.logs)
	addTool(s, h, "workspace_sync_push", toolSpec{
		guide: "Copies the files of a host directory that are new or changed into the guest (unchanged ones do not cross). The baseline is not changed, so workspace_diff then shows them as changes.",
	}, h.syncPush)
	addTool(s, h, "workspace_diff", toolSpec{
		guide: "Returns each changed path with its status (added, modified, deleted, type_changed, mode_changed), sizes, whether it is binary, and a unified patch for text files. " +
			"Read-only: no command log entry, shells untouched. Patches are bounded here (16 KiB per file, 64 KiB in all; patch_omitted says what was cut): " +
			"narrow with paths, use no_patch for a summary, or workspace_export a file to see it whole.",
	}, h.diff)
	addTool(s, h, "workspace_export", toolSpec{
		guide: "Writes to a new host path on the machine hearth runs on: a directory, or a tar archive with archive=true. The destination appears whole or not at all; replacing a non-empty one needs force=true.",
		args:  map[string]string{"force": "Replace an existing non-empty destination."},
	}, h.export)
	addTool(s, h, "command_wait", toolSpec{
		guide: "For a command that workspace_exec returned with status \"running\". Waits up to timeout_ms; status \"running\" again means it still runs: call command_wait again, read output with command_read, or stop it with command_kill.",
		args:  map[string]string{"timeout_ms": "Wait at most this many milliseconds (default 10000, at most 45000)."},
	}, h.commandWait)
	addTool(s, h, "command_read", toolSpec{
		guide: "Reads a command's stdout or stderr from a byte offset: output cut from a workspace_exec result, or a running command's output so far. " +
			"Continue from next_offset; when status is \"finished\" and next_offset equals total_bytes there is no more.",
	}, h.commandRead)
	addTool(s, h, "command_kill", toolSpec{
		guide: "Sends a signal (default KILL) to a running command's process group and returns the command's result.",
	}, h.commandKill)
	addTool(s, h, "shell_open", toolSpec{
		guide: "Starts an interactive shell on a pseudo-terminal that keeps its state (cwd, environment, background jobs) between calls until shell_close or the workspace stops. " +
			"Send input with shell_write and read output with shell_read using the returned id as shell_id.",
		args: map[string]string{"cwd": "Starting directory (default /workspace).", "env": "Extra environment entries, each \"KEY=VALUE\"."},
	}, h.shellOpen)
	addTool(s, h, "shell_write", toolSpec{
		guide: "Input is sent exactly as given: end a command line with \"\\n\". Then call shell_read with wait_ms to see the output.",
	}, h.shellWrite)
	addTool(s, h, "shell_read", toolSpec{
		guide: "Returns output from cursor (default: where the previous read ended), waiting up to wait_ms for new output. Pass next_cursor to continue; plain=true strips terminal escapes. " +
			"dropped_bytes > 0 means output fell out of the shell's bounded buffer before it was read.",
	}, h.shellRead)
	addTool(s, h, "shell_resize", toolSpec{guide: "Sets the terminal size full-screen programs see."}, h.shellResize)
	addTool(s, h, "shell_signal", toolSpec{
		guide: "INT interrupts the running program like Ctrl-C; TERM, KILL and HUP end it.",
	}, h.shellSignal)
	addTool(s, h, "shell_close", toolSpec{guide: "Ends the shell and its processes. Closing a closed shell is fine."}, h.shellClose)
	addTool(s, h, "shell_list", toolSpec{guide: "Returns the workspace's shells with their state and output size."}, h.shellList)
}

func (h *server) ws(ref string) *hearth.Workspace { return h.c.Workspace(ref) }

func (h *server) run(ctx context.Context, in api.RunRequest) (string, api.ExecResult, error) {
	if in.TimeoutMS == 0 {
		in.TimeoutMS = DefaultRunTimeoutMS
	}
	in.TimeoutMS = min(in.TimeoutMS, MaxRunTimeoutMS)
	o, err := hearth.RunOptionsFrom(in)
	if err != nil {
		return "", api.ExecResult{}, err
	}
	report(ctx, "booting a throwaway VM")
	res, err := h.c.Run(ctx, o)
	if err != nil {
		return "", api.ExecResult{}, fmt.Errorf("run: %w", err)
	}
	notes := boundExec(res)
	return execSummary(res, notes), *res, nil
}

func (h *server) create(ctx context.Context, in api.CreateRequest) (string, api.Workspace, error) {
	o, err := hearth.CreateOptionsFrom(in)
	if err != nil {
		return "", api.Workspace{}, err
	}
	o.Progress = func(msg string) { report(ctx, msg) }
	w, err := h.c.CreateWorkspace(ctx, o)
	if err != nil {
		return "", api.Workspace{}, err
	}
	i := w.Info
	s := fmt.Sprintf("Created workspace %s (id %s, image %s, %s/%s), %s.", i.Name, i.ID, i.Image, i.Backend, i.Accel, i.State)
	if i.Seed != "" {
		s += fmt.Sprintf(" /workspace was seeded from %s (the baseline for workspace_diff).", i.Seed)
	}
	s += fmt.Sprintf(" Next: workspace_exec or shell_open with workspace=%q.", i.Name)
	return s, i, nil
}

func (h *server) list(ctx context.Context, _ struct{}) (string, WorkspaceList, error) {
	l, err := h.c.ListWorkspaces(ctx)
	if err != nil {
		return "", WorkspaceList{}, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d workspace(s)", len(l))
	for _, w := range l {
		fmt.Fprintf(&b, "\n%s (%s): %s", w.Name, w.ID, w.State)
	}
	return b.String(), WorkspaceList{Workspaces: nonNil(l)}, nil
}

func wsSummary(verb string, i *api.Workspace) string {
	s := fmt.Sprintf("Workspace %s (%s) %s: state %s", i.Name, i.ID, verb, i.State)
	if i.Error != "" {
		s += ", error: " + i.Error
	}
	return s + "."
}

func (h *server) show(ctx context.Context, in wsIn) (string, api.Workspace, error) {
	i, err := h.ws(in.Workspace).Show(ctx)
	if err != nil {
		return "", api.Workspace{}, err
	}
	return wsSummary("is", i), *i, nil
}

func (h *server) start(ctx context.Context, in wsIn) (string, api.Workspace, error) {
	i, err := h.ws(in.Workspace).Start(ctx)
	if err != nil {
		return "", api.Workspace{}, err
	}
	return wsSummary("started", i), *i, nil
}

func (h *server) stop(ctx context.Context, in wsIn) (string, api.Workspace, error) {
	i, err := h.ws(in.Workspace).Stop(ctx)
	if err != nil {
		return "", api.Workspace{}, err
	}
	return wsSummary("stopped", i), *i, nil
}

func (h *server) delete(ctx context.Context, in deleteIn) (string, api.Workspace, error) {
	i, err := h.ws(in.Workspace).Delete(ctx, in.Force)
	if err != nil {
		return "", api.Workspace{}, err
	}
	return fmt.Sprintf("Deleted workspace %s (%s) and all its files.", i.Name, i.ID), *i, nil
}

func (h *server) exec(ctx context.Context, in execIn) (string, api.ExecResult, error) {
	r := in.ExecRequest
	if r.YieldMS == 0 && !r.Detach {
		r.YieldMS = DefaultYieldMS
	}
	r.YieldMS = min(r.YieldMS, MaxWaitMS)
	o, err := hearth.ExecOptionsFrom(r)
	if err != nil {
		return "", api.ExecResult{}, err
	}
	res, err := h.ws(in.Workspace).Exec(ctx, o)
	if err != nil {
		return "", api.ExecResult{}, err
	}
	notes := boundExec(res)
	return execSummary(res, notes), *res, nil
}

func (h *server) logs(ctx context.Context, in logsIn) (string, CommandList, error) {
	l, err := h.ws(in.Workspace).Logs(ctx, hearth.LogsOptions{Tail: in.Tail})
	if err != nil {
		return "", CommandList{}, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d command(s)", len(l))
	for _, c := range l {
		what := c.Shell
		if what == "" {
			what = strings.Join(c.Argv, " ")
		}
		code := ""
		if c.ExitCode != nil {
			code = fmt.Sprintf(" exit %d", *c.ExitCode)
		}
		fmt.Fprintf(&b, "\n%s %s%s: %s", c.ID, c.Status, code, preview(what, 80))
	}
	return b.String(), CommandList{Commands: nonNil(l)}, nil
}

func (h *server) syncPush(ctx context.Context, in syncIn) (string, hearth.SyncResult, error) {
	r, err := h.ws(in.Workspace).SyncPush(ctx, in.Source, hearth.SyncOptions{Dest: in.Dest, Delete: in.Delete})
	if err != nil {
		return "", hearth.SyncResult{}, err
	}
	r.Warnings = nonNil(r.Warnings)
	s := fmt.Sprintf("Pushed %d of %d files (%d bytes) from %s to %s", r.Sent, r.Scanned, r.Bytes, r.Source, r.Dest)
	if r.Deleted > 0 {
		s += fmt.Sprintf(", deleted %d", r.Deleted)
	}
	s += "."
	if len(r.Warnings) > 0 {
		s += fmt.Sprintf(" %d warning(s): %s", len(r.Warnings), listShort(r.Warnings))
	}
	return s, *r, nil
}

func (h *server) diff(ctx context.Context, in diffIn) (string, hearth.DiffResult, error) {
	r, err := h.ws(in.Workspace).Diff(ctx, hearth.DiffOptions{Paths: in.Paths, NoPatch: in.NoPatch})
	if err != nil {
		return "", hearth.DiffResult{}, err
	}
	r.Files = nonNil(r.Files)
	notes := boundDiff(r)
	var b strings.Builder
	sm := r.Summary
	if len(r.Files) == 0 {
		b.WriteString("No changes against the baseline.")
	} else {
		fmt.Fprintf(&b, "%d path(s) changed (+%d -%d lines): %d added, %d modified, %d deleted, %d type changed, %d mode changed.",
			len(r.Files), sm.Insertions, sm.Deletions, sm.Added, sm.Modified, sm.Deleted, sm.TypeChanged, sm.ModeChanged)
		for i, f := range r.Files {
			if i == 30 {
				fmt.Fprintf(&b, "\n... and %d more", len(r.Files)-i)
				break
			}
			fmt.Fprintf(&b, "\n%s %s", f.Status, f.Path)
			if f.Insertions+f.Deletions > 0 {
				fmt.Fprintf(&b, " (+%d -%d)", f.Insertions, f.Deletions)
			}
		}
	}
	for _, n := range notes {
		b.WriteString("\n" + n)
	}
	return b.String(), *r, nil
}

func (h *server) export(ctx context.Context, in exportIn) (string, hearth.ExportResult, error) {
	r, err := h.ws(in.Workspace).Export(ctx, in.GuestPath, in.HostDest, hearth.ExportOptions{Archive: in.Archive, Force: in.Force})
	if err != nil {
		return "", hearth.ExportResult{}, err
	}
	r.Warnings = nonNil(r.Warnings)
	s := fmt.Sprintf("Exported %s to %s: %d files, %d dirs, %d symlinks, %d bytes.", r.GuestPath, r.HostPath, r.Files, r.Dirs, r.Symlinks, r.Bytes)
	if len(r.Warnings) > 0 {
		s += fmt.Sprintf(" %d warning(s): %s", len(r.Warnings), listShort(r.Warnings))
	}
	return s, *r, nil
}

func (h *server) commandWait(ctx context.Context, in cmdWaitIn) (string, api.ExecResult, error) {
	ms := in.TimeoutMS
	if ms == 0 {
		ms = DefaultWaitMS
	}
	ms = min(ms, MaxWaitMS)
	res, err := h.ws(in.Workspace).CommandWait(ctx, in.CommandID, time.Duration(ms)*time.Millisecond)
	if err != nil {
		return "", api.ExecResult{}, err
	}
	notes := boundExec(res)
	return execSummary(res, notes), *res, nil
}

func (h *server) commandRead(ctx context.Context, in cmdReadIn) (string, api.CommandOutput, error) {
	limit := in.Limit
	if limit <= 0 || limit > ReadLimit {
		limit = ReadLimit
	}
	o, err := h.ws(in.Workspace).CommandRead(ctx, in.CommandID, in.Stream, in.Offset, limit)
	if err != nil {
		return "", api.CommandOutput{}, err
	}
	s := fmt.Sprintf("%s of %s, bytes %d to %d of %d (%s).", o.Stream, o.CommandID, o.Offset, o.NextOffset, o.TotalBytes, o.Status)
	switch {
	case o.NextOffset < o.TotalBytes:
		s += fmt.Sprintf(" More: command_read offset=%d.", o.NextOffset)
	case o.Status == api.StatusRunning:
		s += " The command is still running: read again later from next_offset, or command_wait."
	}
	if o.Encoding == "" && o.Data != "" {
		s += "\n" + preview(o.Data, 4096)
	}
	return s, *o, nil
}

func (h *server) commandKill(ctx context.Context, in cmdKillIn) (string, api.ExecResult, error) {
	res, err := h.ws(in.Workspace).CommandKill(ctx, in.CommandID, in.Signal)
	if err != nil {
		return "", api.ExecResult{}, err
	}
	notes := boundExec(res)
	return execSummary(res, notes), *res, nil
}

func shellSummary(verb string, s *api.Shell) string {
	out := fmt.Sprintf("Shell %s %s: %s, %dx%d, %d bytes of output so far", s.ID, verb, s.State, s.Cols, s.Rows, s.OutputBytes)
	if s.ExitCode != nil {
		out += fmt.Sprintf(", exit code %d", *s.ExitCode)
	}
	return out + "."
}

func (h *server) shellOpen(ctx context.Context, in shellOpenIn) (string, api.Shell, error) {
	sh, err := h.ws(in.Workspace).ShellOpen(ctx, hearth.ShellOpenOptions{Cwd: in.Cwd, Env: in.Env, Cols: in.Cols, Rows: in.Rows})
	if err != nil {
		return "", api.Shell{}, err
	}
	return shellSummary("opened", sh) + fmt.Sprintf(" Next: shell_write then shell_read with shell_id=%q.", sh.ID), *sh, nil
}

func (h *server) shellWrite(ctx context.Context, in shellWriteIn) (string, api.Shell, error) {
	data, err := hearth.ShellWriteData(in.ShellWriteRequest)
	if err != nil {
		return "", api.Shell{}, err
	}
	sh, err := h.ws(in.Workspace).ShellWrite(ctx, in.ShellID, data)
	if err != nil {
		return "", api.Shell{}, err
	}
	return fmt.Sprintf("Sent %d bytes to shell %s (%s). Read the output with shell_read.", len(data), sh.ID, sh.State), *sh, nil
}

func (h *server) shellRead(ctx context.Context, in shellReadIn) (string, api.ShellOutput, error) {
	wait := min(in.WaitMS, MaxWaitMS)
	o, err := h.ws(in.Workspace).ShellRead(ctx, in.ShellID, hearth.ShellReadOptions{Cursor: in.Cursor, Wait: time.Duration(wait) * time.Millisecond, Plain: in.Plain})
	if err != nil {
		return "", api.ShellOutput{}, err
	}
	s := fmt.Sprintf("Shell %s (%s): output %d to %d.", in.ShellID, o.State, o.Cursor, o.NextCursor)
	if o.DroppedBytes > 0 {
		s += fmt.Sprintf(" %d bytes were dropped before this read.", o.DroppedBytes)
	}
	if o.Encoding == "" && o.Output != "" {
		s += "\n" + preview(o.Output, 4096)
	}
	return s, *o, nil
}

func (h *server) shellResize(ctx context.Context, in shellResizeIn) (string, api.Shell, error) {
	sh, err := h.ws(in.Workspace).ShellResize(ctx, in.ShellID, in.Cols, in.Rows)
	if err != nil {
		return "", api.Shell{}, err
	}
	return shellSummary("resized", sh), *sh, nil
}

func (h *server) shellSignal(ctx context.Context, in shellSignalIn) (string, api.Shell, error) {
	sh, err := h.ws(in.Workspace).ShellSignal(ctx, in.ShellID, in.Signal)
	if err != nil {
		return "", api.Shell{}, err
	}
	return shellSummary("signalled ("+in.Signal+")", sh), *sh, nil
}

func (h *server) shellClose(ctx context.Context, in shellIn) (string, api.Shell, error) {
	sh, err := h.ws(in.Workspace).ShellClose(ctx, in.ShellID)
	if err != nil {
		return "", api.Shell{}, err
	}
	return shellSummary("closed", sh), *sh, nil
}

func (h *server) shellList(ctx context.Context, in wsIn) (string, ShellList, error) {
	l, err := h.ws(in.Workspace).ShellList(ctx)
	if err != nil {
		return "", ShellList{}, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d shell(s)", len(l))
	for _, s := range l {
		fmt.Fprintf(&b, "\n%s: %s", s.ID, s.State)
	}
	return b.String(), ShellList{Shells: nonNil(l)}, nil
}

// execSummary is the text of a command result: status, then the end of
// each stream and notes on what was cut.
func execSummary(r *api.ExecResult, notes []string) string {
	var b strings.Builder
	if r.Status == api.StatusRunning {
		fmt.Fprintf(&b, "Command %s is still running after %d ms (not an error): command_wait to wait more, command_read to page its output, command_kill to stop it.", r.CommandID, r.DurationMS)
	} else {
		fmt.Fprintf(&b, "Command %s %s with exit code %d in %d ms", r.CommandID, r.Reason, r.ExitCode, r.DurationMS)
		if r.Signal != "" {
			fmt.Fprintf(&b, " (signal %s)", r.Signal)
		}
		if r.TimedOut {
			b.WriteString(" (timed out)")
		}
		b.WriteString(".")
	}
	if r.Message != "" {
		b.WriteString(" " + r.Message)
	}
	for _, st := range []struct{ name, data, enc string }{{"stdout", r.Stdout, r.StdoutEncoding}, {"stderr", r.Stderr, r.StderrEncoding}} {
		switch {
		case st.data == "":
		case st.enc != "":
			fmt.Fprintf(&b, "\n%s: %d bytes, %s-encoded (see structured %s).", st.name, len(st.data), st.enc, st.name)
		default:
			fmt.Fprintf(&b, "\n--- %s (end) ---\n%s", st.name, preview(st.data, 2048))
		}
	}
	for _, n := range notes {
		b.WriteString("\n" + n)
	}
	return b.String()
}

// preview returns the last n bytes of s (on a UTF-8 boundary), marked when
// cut.
func preview(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return "…" + s[i:]
}
