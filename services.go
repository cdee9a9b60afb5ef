package hearth

import (
	"context"
	"io"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/workspace"
)

// Services and published ports (docs/services.md).
type (
	// Service is a named long-running process supervised in the guest.
	Service = api.Service
	// ServiceWait is the typed outcome of waiting for a service: only
	// Result "ready" is success.
	ServiceWait = api.ServiceWait
	// ServiceStartResult is what ServiceStart returns.
	ServiceStartResult = api.ServiceStartResult
	// PublishedPort is a host port forwarded to a guest port.
	PublishedPort = api.PublishedPort
	// PublishOptions qualify a publish.
	PublishOptions = workspace.PublishOptions
	// ServiceLogsOptions select a service's output.
	ServiceLogsOptions = workspace.ServiceLogsOptions
	// ServiceStopOptions qualify a stop.
	ServiceStopOptions = workspace.ServiceStopOptions
)

// ServiceStartOptions define a service.
type ServiceStartOptions struct {
	// Argv is the program and its arguments, run directly.
	Argv []string
	Cwd  string
	Env  []string
	// Ready are readiness probes (port:N, http:PORT/PATH, log:REGEX,
	// file:PATH, cmd:COMMAND, notify); all must pass.
	Ready []string
	// Restart is "no" (default), "on-failure" or "always".
	Restart string
	// StartLimitBurst starts within StartLimitInterval are allowed (default
	// 5 in 10 s); a restart beyond them makes the service failed.
	StartLimitBurst    int
	StartLimitInterval time.Duration
	// Wait waits for readiness or the end, at most WaitTimeout (default 60 s).
	Wait        bool
	WaitTimeout time.Duration
	// Publish lists ports, [HOST_ADDR:]HOST_PORT:GUEST_PORT.
	Publish []string
	PublishOptions
}

// ServiceStart defines and starts a service. With o.Wait the result's
// Wait says whether it became ready (only Result "ready" is success).
func (w *Workspace) ServiceStart(ctx context.Context, name string, o ServiceStartOptions) (*ServiceStartResult, error) {
	req := api.ServiceStartRequest{Workspace: w.ref, Service: name, Argv: o.Argv, Cwd: o.Cwd, Env: o.Env, Ready: o.Ready, Restart: o.Restart,
		StartLimitBurst: o.StartLimitBurst, StartLimitIntervalMS: millis(o.StartLimitInterval),
		Wait: o.Wait, WaitTimeoutMS: millis(o.WaitTimeout), Publish: o.Publish, AllowNonLoopback: o.AllowNonLoopback}
	return invoke[ServiceStartResult](ctx, w.c, "service_start", &req, Streams{})
}

// ServiceList lists the workspace's services.
func (w *Workspace) ServiceList(ctx context.Context) ([]Service, error) {
	r := w.req()
	l, err := invoke[api.ServiceList](ctx, w.c, "service_list", &r, Streams{})
	if err != nil {
		return nil, err
	}
	return l.Services, nil
}

// ServiceShow returns one service.
func (w *Workspace) ServiceShow(ctx context.Context, name string) (*Service, error) {
	return invoke[Service](ctx, w.c, "service_show", &api.ServiceRequest{Workspace: w.ref, Service: name}, Streams{})
}

// ServiceLogs copies a service's output to out: the last o.Tail lines (0:
// all that is kept) and, with o.Follow, new output until the service ends
// or ctx ends.
func (w *Workspace) ServiceLogs(ctx context.Context, name string, o ServiceLogsOptions, out io.Writer) error {
	req := api.ServiceLogsRequest{Workspace: w.ref, Service: name, Tail: o.Tail, Follow: o.Follow}
	if out == nil {
		out = io.Discard
	}
	_, err := invoke[api.ServiceLogs](ctx, w.c, "service_logs", &req, Streams{Stdout: out})
	return err
}

// ServiceStop stops a service (signal, then SIGKILL after the timeout) and
// keeps it stopped, also across boots.
func (w *Workspace) ServiceStop(ctx context.Context, name string, o ServiceStopOptions) (*Service, error) {
	req := api.ServiceStopRequest{Workspace: w.ref, Service: name, Signal: o.Signal, TimeoutMS: millis(o.Timeout)}
	return invoke[Service](ctx, w.c, "service_stop", &req, Streams{})
}

// ServiceRestart stops a service if it runs and starts it again.
func (w *Workspace) ServiceRestart(ctx context.Context, name string) (*Service, error) {
	return invoke[Service](ctx, w.c, "service_restart", &api.ServiceRequest{Workspace: w.ref, Service: name}, Streams{})
}

// ServiceRemove stops a service and deletes its definition.
func (w *Workspace) ServiceRemove(ctx context.Context, name string) (*Service, error) {
	return invoke[Service](ctx, w.c, "service_remove", &api.ServiceRequest{Workspace: w.ref, Service: name}, Streams{})
}

// ServiceWait waits up to timeout (0: 60 s) for a service to be ready or
// to end.
func (w *Workspace) ServiceWait(ctx context.Context, name string, timeout time.Duration) (*ServiceWait, error) {
	req := api.ServiceWaitRequest{Workspace: w.ref, Service: name, TimeoutMS: millis(timeout)}
	return invoke[ServiceWait](ctx, w.c, "service_wait", &req, Streams{})
}

// PortPublish publishes [HOST_ADDR:]HOST_PORT:GUEST_PORT: at once on a
// running workspace, from the next start on a stopped one.
func (w *Workspace) PortPublish(ctx context.Context, port string, o PublishOptions) (*PublishedPort, error) {
	req := api.PortPublishRequest{Workspace: w.ref, Port: port, AllowNonLoopback: o.AllowNonLoopback}
	return invoke[PublishedPort](ctx, w.c, "port_publish", &req, Streams{})
}

// PortList lists the published ports.
func (w *Workspace) PortList(ctx context.Context) ([]PublishedPort, error) {
	r := w.req()
	l, err := invoke[api.PortList](ctx, w.c, "port_list", &r, Streams{})
	if err != nil {
		return nil, err
	}
	return l.Ports, nil
}

// PortUnpublish stops publishing a host port ([HOST_ADDR:]HOST_PORT).
func (w *Workspace) PortUnpublish(ctx context.Context, port string) (*PublishedPort, error) {
	return invoke[PublishedPort](ctx, w.c, "port_unpublish", &api.PortUnpublishRequest{Workspace: w.ref, Port: port}, Streams{})
}
