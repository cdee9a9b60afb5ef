package guestproto

// Op names an operation. One stream carries exactly one operation.
type Op string

// Operations the agent serves.
const (
	OpHello    Op = "hello"    // version handshake; Response.Hello
	OpExec     Op = "exec"     // run a process; streams stdout/stderr; Response.Exec
	OpShutdown Op = "shutdown" // sync, unmount, power off; Response with no body, then the VM ends

	// PTY shell sessions (kept in the agent, independent of any stream).
	OpShellOpen   Op = "shell_open"   // Request.Shell; Response.Shell
	OpShellWrite  Op = "shell_write"  // Request.Shell (ID, Data); Response.Shell
	OpShellRead   Op = "shell_read"   // Request.Shell (ID, Cursor, WaitMS); Response.ShellRead
	OpShellResize Op = "shell_resize" // Request.Shell (ID, Cols, Rows)
	OpShellSignal Op = "shell_signal" // Request.Shell (ID, Signal)
	OpShellClose  Op = "shell_close"  // Request.Shell (ID)
	OpShellList   Op = "shell_list"   // Response.Shells
	// OpShellAttach streams a session interactively: Request.Shell (ID,
	// Cursor; nil Cursor = from the oldest kept output). The agent sends
	// output as FrameStdout; the host sends FrameStdin (bytes to the PTY),
	// Control (Cols/Rows: resize; Signal) and FrameStdinEOF (detach). The
	// agent ends with Response.Shell when the shell exits or the host
	// detaches; closing the stream also detaches. The shell keeps running.
	OpShellAttach Op = "shell_attach"

	// Files. Paths are absolute guest paths.
	OpTarOut   Op = "tar_out"   // Request.Files: stream a tar of Path as FrameData; Response.Files
	OpTarIn    Op = "tar_in"    // Request.Files: host streams a tar as FrameData into Path; Response.Files
	OpManifest Op = "manifest"  // Request.Files: list Path recursively; Response.Manifest
	OpReadFile Op = "read_file" // Request.Files: stream one regular file as FrameData; Response.Files
)

// Request is the first frame on every stream.
type Request struct {
	Op    Op            `json:"op"`
	Exec  *ExecRequest  `json:"exec,omitempty"`
	Shell *ShellRequest `json:"shell,omitempty"`
	Files *FilesRequest `json:"files,omitempty"`
	// Freeze is the request of OpFreeze (see freeze.go).
	Freeze *FreezeRequest `json:"freeze,omitempty"`
	// Service and Port: see services.go.
	Service *ServiceRequest `json:"service,omitempty"`
	Port    *PortRequest    `json:"port,omitempty"`
	// Secrets is the body of OpSecrets (secrets.go).
	Secrets *SecretsRequest `json:"secrets,omitempty"`
	// Restored is the body of OpRestored (restore.go).
	Restored *RestoredRequest `json:"restored,omitempty"`
}

// Response is the last frame on every stream. Error is set when the
// operation failed; otherwise the body matching the Op is set.
type Response struct {
	Error     *Error           `json:"error,omitempty"`
	Hello     *Hello           `json:"hello,omitempty"`
	Exec      *ExecResult      `json:"exec,omitempty"`
	Shell     *ShellInfo       `json:"shell,omitempty"`
	Shells    []ShellInfo      `json:"shells,omitempty"`
	ShellRead *ShellReadResult `json:"shell_read,omitempty"`
	Files     *FilesResult     `json:"files,omitempty"`
	Manifest  *Manifest        `json:"manifest,omitempty"`
	Freeze    *FreezeResult    `json:"freeze,omitempty"`
	// Services: see services.go.
	Service     *ServiceInfo       `json:"service,omitempty"`
	Services    []ServiceInfo      `json:"services,omitempty"`
	ServiceWait *ServiceWaitResult `json:"service_wait,omitempty"`
	Restored    *RestoredResult    `json:"restored,omitempty"`
}

// Control is a FrameJSON the host sends while an operation runs.
type Control struct {
	// Signal delivers a signal ("INT", "TERM", "KILL", "HUP") to the
	// operation's process group.
	Signal string `json:"signal,omitempty"`
	// Cols and Rows resize the terminal of a shell_attach stream (both > 0).
	Cols int `json:"cols,omitempty"`
	Rows int `json:"rows,omitempty"`
}

// Error codes. The host maps them to its own error vocabulary.
const (
	CodeInvalid      = "invalid_argument"
	CodeNotFound     = "not_found"
	CodeExists       = "already_exists"
	CodeLimit        = "resource_exhausted"
	CodePrecondition = "failed_precondition"
	CodeInternal     = "internal"
	CodeUnsupported  = "unimplemented"
)

// Error is a failed operation.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Hello is the agent's handshake answer.
type Hello struct {
	ProtocolVersion int      `json:"protocol_version"`
	AgentVersion    string   `json:"agent_version"`
	Capabilities    []string `json:"capabilities"`
	// Kernel is the guest's uname -r.
	Kernel string `json:"kernel"`
	// BootID is /proc/sys/kernel/random/boot_id; it changes with every boot.
	BootID string `json:"boot_id"`
	// UptimeMS is the guest's uptime when it answered.
	UptimeMS int64 `json:"uptime_ms"`
}

// ExecRequest runs one process. Exactly one of Argv or Shell is set: Argv
// is executed directly (looked up in PATH); Shell is run by /bin/sh -c.
type ExecRequest struct {
	Argv  []string `json:"argv,omitempty"`
	Shell string   `json:"shell,omitempty"`
	Cwd   string   `json:"cwd,omitempty"`
	// Env entries "K=V" are added to (and override) the agent's defaults,
	// which include PATH, HOME, TERM=dumb, PAGER=cat, GIT_PAGER=cat and
	// GIT_EDITOR=:.
	Env []string `json:"env,omitempty"`
	// Stdin says the host will stream stdin frames; otherwise the process's
	// stdin is /dev/null (EOF at once).
	Stdin bool `json:"stdin,omitempty"`
	// TimeoutMS kills the whole process group after this long (0: none).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// Exit reasons in ExecResult.Reason.
const (
	ReasonExited      = "exited"       // ExitCode holds the status
	ReasonSignaled    = "signaled"     // Signal names the signal
	ReasonTimeout     = "timeout"      // killed by TimeoutMS
	ReasonOOM         = "oom"          // killed by the kernel's OOM killer
	ReasonKilled      = "killed"       // killed on the host's request (Control or stream closed)
	ReasonStartFailed = "start_failed" // could not start (ExitCode 127 not found, 126 not executable)
)

// ExecResult ends an exec stream.
//
// Exit code conventions (as shells and timeout(1) use them): Reason exited
// carries the process's own status; signaled and killed carry 128+N for
// signal N (Signal names it, e.g. "INT"); timeout is always 124 (the group
// was SIGKILLed, Signal "KILL"); oom is 137; start_failed is 127 when the
// command was not found and 126 when it could not be run (a message naming
// it is also sent on stderr). Killed means the host asked: a Control signal
// that ended the process, or the host closing the stream.
type ExecResult struct {
	// ExitCode is the process's exit status; 128+N when killed by signal N;
	// 127 when the command was not found; 126 when it could not be run.
	ExitCode   int    `json:"exit_code"`
	Reason     string `json:"reason"`
	Signal     string `json:"signal,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Message    string `json:"message,omitempty"`
}

// ShellRequest addresses a PTY shell session.
type ShellRequest struct {
	ID     string   `json:"id,omitempty"`
	Cwd    string   `json:"cwd,omitempty"`
	Env    []string `json:"env,omitempty"`
	Cols   int      `json:"cols,omitempty"`
	Rows   int      `json:"rows,omitempty"`
	Data   []byte   `json:"data,omitempty"`   // shell_write: exact bytes
	Cursor *int64   `json:"cursor,omitempty"` // shell_read: absolute output offset; nil = where the last read ended
	// Seek (shell_read) only sets where the next read without a cursor
	// starts, to Cursor, and returns no output (the host held back a tail
	// that may begin a secret value).
	Seek   bool   `json:"seek,omitempty"`
	WaitMS int64  `json:"wait_ms,omitempty"`
	Signal string `json:"signal,omitempty"`
}

// ShellInfo describes a shell session.
type ShellInfo struct {
	ID        string `json:"id"`
	State     string `json:"state"` // "running" or "exited"
	ExitCode  *int   `json:"exit_code,omitempty"`
	Cols      int    `json:"cols"`
	Rows      int    `json:"rows"`
	Cwd       string `json:"cwd"`
	CreatedAt string `json:"created_at"`
	// OutputBytes is the total output produced so far (the newest cursor).
	OutputBytes int64 `json:"output_bytes"`
}

// ShellReadResult is output from a cursor on.
type ShellReadResult struct {
	Output       []byte    `json:"output"`
	Cursor       int64     `json:"cursor"`
	NextCursor   int64     `json:"next_cursor"`
	DroppedBytes int64     `json:"dropped_bytes"`
	Shell        ShellInfo `json:"shell"`
}

// FilesRequest addresses the guest file system.
type FilesRequest struct {
	Path string `json:"path"`
	// Delete (tar_in): remove entries under Path that the tar does not hold.
	Delete bool `json:"delete,omitempty"`
	// Keep (tar_in with Delete): relative paths that exist in the source
	// although the tar does not carry them (unchanged files of an
	// incremental sync). Entries under Path that are neither in the tar nor
	// in Keep (nor ancestors of either) are deleted.
	Keep []string `json:"keep,omitempty"`
	// Hash (manifest): include SHA-256 of regular files. HashPaths limits
	// hashing to these relative paths (nil: all).
	Hash      bool     `json:"hash,omitempty"`
	HashPaths []string `json:"hash_paths,omitempty"`
	// Offset/Length (read_file).
	Offset int64 `json:"offset,omitempty"`
	Length int64 `json:"length,omitempty"`
	// Count (read_file): send no data; count the lines of the range and
	// tell whether it is binary (FilesResult.Lines and Binary).
	Count bool `json:"count,omitempty"`
	// Exclude holds gitignore patterns, relative to Path. tar_out and
	// manifest leave matching entries out and do not enter matching
	// directories; tar_in with Delete never deletes a matching entry (nor
	// the directories that hold one).
	Exclude []string `json:"exclude,omitempty"`
}

// FilesResult summarises a file operation.
type FilesResult struct {
	Entries int64 `json:"entries"`
	Bytes   int64 `json:"bytes"`
	// Lines and Binary (read_file with Count): the lines of the content
	// (a last line without a newline counts) and whether it is binary (a
	// NUL in its first 8000 bytes, or not valid UTF-8).
	Lines    int64    `json:"lines,omitempty"`
	Binary   bool     `json:"binary,omitempty"`
	Deleted  int64    `json:"deleted,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Manifest lists a tree. Entries are sorted by Path (relative, slash-separated).
//
// On the wire (OpManifest) the agent streams the entries as FrameData frames
// of newline-separated JSON ManifestEntry objects (each frame holds whole
// lines), then FrameDataEOF, then Response.Manifest with Root, Count and
// Warnings and no Entries; so a manifest is not bounded by MaxPayload.
type Manifest struct {
	Root    string          `json:"root"`
	Entries []ManifestEntry `json:"entries"`
	// Count is the number of entries streamed (wire only).
	Count int64 `json:"count,omitempty"`
	// Warnings name entries skipped (other file systems, vanished files).
	Warnings []string `json:"warnings,omitempty"`
}

// ManifestEntry is one file system entry.
type ManifestEntry struct {
	Path    string `json:"path"`
	Type    string `json:"type"` // "file", "dir", "symlink", "other"
	Mode    uint32 `json:"mode"` // permission bits only (0o7777)
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
	Inode   uint64 `json:"inode,omitempty"`
	Target  string `json:"target,omitempty"` // symlink target
	SHA256  string `json:"sha256,omitempty"`
}
