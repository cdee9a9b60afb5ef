package api

// Requests: the arguments of every operation, one type per operation. HTTP
// bodies and query strings, MCP tool arguments, the Python SDK's keywords
// and the CLI's flags are all these fields under these names (the
// operation table, internal/ops, checks every surface against them).
//
// Field tags beyond json:
//   - default:"V" is the value an omitted (zero) field takes, on every
//     surface. Durations are integer milliseconds (*_ms).
//   - max:"N" is the largest value accepted (larger is invalid_argument).
//   - cli:"NAME" is the CLI flag's name when it is not the JSON name in
//     kebab case; cli:"arg" marks a positional argument, cli:"-" a field
//     the CLI takes another way (it says how in its help).
//   - path:"true" marks a field that is part of the HTTP path.
//   - format:"size" marks a size like "8G" or "512M".
//   - host:"read" / host:"write" marks a host path; the HTTP and MCP
//     servers confine these to the directories their operator allowed.

// Signals are the signal names command_kill and shell_signal accept.
var Signals = []string{"INT", "TERM", "KILL", "HUP", "QUIT", "USR1", "USR2", "TSTP", "CONT"}

// CommandSpec is what to run: exactly one of Argv (run directly) or
// Command (run by /bin/sh -c).
type CommandSpec struct {
	Argv    []string `json:"argv,omitempty" cli:"arg"`
	Command string   `json:"command,omitempty" cli:"shell"`
	Cwd     string   `json:"cwd,omitempty" default:"/workspace"`
	// Env entries are "KEY=VALUE".
	Env []string `json:"env,omitempty"`
	// TimeoutMS kills the command's process group after this long (0: no
	// limit).
	TimeoutMS int64 `json:"timeout_ms,omitempty" cli:"timeout"`
	// Stdin is the command's standard input as UTF-8 text; StdinBase64 the
	// same for arbitrary bytes (give one). Without either it reads EOF.
	Stdin       string `json:"stdin,omitempty" cli:"-"`
	StdinBase64 string `json:"stdin_base64,omitempty" cli:"-"`
}

// RunRequest is the request of `run`.
type RunRequest struct {
	Image     string `json:"image,omitempty" default:"debian-12"`
	Backend   string `json:"backend,omitempty"`
	CPUs      int    `json:"cpus,omitempty" default:"2" max:"32"`
	MemoryMiB int    `json:"memory_mib,omitempty" default:"512" cli:"memory"`
	CommandSpec
}

// CreateRequest is the request of `workspace_create`.
type CreateRequest struct {
	Name      string `json:"name,omitempty"`
	Image     string `json:"image,omitempty" default:"debian-12"`
	Backend   string `json:"backend,omitempty"`
	CPUs      int    `json:"cpus,omitempty" default:"2" max:"32"`
	MemoryMiB int    `json:"memory_mib,omitempty" default:"1024" cli:"memory"`
	// DiskSize is like "8G" or "512M".
	DiskSize string `json:"disk_size,omitempty" default:"8G" format:"size"`
	// Seed is a host path (directory or .tar/.tar.gz/.tgz/.zip) on the
	// machine hearth runs on.
	Seed string `json:"seed,omitempty" host:"read"`
	// Publish lists ports to publish, [HOST_ADDR:]HOST_PORT:GUEST_PORT
	// (docs/services.md).
	Publish          []string `json:"publish,omitempty"`
	AllowNonLoopback bool     `json:"allow_non_loopback,omitempty"`
	// Disks are named data disks to attach: "NAME:/mnt/PATH[:ro]".
	Disks []string `json:"disks,omitempty" cli:"disk"`
	// Secrets are stored secrets to expose, each NAME or NAME:MODE (mode
	// file, env or brokered; default env).
	Secrets []string `json:"secrets,omitempty" cli:"secret"`
	// SecretEnvAll puts the env secrets in every exec's and shell's
	// environment (default: only of those that ask with secret_env).
	SecretEnvAll bool `json:"secret_env_all,omitempty"`
	NetworkSpec
}

// ListRequest is the request of `workspace_list`.
type ListRequest struct{}

// WorkspaceRequest names a workspace: the request of operations that take
// nothing else.
type WorkspaceRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
}

// StopRequest is the request of `workspace_stop`.
type StopRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Force stops the VM even while calls (exec, export, …) are in flight;
	// they fail. Without it a stop waits for them (at most 30 s), then
	// refuses naming them.
	Force bool `json:"force,omitempty"`
	// Suspend saves the guest's memory as it stops (QEMU): the next start
	// resumes its processes instead of booting.
	Suspend bool `json:"suspend,omitempty"`
}

// DeleteRequest is the request of `workspace_delete`.
type DeleteRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Force deletes a running workspace too (it is killed).
	Force bool `json:"force,omitempty"`
}

// ExecRequest is the request of `workspace_exec`.
type ExecRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	CommandSpec
	// YieldMS waits at most this long; a command still running then comes
	// back with status "running" and keeps running (follow up with
	// command_wait/command_read/command_kill). 0 waits until it ends.
	YieldMS int64 `json:"yield_ms,omitempty" cli:"yield"`
	// Detach returns at once with status "running".
	Detach bool `json:"detach,omitempty"`
	// SecretEnv names the workspace's env secrets to set in the command's
	// environment.
	SecretEnv []string `json:"secret_env,omitempty"`
}

// LogsRequest is the request of `workspace_logs`.
type LogsRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Tail keeps only the last N commands (0: all), before paging.
	Tail int `json:"tail,omitempty"`
	// Offset and Limit page through the (tailed) list: at most Limit
	// entries from Offset; the result's next_offset continues.
	Offset int `json:"offset,omitempty" cli:"-"`
	Limit  int `json:"limit,omitempty" default:"1000" max:"10000" cli:"-"`
}

// LogsPruneRequest is the request of `workspace_logs_prune`.
type LogsPruneRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// KeepLast keeps the output of the last N commands.
	KeepLast int `json:"keep_last,omitempty"`
	// OlderThanMS prunes only commands started longer ago than this.
	OlderThanMS int64 `json:"older_than_ms,omitempty" cli:"older-than"`
	// MaxBytes stops once the whole log takes at most this much ("1G";
	// empty: prune every command selected).
	MaxBytes string `json:"max_bytes,omitempty" format:"size"`
}

// SyncPushRequest is the request of `workspace_sync_push`.
type SyncPushRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Source is a host directory on the machine hearth runs on.
	Source string `json:"source" cli:"arg" host:"read"`
	Dest   string `json:"dest,omitempty" default:"/workspace"`
	Delete bool   `json:"delete,omitempty"`
	// Exclude leaves out paths matching these gitignore patterns (relative
	// to source; excluded guest paths also survive delete).
	Exclude []string `json:"exclude,omitempty"`
}

// DiffRequest is the request of `workspace_diff`.
type DiffRequest struct {
	Workspace string   `json:"workspace" path:"true" cli:"arg"`
	Paths     []string `json:"paths,omitempty" cli:"arg"`
	// NoPatch leaves patches out (the CLI's --stat and --name-only).
	NoPatch bool `json:"no_patch,omitempty" cli:"-"`
	// Exclude leaves out paths matching these gitignore patterns (relative
	// to /workspace).
	Exclude []string `json:"exclude,omitempty"`
	// MaxPatchBytes bounds one file: a larger file is not read, a longer
	// patch is left out (patch_omitted says which).
	MaxPatchBytes int64 `json:"max_patch_bytes,omitempty" default:"1048576"`
	// MaxTotalPatchBytes bounds the patch text of the whole result.
	MaxTotalPatchBytes int64 `json:"max_total_patch_bytes,omitempty" default:"16777216"`
	// Offset and Limit page through the changed files (in path order):
	// at most Limit files from Offset; the result's next_offset continues.
	// The CLI reads every page.
	Offset int `json:"offset,omitempty" cli:"-"`
	Limit  int `json:"limit,omitempty" default:"1000" max:"10000" cli:"-"`
}

// ExportRequest is the request of `workspace_export`.
type ExportRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	GuestPath string `json:"guest_path" cli:"arg"`
	// HostDest is a host path on the machine hearth runs on.
	HostDest string `json:"host_dest" cli:"arg" host:"write"`
	Archive  bool   `json:"archive,omitempty"`
	// Force replaces an existing non-empty destination, whole.
	Force bool `json:"force,omitempty"`
	// PreserveMode keeps setuid, setgid, sticky and world-writable bits
	// (dropped by default).
	PreserveMode bool `json:"preserve_mode,omitempty"`
	// Exclude leaves out paths matching these gitignore patterns (relative
	// to guest_path).
	Exclude []string `json:"exclude,omitempty"`
}

// CommandWaitRequest is the request of `command_wait`.
type CommandWaitRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	CommandID string `json:"command_id" path:"true" cli:"arg"`
	// TimeoutMS waits at most this long; status "running" means the
	// command has not ended yet.
	TimeoutMS int64 `json:"timeout_ms,omitempty" default:"30000" cli:"timeout"`
}

// CommandReadRequest is the request of `command_read`.
type CommandReadRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	CommandID string `json:"command_id" path:"true" cli:"arg"`
	Stream    string `json:"stream,omitempty" default:"stdout"`
	Offset    int64  `json:"offset,omitempty"`
	Limit     int    `json:"limit,omitempty" default:"65536" max:"1048576"`
}

// CommandKillRequest is the request of `command_kill`.
type CommandKillRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	CommandID string `json:"command_id" path:"true" cli:"arg"`
	Signal    string `json:"signal,omitempty" default:"KILL"`
}

// ShellOpenRequest is the request of `shell_open`.
type ShellOpenRequest struct {
	Workspace string   `json:"workspace" path:"true" cli:"arg"`
	Cwd       string   `json:"cwd,omitempty" default:"/workspace"`
	Env       []string `json:"env,omitempty"`
	Cols      int      `json:"cols,omitempty" default:"120"`
	Rows      int      `json:"rows,omitempty" default:"40"`
	// SecretEnv names the workspace's env secrets to set in the shell's
	// environment.
	SecretEnv []string `json:"secret_env,omitempty"`
}

// ShellRequest names a shell: the request of shell_close.
type ShellRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	ShellID   string `json:"shell_id" path:"true" cli:"arg"`
}

// ShellWriteRequest is the request of `shell_write`: Data exactly as given
// (UTF-8), or DataBase64 for arbitrary bytes.
type ShellWriteRequest struct {
	Workspace  string `json:"workspace" path:"true" cli:"arg"`
	ShellID    string `json:"shell_id" path:"true" cli:"arg"`
	Data       string `json:"data,omitempty" cli:"arg"`
	DataBase64 string `json:"data_base64,omitempty" cli:"-"`
}

// ShellReadRequest is the request of `shell_read`.
type ShellReadRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	ShellID   string `json:"shell_id" path:"true" cli:"arg"`
	// Cursor is the output offset; omitted means where the last read ended.
	Cursor *int64 `json:"cursor,omitempty"`
	WaitMS int64  `json:"wait_ms,omitempty" max:"50000" cli:"wait"`
	Plain  bool   `json:"plain,omitempty"`
}

// ShellResizeRequest is the request of `shell_resize`.
type ShellResizeRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	ShellID   string `json:"shell_id" path:"true" cli:"arg"`
	Cols      int    `json:"cols"`
	Rows      int    `json:"rows"`
}

// ShellSignalRequest is the request of `shell_signal`.
type ShellSignalRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	ShellID   string `json:"shell_id" path:"true" cli:"arg"`
	Signal    string `json:"signal" cli:"arg"`
}

// ErrorBody is the JSON shape of every error: HTTP API responses, `--json`
// failures of the CLI, and (as text) MCP tool errors.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error is an operation's error.
type Error struct {
	// Kind is one of not_found, already_exists, invalid_argument,
	// failed_precondition, conflict, unavailable, timeout,
	// not_implemented, resource_exhausted, canceled, internal.
	Kind    string `json:"kind"`
	Message string `json:"message"`
	// Arg names the argument that was wrong (its JSON name), when one was.
	Arg string `json:"arg,omitempty"`
}
