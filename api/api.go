// Package api holds the public data types of hearth's contract: what every
// surface (Go SDK, CLI --json, HTTP API, MCP structured results, Python SDK)
// returns and accepts. JSON names are snake_case and stable; see
// docs/public-contract.md.
package api

import "time"

// ContractVersion is the version of the public contract these types belong to.
const ContractVersion = "1.0"

// State is a workspace's lifecycle state.
type State string

// Workspace states.
const (
	StateRunning State = "running"
	StateStopped State = "stopped"
	StateError   State = "error"
)

// Workspace describes one persistent workspace.
type Workspace struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Image     string    `json:"image"`
	Backend   string    `json:"backend"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	CPUs      int       `json:"cpus"`
	MemoryMiB int       `json:"memory_mib"`
	// DiskSizeBytes is the size of the workspace's writable disk.
	DiskSizeBytes int64 `json:"disk_size_bytes"`
	// PID is the VMM's process id while running.
	PID int `json:"pid,omitempty"`
	// SupervisorPID is the small per-VM host process that owns the VMM.
	SupervisorPID int        `json:"supervisor_pid,omitempty"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
	// Accel says how the VM runs: "kvm" or "tcg" (QEMU), "kvm" (Firecracker).
	Accel string `json:"accel,omitempty"`
	// Seed is the host path /workspace was seeded from at create, if any.
	Seed string `json:"seed,omitempty"`
	// LastExit says why the VM last stopped (clean shutdown, crash, kill).
	LastExit string `json:"last_exit,omitempty"`
	// Error explains StateError.
	Error string `json:"error,omitempty"`
	// ConsoleLog is the path of the VM's serial console log.
	ConsoleLog string `json:"console_log,omitempty"`
	// Disks are the named data disks attached to it.
	Disks []Attachment `json:"disks,omitempty"`
	// Snapshots counts the workspace's snapshots (the baseline included)
	// and SnapshotBytes the host disk space they take.
	Snapshots     int   `json:"snapshots"`
	SnapshotBytes int64 `json:"snapshot_bytes"`
	// Parent is where the workspace's disk last came from: the snapshot it
	// was reset to, or for a fork the parent workspace and snapshot
	// ("ws-…/NAME").
	Parent string `json:"parent,omitempty"`
	// Secrets are the secrets it exposes (names and modes, never values).
	Secrets []WorkspaceSecret `json:"secrets,omitempty"`
	// SecretEnvAll puts its env secrets in every exec's and shell's
	// environment, not only of those that ask.
	SecretEnvAll bool `json:"secret_env_all,omitempty"`
	// Suspended says a stopped workspace's memory was saved by a stop
	// with suspend: the next start resumes its processes.
	Suspended   bool       `json:"suspended,omitempty"`
	SuspendedAt *time.Time `json:"suspended_at,omitempty"`
}

// Exit reasons of a command.
const (
	ReasonExited      = "exited"
	ReasonSignaled    = "signaled"
	ReasonTimeout     = "timeout"
	ReasonOOM         = "oom"
	ReasonKilled      = "killed"
	ReasonStartFailed = "start_failed"
	// ReasonLost: hearth lost the command (its VM or the host process
	// that ran it went away); Message says which.
	ReasonLost = "lost"
)

// ExecResult is the outcome of one command.
type ExecResult struct {
	// CommandID identifies the command in the workspace's command log
	// (empty for `hearth run`).
	CommandID string `json:"command_id,omitempty"`
	// Status is "finished", or "running" when the caller's wait (yield)
	// ended first: follow up with command wait/read/kill.
	Status   string `json:"status"`
	ExitCode int    `json:"exit_code"`
	// Reason says why the command ended: exited, signaled, timeout, oom,
	// killed, start_failed, lost (Message says what was lost).
	Reason     string `json:"reason"`
	Signal     string `json:"signal,omitempty"`
	TimedOut   bool   `json:"timed_out"`
	DurationMS int64  `json:"duration_ms"`
	// Stdout and Stderr hold the output (when captured), at most
	// OutputLimit bytes each; the *_truncated flags say more exists, and
	// the full output is in the command log. When the bytes are not valid
	// UTF-8 they are base64 and *_encoding is "base64".
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutEncoding  string `json:"stdout_encoding,omitempty"`
	StderrEncoding  string `json:"stderr_encoding,omitempty"`
	StdoutBytes     int64  `json:"stdout_bytes"`
	StderrBytes     int64  `json:"stderr_bytes"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	// StdoutOffset and StderrOffset are the stream offsets of the first
	// byte of Stdout and Stderr: 0 unless a surface kept a stream's end
	// rather than its start (MCP does, to fit a model's context). The
	// bytes themselves are always exact.
	StdoutOffset int64  `json:"stdout_offset,omitempty"`
	StderrOffset int64  `json:"stderr_offset,omitempty"`
	Message      string `json:"message,omitempty"`
}

// OutputLimit bounds the output kept in an ExecResult per stream.
const OutputLimit = 1 << 20

// Command is one entry of a workspace's command log.
type Command struct {
	ID         string    `json:"id"`
	Argv       []string  `json:"argv,omitempty"`
	Shell      string    `json:"shell,omitempty"`
	Cwd        string    `json:"cwd,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	// ExitCode is null while the command runs, and for a lost command or
	// one that could not be started.
	ExitCode *int `json:"exit_code"`
	// Reason says why the command ended, one of: exited, signaled,
	// timeout, oom, killed, start_failed, lost (empty while running).
	Reason string `json:"reason,omitempty"`
	// Message explains Reason in words where it needs it (what was lost,
	// why a command did not start), or says the output was not fully kept.
	Message string `json:"message,omitempty"`
	Signal  string `json:"signal,omitempty"`
	Status  string `json:"status"` // running, finished, lost
	// Detached is true for commands started with detach or yield, which
	// the workspace's supervisor runs.
	Detached bool `json:"detached,omitempty"`
	// HostPID is the host process that runs the command: the caller for a
	// foreground command, the workspace's supervisor for a detached one.
	// If it dies while the command runs, the command is reported lost.
	HostPID int `json:"host_pid,omitempty"`
	// StdoutBytes and StderrBytes count all the output the command wrote.
	StdoutBytes int64 `json:"stdout_bytes"`
	StderrBytes int64 `json:"stderr_bytes"`
	// StdoutDroppedBytes and StderrDroppedBytes are the part of that
	// output not kept on the host because it went past the per-stream
	// output cap (the first cap bytes are kept).
	StdoutDroppedBytes int64 `json:"stdout_dropped_bytes"`
	StderrDroppedBytes int64 `json:"stderr_dropped_bytes"`
	// Pruned is true once the command's output was removed from the host
	// (`workspace logs --prune`, or the log quota); the entry stays.
	Pruned bool `json:"pruned,omitempty"`
}

// Command statuses.
const (
	CommandRunning  = "running"
	CommandFinished = "finished"
	CommandLost     = "lost" // the VM, or the host process that ran it, went away
)

// Shell states.
const (
	ShellRunning = "running"
	ShellExited  = "exited"
)

// Shell is a persistent PTY shell session in a workspace.
type Shell struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	ExitCode  *int   `json:"exit_code,omitempty"`
	Cols      int    `json:"cols"`
	Rows      int    `json:"rows"`
	Cwd       string `json:"cwd"`
	CreatedAt string `json:"created_at"`
	// OutputBytes is the total output so far: the newest cursor.
	OutputBytes int64 `json:"output_bytes"`
}

// ShellOutput is what `shell read` returns: output from a cursor on.
type ShellOutput struct {
	// Output is the shell's output since Cursor (UTF-8 text, or base64
	// when Encoding is "base64").
	Output   string `json:"output"`
	Encoding string `json:"encoding,omitempty"`
	// Cursor is where Output starts; NextCursor is where the next read
	// should start.
	Cursor     int64 `json:"cursor"`
	NextCursor int64 `json:"next_cursor"`
	// DroppedBytes is how much output the read missed because it fell
	// behind the shell's bounded buffer.
	DroppedBytes int64  `json:"dropped_bytes"`
	State        string `json:"state"`
	ExitCode     *int   `json:"exit_code,omitempty"`
}

// Command run states in ExecResult.Status.
const (
	StatusRunning  = "running"
	StatusFinished = "finished"
)

// CommandOutput is a slice of a logged command's output.
type CommandOutput struct {
	CommandID string `json:"command_id"`
	Stream    string `json:"stream"`
	// Data is UTF-8 text, or base64 when Encoding is "base64".
	Data       string `json:"data"`
	Encoding   string `json:"encoding,omitempty"`
	Offset     int64  `json:"offset"`
	NextOffset int64  `json:"next_offset"`
	// TotalBytes is the stream's size so far.
	TotalBytes int64 `json:"total_bytes"`
	// Status is "running" or "finished"; when finished and NextOffset ==
	// TotalBytes there is no more output.
	Status string `json:"status"`
}
