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

// ServiceList is the result of `service_list`.
type ServiceList struct {
	Services []Service `json:"services"`
}

// PortList is the result of `port_list`.
type PortList struct {
	Ports []PublishedPort `json:"ports"`
}

// ServiceLogs is the result of `service_logs`: the output, unless it was
// streamed to the caller as it came.
type ServiceLogs struct {
	Service string `json:"service"`
	// Output is UTF-8 text, or base64 when Encoding is "base64".
	Output   string `json:"output"`
	Encoding string `json:"encoding,omitempty"`
	// Truncated says the output was longer than OutputLimit: the first
	// part is returned (ask for a smaller tail).
	Truncated bool `json:"truncated,omitempty"`
	// Streamed says the output went to the caller's stream instead.
	Streamed bool `json:"streamed,omitempty"`
}

// ServiceStartRequest is the request of `service_start`.
type ServiceStartRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Service is the service's name, unique in the workspace.
	Service string `json:"service" cli:"arg"`
	// Argv is the program and its arguments, run directly (use
	// ["sh","-c","..."] for shell syntax).
	Argv []string `json:"argv" cli:"arg"`
	Cwd  string   `json:"cwd,omitempty" default:"/workspace"`
	Env  []string `json:"env,omitempty"`
	// Ready are readiness probes (docs/services.md); all must pass.
	Ready []string `json:"ready,omitempty"`
	// Restart is no, on-failure or always.
	Restart string `json:"restart,omitempty" default:"no"`
	// StartLimitBurst starts within StartLimitIntervalMS are allowed; a
	// restart beyond them makes the service failed (as systemd's
	// StartLimitBurst and StartLimitIntervalSec).
	StartLimitBurst      int   `json:"start_limit_burst,omitempty" default:"5" max:"1000"`
	StartLimitIntervalMS int64 `json:"start_limit_interval_ms,omitempty" default:"10000" max:"86400000" cli:"start-limit-interval"`
	// Wait waits for readiness (or the end) up to WaitTimeoutMS.
	Wait          bool  `json:"wait,omitempty"`
	WaitTimeoutMS int64 `json:"wait_timeout_ms,omitempty" default:"60000" max:"3600000" cli:"wait-timeout"`
	// Publish lists ports to publish, [HOST_ADDR:]HOST_PORT:GUEST_PORT.
	Publish []string `json:"publish,omitempty"`
	// AllowNonLoopback permits publishing on a host address that is not
	// a loopback address.
	AllowNonLoopback bool `json:"allow_non_loopback,omitempty"`
}

// ServiceRequest names a service: the request of service_show,
// service_restart and service_remove.
type ServiceRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Service   string `json:"service" path:"true" cli:"arg"`
}

// ServiceLogsRequest is the request of `service_logs`.
type ServiceLogsRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Service   string `json:"service" path:"true" cli:"arg"`
	// Tail is the number of last lines (0: all that is kept).
	Tail int `json:"tail,omitempty"`
	// Follow streams new output until the service ends (streaming callers only).
	Follow bool `json:"follow,omitempty"`
}

// ServiceStopRequest is the request of `service_stop`.
type ServiceStopRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Service   string `json:"service" path:"true" cli:"arg"`
	Signal    string `json:"signal,omitempty" default:"TERM"`
	// TimeoutMS is the grace after the signal before SIGKILL.
	TimeoutMS int64 `json:"timeout_ms,omitempty" default:"10000" max:"600000" cli:"timeout"`
}

// ServiceWaitRequest is the request of `service_wait`.
type ServiceWaitRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Service   string `json:"service" path:"true" cli:"arg"`
	TimeoutMS int64  `json:"timeout_ms,omitempty" default:"60000" max:"3600000" cli:"timeout"`
}

// PortPublishRequest is the request of `port_publish`.
type PortPublishRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Port is [HOST_ADDR:]HOST_PORT:GUEST_PORT.
	Port             string `json:"port" cli:"arg"`
	AllowNonLoopback bool   `json:"allow_non_loopback,omitempty"`
}

// PortUnpublishRequest is the request of `port_unpublish`.
type PortUnpublishRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Port is the host side, [HOST_ADDR:]HOST_PORT (or the whole spec).
	Port string `json:"port" path:"true" cli:"arg"`
}
