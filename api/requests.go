package api

// Requests of the JSON surfaces (HTTP API bodies and MCP tool arguments
// share these shapes, so an operation takes the same arguments everywhere).
// Durations are integer milliseconds (*_ms); sizes are bytes or strings
// like "8G" where noted.

// RunRequest is the body of `run`.
type RunRequest struct {
	Image     string `json:"image,omitempty"`
	Backend   string `json:"backend,omitempty"`
	CPUs      int    `json:"cpus,omitempty"`
	MemoryMiB int    `json:"memory_mib,omitempty"`
	ExecRequest
}

// CreateRequest is the body of `workspace_create`.
type CreateRequest struct {
	Name      string `json:"name,omitempty"`
	Image     string `json:"image,omitempty"`
	Backend   string `json:"backend,omitempty"`
	CPUs      int    `json:"cpus,omitempty"`
	MemoryMiB int    `json:"memory_mib,omitempty"`
	// DiskSize is like "8G" or "512M" (default 8G).
	DiskSize string `json:"disk_size,omitempty"`
	// Seed is a host path (directory or .tar/.tar.gz/.tgz/.zip) on the
	// machine hearth runs on.
	Seed string `json:"seed,omitempty"`
}

// ExecRequest is the body of `workspace_exec` (and part of `run`). Exactly
// one of Argv (run directly) or Command (run by /bin/sh -c) is set.
type ExecRequest struct {
	Argv    []string `json:"argv,omitempty"`
	Command string   `json:"command,omitempty"`
	Cwd     string   `json:"cwd,omitempty"`
	// Env entries are "KEY=VALUE".
	Env       []string `json:"env,omitempty"`
	TimeoutMS int64    `json:"timeout_ms,omitempty"`
	// Stdin is given to the command as its standard input (UTF-8 text);
	// without it the command reads EOF.
	Stdin string `json:"stdin,omitempty"`
	// YieldMS waits at most this long; a command still running then comes
	// back with status "running" and keeps running (follow up with
	// command_wait/command_read/command_kill). 0 waits until it ends
	// (surfaces with call deadlines, like MCP, apply their own default).
	YieldMS int64 `json:"yield_ms,omitempty"`
	// Detach returns at once with status "running".
	Detach bool `json:"detach,omitempty"`
}

// LogsRequest selects command log entries.
type LogsRequest struct {
	Tail int `json:"tail,omitempty"`
}

// SyncPushRequest is the body of `workspace_sync_push`.
type SyncPushRequest struct {
	// Source is a host directory on the machine hearth runs on.
	Source string `json:"source"`
	Dest   string `json:"dest,omitempty"`
	Delete bool   `json:"delete,omitempty"`
}

// DiffRequest selects what `workspace_diff` reports.
type DiffRequest struct {
	Paths   []string `json:"paths,omitempty"`
	NoPatch bool     `json:"no_patch,omitempty"`
}

// ExportRequest is the body of `workspace_export`.
type ExportRequest struct {
	GuestPath string `json:"guest_path"`
	// HostDest is a host path on the machine hearth runs on.
	HostDest string `json:"host_dest"`
	Archive  bool   `json:"archive,omitempty"`
	Force    bool   `json:"force,omitempty"`
}

// CommandWaitRequest waits for a command.
type CommandWaitRequest struct {
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// CommandReadRequest reads command output.
type CommandReadRequest struct {
	Stream string `json:"stream,omitempty"` // stdout (default) or stderr
	Offset int64  `json:"offset,omitempty"`
	Limit  int    `json:"limit,omitempty"` // default 64 KiB
}

// CommandKillRequest signals a command.
type CommandKillRequest struct {
	Signal string `json:"signal,omitempty"` // default KILL
}

// ShellOpenRequest opens a shell.
type ShellOpenRequest struct {
	Cwd  string   `json:"cwd,omitempty"`
	Env  []string `json:"env,omitempty"`
	Cols int      `json:"cols,omitempty"`
	Rows int      `json:"rows,omitempty"`
}

// ShellWriteRequest writes to a shell: Data exactly as given (UTF-8), or
// DataBase64 for arbitrary bytes.
type ShellWriteRequest struct {
	Data       string `json:"data,omitempty"`
	DataBase64 string `json:"data_base64,omitempty"`
}

// ShellReadRequest reads shell output.
type ShellReadRequest struct {
	// Cursor is the output offset; omitted means where the last read ended.
	Cursor *int64 `json:"cursor,omitempty"`
	WaitMS int64  `json:"wait_ms,omitempty"`
	Plain  bool   `json:"plain,omitempty"`
}

// ShellResizeRequest resizes a shell.
type ShellResizeRequest struct {
	Cols int `json:"cols"`
	Rows int `json:"rows"`
}

// ShellSignalRequest signals a shell's foreground process group.
type ShellSignalRequest struct {
	Signal string `json:"signal"`
}

// ErrorBody is the JSON shape of every error on the HTTP API (and of
// `--json` failures in the CLI).
type ErrorBody struct {
	Error struct {
		// Kind is one of not_found, already_exists, invalid_argument,
		// failed_precondition, conflict, unavailable, timeout,
		// not_implemented, resource_exhausted, internal.
		Kind    string `json:"kind"`
		Message string `json:"message"`
	} `json:"error"`
}
