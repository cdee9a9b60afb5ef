package guestproto

import "time"

// Services and published ports.
const (
	// OpServiceStart registers and starts a service: Request.Service
	// (Spec); Response.Service. Spec.Stopped registers it without starting
	// it (a service the user had stopped, registered again at boot).
	OpServiceStart Op = "service_start"
	// OpServiceList returns every service, sorted by name: Response.Services.
	OpServiceList Op = "service_list"
	// OpServiceShow returns one service: Request.Service (Name); Response.Service.
	OpServiceShow Op = "service_show"
	// OpServiceStop signals a service's processes (Signal, default TERM),
	// SIGKILLs what is left after TimeoutMS (default 10 s) and keeps it
	// stopped: Request.Service; Response.Service.
	OpServiceStop Op = "service_stop"
	// OpServiceRestart stops a service (if it runs) and starts it again,
	// with a fresh start limit: Request.Service (Name); Response.Service.
	OpServiceRestart Op = "service_restart"
	// OpServiceRemove stops a service and forgets it: Request.Service
	// (Name); Response.Service (its last state).
	OpServiceRemove Op = "service_remove"
	// OpServiceWait waits up to TimeoutMS for a service to be ready or to
	// end: Request.Service (Name, TimeoutMS); Response.ServiceWait.
	OpServiceWait Op = "service_wait"
	// OpServiceLogs streams a service's kept output (stdout and stderr
	// interleaved as written) as FrameStdout: the last Tail lines (0: all
	// that is kept), then, with Follow, new output as it comes until the
	// service ends for good (exited, failed, stopped, removed) or the host
	// closes the stream. Ends with Response.Service.
	OpServiceLogs Op = "service_logs"

	// OpPortConnect opens a TCP connection from the agent to
	// 127.0.0.1:Request.Port.Port inside the guest. The agent answers with
	// one FrameJSON Response: an Error when the connection failed, an empty
	// Response when it is open. After an empty Response the stream carries
	// the connection's raw bytes in both directions, unframed; each side
	// half-closes its sending direction at its EOF.
	OpPortConnect Op = "port_connect"
)

// ServiceRequest addresses a service.
type ServiceRequest struct {
	Name string       `json:"name,omitempty"`
	Spec *ServiceSpec `json:"spec,omitempty"`
	// Signal (stop) is a signal name: TERM (default), INT, HUP, KILL, QUIT, USR1, USR2.
	Signal string `json:"signal,omitempty"`
	// TimeoutMS: stop's grace before SIGKILL; wait's limit.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Tail and Follow (logs).
	Tail   int  `json:"tail,omitempty"`
	Follow bool `json:"follow,omitempty"`
}

// PortRequest names a guest TCP port.
type PortRequest struct {
	Port int `json:"port"`
}

// Restart policies.
const (
	RestartNo        = "no"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Service defaults (see docs/services.md).
const (
	DefaultRestartDelay     = 100 * time.Millisecond
	DefaultRestartMaxDelay  = 30 * time.Second
	DefaultStartLimitBurst  = 5
	DefaultStartLimitPeriod = 10 * time.Second
	DefaultStopTimeout      = 10 * time.Second
)

// ServiceSpec defines a service. The host keeps it with the workspace and
// sends it again at every boot.
type ServiceSpec struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	Cwd  string   `json:"cwd,omitempty"`
	Env  []string `json:"env,omitempty"`
	// Ready are readiness probes in the compact syntax of ParseProbe; all
	// must pass for the service to be ready. None: ready once started.
	Ready []string `json:"ready,omitempty"`
	// Restart is no (default), on-failure or always.
	Restart string `json:"restart,omitempty"`
	// RestartDelayMS is the first back-off (default 100 ms); it doubles
	// with every restart that follows a short run, up to RestartMaxDelayMS
	// (default 30 s).
	RestartDelayMS    int64 `json:"restart_delay_ms,omitempty"`
	RestartMaxDelayMS int64 `json:"restart_max_delay_ms,omitempty"`
	// StartLimitBurst starts within StartLimitIntervalMS are allowed
	// (default 5 in 10 s, as systemd); one more makes the service failed.
	StartLimitBurst      int   `json:"start_limit_burst,omitempty"`
	StartLimitIntervalMS int64 `json:"start_limit_interval_ms,omitempty"`
	// Stopped registers the service without starting it.
	Stopped bool `json:"stopped,omitempty"`
}

// Service states.
const (
	ServiceStarting = "starting" // started (or waiting to restart), not yet ready
	ServiceReady    = "ready"    // every probe passes
	ServiceUnready  = "unready"  // running, but a probe fails
	ServiceExited   = "exited"   // ended and will not be restarted
	ServiceFailed   = "failed"   // the start limit was hit
	ServiceStopped  = "stopped"  // stopped on request
)

// ServiceInfo is a service's state.
type ServiceInfo struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// PID is the main process while one runs (0 otherwise).
	PID int `json:"pid,omitempty"`
	// Restarts counts automatic restarts since the service was started.
	Restarts  int        `json:"restarts"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	ReadyAt   *time.Time `json:"ready_at,omitempty"`
	// NextStartAt is when a restart is due (state starting, no process).
	NextStartAt *time.Time    `json:"next_start_at,omitempty"`
	Probes      []ProbeStatus `json:"probes,omitempty"`
	// LastExit is the most recent end of the service's process.
	LastExit *ServiceExit `json:"last_exit,omitempty"`
	// Message explains the state in words (why failed, why unready).
	Message string      `json:"message,omitempty"`
	Spec    ServiceSpec `json:"spec"`
}

// ProbeStatus is the latest outcome of one readiness probe.
type ProbeStatus struct {
	Probe string `json:"probe"`
	// OK is the last check's result; Passing is the probe's verdict (it
	// stays true until Retries checks in a row fail).
	OK      bool `json:"ok"`
	Passing bool `json:"passing"`
	// Failures counts consecutive failed checks (not counted in the start period).
	Failures  int        `json:"failures"`
	Checks    int64      `json:"checks"`
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	Detail    string     `json:"detail,omitempty"`
}

// ServiceExit is how a service's process ended.
type ServiceExit struct {
	// ExitCode is the status; 128+N after signal N; 127 when the command
	// was not found, 126 when it could not be run.
	ExitCode int       `json:"exit_code"`
	Signal   string    `json:"signal,omitempty"`
	At       time.Time `json:"at"`
	// Tail is the end of the service's output (at most 20 lines, 4 KiB).
	Tail    string `json:"tail,omitempty"`
	Message string `json:"message,omitempty"`
}

// Wait results.
const (
	WaitReady    = "ready"
	WaitExited   = "exited" // exited or failed: see Service.State and LastExit
	WaitStopped  = "stopped"
	WaitTimedOut = "timed_out"
)

// ServiceWaitResult is the answer to OpServiceWait.
type ServiceWaitResult struct {
	Result  string      `json:"result"`
	Service ServiceInfo `json:"service"`
	// Tail is the end of the service's output when the result is not ready.
	Tail string `json:"tail,omitempty"`
}
