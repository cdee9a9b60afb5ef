package api

import "time"

// Service states (see docs/services.md).
const (
	ServiceStarting = "starting" // started, or waiting to restart; not yet ready
	ServiceReady    = "ready"    // every readiness probe passes
	ServiceUnready  = "unready"  // running, but a probe fails
	ServiceExited   = "exited"   // ended, and will not be restarted
	ServiceFailed   = "failed"   // restarted too often: the start limit was hit
	ServiceStopped  = "stopped"  // stopped on request (or its workspace is stopped)
)

// Service wait results.
const (
	WaitReady    = "ready"
	WaitExited   = "exited"
	WaitStopped  = "stopped"
	WaitTimedOut = "timed_out"
)

// Service is a named long-running process in a workspace, supervised by
// the guest agent.
type Service struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// PID is the main process's guest pid while one runs.
	PID int `json:"pid,omitempty"`
	// Restarts counts automatic restarts.
	Restarts    int        `json:"restarts"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	ReadyAt     *time.Time `json:"ready_at,omitempty"`
	NextStartAt *time.Time `json:"next_start_at,omitempty"`
	// Probes are the readiness probes' latest results.
	Probes []ServiceProbe `json:"probes,omitempty"`
	// LastExit is how the service's process last ended: exit code or
	// signal, and the tail of its output.
	LastExit *ServiceExit `json:"last_exit,omitempty"`
	// Message explains the state (why unready, why failed).
	Message string `json:"message,omitempty"`
	// The definition.
	Argv    []string `json:"argv"`
	Cwd     string   `json:"cwd,omitempty"`
	Env     []string `json:"env,omitempty"`
	Ready   []string `json:"ready,omitempty"`
	Restart string   `json:"restart"`
}

// ServiceProbe is one readiness probe's latest result.
type ServiceProbe struct {
	Probe     string     `json:"probe"`
	OK        bool       `json:"ok"`
	Passing   bool       `json:"passing"`
	Failures  int        `json:"failures"`
	Checks    int64      `json:"checks"`
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	Detail    string     `json:"detail,omitempty"`
}

// ServiceExit is how a service's process ended.
type ServiceExit struct {
	// ExitCode is the status; 128+N after signal N; 127 command not found;
	// 126 could not run.
	ExitCode int       `json:"exit_code"`
	Signal   string    `json:"signal,omitempty"`
	At       time.Time `json:"at"`
	// Tail is the end of the output (at most 20 lines).
	Tail    string `json:"tail,omitempty"`
	Message string `json:"message,omitempty"`
}

// ServiceWait is the typed outcome of waiting for a service: ready,
// exited (with the exit code and the tail), stopped, or timed_out (with
// the tail). Only "ready" is success.
type ServiceWait struct {
	Result   string  `json:"result"`
	Service  Service `json:"service"`
	ExitCode *int    `json:"exit_code,omitempty"`
	Signal   string  `json:"signal,omitempty"`
	Tail     string  `json:"tail,omitempty"`
}

// ServiceStartResult is what starting a service returns.
type ServiceStartResult struct {
	Service Service `json:"service"`
	// Wait is set when the start waited for readiness.
	Wait *ServiceWait `json:"wait,omitempty"`
	// Ports are the ports published with the start.
	Ports []PublishedPort `json:"ports,omitempty"`
}

// PublishedPort is a host TCP port forwarded to a guest port.
type PublishedPort struct {
	HostAddr  string `json:"host_addr"`
	HostPort  int    `json:"host_port"`
	GuestPort int    `json:"guest_port"`
	// Active is true while the host listens (the workspace runs and the
	// host port could be bound).
	Active bool `json:"active"`
	// Error says why an active port is not listening.
	Error string `json:"error,omitempty"`
	// Connections counts connections accepted since the workspace booted;
	// Open those still open.
	Connections int64 `json:"connections"`
	Open        int64 `json:"open"`
}
