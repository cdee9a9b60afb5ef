package ops

import (
	"context"
	"encoding/base64"
	"unicode/utf8"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/workspace"
)

// MCPServiceWaitMS is MCP's wait limit for service_start and service_wait,
// under its clients' usual 60-second limit.
const MCPServiceWaitMS = 40000

// Services and published ports (docs/services.md).
var serviceOps = []Op{
	{
		Name: "service_start", Summary: "Start a named service with readiness probes",
		Guide: "Starts a long-running process (a dev server, a database, a worker) that the guest agent supervises: it survives this call and is started again when the workspace boots. " +
			"ready lists probes, all of which must pass: port:N (a LISTEN socket on N owned by the service itself), http:PORT/PATH, log:REGEX (a line of its output), file:PATH, cmd:COMMAND, notify. " +
			"With wait=true the result's wait.result is ready, exited (with exit_code and tail), stopped or timed_out (with tail): only ready is success. " +
			"publish makes guest ports reachable on the host. Then use service_logs, service_show, service_stop.",
		CLI: "workspace service start", Go: "Workspace.ServiceStart", Python: "Workspace.service_start", Method: "POST", Path: "/v1/workspaces/{workspace}/services",
		Request: api.ServiceStartRequest{}, Result: api.ServiceStartResult{}, Destructive: true,
		MCP: map[string]int64{"wait_timeout_ms": MCPServiceWaitMS},
		local: bind(func(ctx context.Context, m *m, r api.ServiceStartRequest, _ IO) (*api.ServiceStartResult, error) {
			res, err := m.ServiceStart(ctx, r.Workspace, workspace.ServiceStartOptions{
				Name: r.Service, Argv: r.Argv, Cwd: r.Cwd, Env: r.Env, Ready: r.Ready, Restart: r.Restart,
				StartLimitBurst: r.StartLimitBurst, StartLimitInterval: ms(r.StartLimitIntervalMS),
				Wait: r.Wait, WaitTimeout: ms(r.WaitTimeoutMS), Publish: r.Publish,
				PublishOptions: workspace.PublishOptions{AllowNonLoopback: r.AllowNonLoopback},
			})
			if res != nil {
				res.Ports = nonNil(res.Ports)
			}
			return res, err
		}),
	},
	{
		Name: "service_list", Summary: "List services",
		Guide: "Returns the workspace's services with their state (starting, ready, unready, exited, failed, stopped), pid, restart count and probe results.",
		CLI:   "workspace service list", Go: "Workspace.ServiceList", Python: "Workspace.service_list", Method: "GET", Path: "/v1/workspaces/{workspace}/services",
		Request: api.WorkspaceRequest{}, Result: api.ServiceList{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.WorkspaceRequest, _ IO) (*api.ServiceList, error) {
			l, err := m.ServiceList(ctx, r.Workspace)
			if err != nil {
				return nil, err
			}
			return &api.ServiceList{Services: nonNil(l)}, nil
		}),
	},
	{
		Name: "service_show", Summary: "Show one service",
		Guide: "Returns the service's state, pid, restarts, each probe's last result and detail, and for an ended service its exit code or signal and the tail of its output.",
		CLI:   "workspace service show", Go: "Workspace.ServiceShow", Python: "Workspace.service_show", Method: "GET", Path: "/v1/workspaces/{workspace}/services/{service}",
		Request: api.ServiceRequest{}, Result: api.Service{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.ServiceRequest, _ IO) (*api.Service, error) {
			return m.ServiceShow(ctx, r.Workspace, r.Service)
		}),
	},
	{
		Name: "service_logs", Summary: "Read a service's output",
		Guide: "Returns the service's kept output (stdout and stderr as written; the last 1 MiB), or its last tail lines. follow=true keeps streaming until the service ends (streaming callers only: the CLI, or HTTP with stream).",
		CLI:   "workspace service logs", Go: "Workspace.ServiceLogs", Python: "Workspace.service_logs", Method: "GET", Path: "/v1/workspaces/{workspace}/services/{service}/logs",
		Request: api.ServiceLogsRequest{}, Result: api.ServiceLogs{}, ReadOnly: true, Stream: true,
		ArgsDoc: map[string]string{"tail": "Only the last N lines (0: all that is kept).", "follow": "Keep streaming new output until the service ends or the caller disconnects."},
		local: bind(func(ctx context.Context, m *m, r api.ServiceLogsRequest, s IO) (*api.ServiceLogs, error) {
			o := workspace.ServiceLogsOptions{Tail: r.Tail, Follow: r.Follow}
			if s.Stdout != nil {
				if err := m.ServiceLogs(ctx, r.Workspace, r.Service, o, s.Stdout); err != nil {
					return nil, err
				}
				return &api.ServiceLogs{Service: r.Service, Streamed: true}, nil
			}
			if r.Follow {
				return nil, errdefs.Arg("follow", "following streams output as it comes: use the CLI (--follow) or HTTP with stream=true; here, read the last lines with tail")
			}
			var buf limitedBuffer
			if err := m.ServiceLogs(ctx, r.Workspace, r.Service, o, &buf); err != nil {
				return nil, err
			}
			out := &api.ServiceLogs{Service: r.Service, Output: string(buf.b), Truncated: buf.truncated}
			if !utf8.Valid(buf.b) {
				out.Output, out.Encoding = base64.StdEncoding.EncodeToString(buf.b), "base64"
			}
			return out, nil
		}),
	},
	{
		Name: "service_stop", Summary: "Stop a service and keep it stopped",
		Guide: "Sends signal (default TERM) to the service's processes and SIGKILLs what is left after timeout_ms. It stays stopped, also across boots, until service_restart.",
		CLI:   "workspace service stop", Go: "Workspace.ServiceStop", Python: "Workspace.service_stop", Method: "POST", Path: "/v1/workspaces/{workspace}/services/{service}/stop",
		Request: api.ServiceStopRequest{}, Result: api.Service{}, Destructive: true, Idempotent: true,
		ArgsDoc: map[string]string{"signal": "First signal: TERM, INT, HUP, QUIT, USR1, USR2 or KILL.", "timeout_ms": "Milliseconds between the signal and SIGKILL."},
		local: bind(func(ctx context.Context, m *m, r api.ServiceStopRequest, _ IO) (*api.Service, error) {
			return m.ServiceStop(ctx, r.Workspace, r.Service, workspace.ServiceStopOptions{Signal: r.Signal, Timeout: ms(r.TimeoutMS)})
		}),
	},
	{
		Name: "service_restart", Summary: "Restart a service",
		Guide: "Stops the service if it runs and starts it again, with a fresh start limit; also starts a stopped, exited or failed service. Follow with service_wait.",
		CLI:   "workspace service restart", Go: "Workspace.ServiceRestart", Python: "Workspace.service_restart", Method: "POST", Path: "/v1/workspaces/{workspace}/services/{service}/restart",
		Request: api.ServiceRequest{}, Result: api.Service{}, Destructive: true,
		local: bind(func(ctx context.Context, m *m, r api.ServiceRequest, _ IO) (*api.Service, error) {
			return m.ServiceRestart(ctx, r.Workspace, r.Service)
		}),
	},
	{
		Name: "service_remove", Summary: "Stop a service and delete its definition",
		Guide: "The service is stopped (TERM, then KILL after 10 s) and forgotten: it no longer starts at boot. Published ports stay: remove them with port_unpublish.",
		CLI:   "workspace service rm", Go: "Workspace.ServiceRemove", Python: "Workspace.service_remove", Method: "DELETE", Path: "/v1/workspaces/{workspace}/services/{service}",
		Request: api.ServiceRequest{}, Result: api.Service{}, Destructive: true,
		local: bind(func(ctx context.Context, m *m, r api.ServiceRequest, _ IO) (*api.Service, error) {
			return m.ServiceRemove(ctx, r.Workspace, r.Service)
		}),
	},
	{
		Name: "service_wait", Summary: "Wait for a service to be ready or to end",
		Guide: "Returns result ready, exited (with exit_code and tail), stopped or timed_out (with tail). Only ready is success; timed_out means it is still starting or unready: see service.probes for why.",
		CLI:   "workspace service wait", Go: "Workspace.ServiceWait", Python: "Workspace.service_wait", Method: "POST", Path: "/v1/workspaces/{workspace}/services/{service}/wait",
		Request: api.ServiceWaitRequest{}, Result: api.ServiceWait{}, ReadOnly: true, Idempotent: true,
		MCP:     map[string]int64{"timeout_ms": MCPServiceWaitMS},
		ArgsDoc: map[string]string{"timeout_ms": "Wait at most this many milliseconds."},
		local: bind(func(ctx context.Context, m *m, r api.ServiceWaitRequest, _ IO) (*api.ServiceWait, error) {
			return m.ServiceWait(ctx, r.Workspace, r.Service, ms(r.TimeoutMS))
		}),
	},
	{
		Name: "port_publish", Summary: "Publish a guest port on the host",
		Guide: "port is [HOST_ADDR:]HOST_PORT:GUEST_PORT (HOST_ADDR 127.0.0.1 by default; HOST_PORT 0 picks a free one). Connections to the host port reach 127.0.0.1:GUEST_PORT inside the guest, " +
			"so a server bound to the guest's loopback is reachable. Kept across stop and start; on a stopped workspace it is recorded and listens from the next start.",
		CLI: "workspace port publish", Go: "Workspace.PortPublish", Python: "Workspace.port_publish", Method: "POST", Path: "/v1/workspaces/{workspace}/ports",
		Request: api.PortPublishRequest{}, Result: api.PublishedPort{}, Destructive: true,
		local: bind(func(ctx context.Context, m *m, r api.PortPublishRequest, _ IO) (*api.PublishedPort, error) {
			return m.PortPublish(ctx, r.Workspace, r.Port, workspace.PublishOptions{AllowNonLoopback: r.AllowNonLoopback})
		}),
	},
	{
		Name: "port_list", Summary: "List published ports",
		Guide: "Returns each published port with whether the host listens on it now (active), why not (error), and its connection counts.",
		CLI:   "workspace port list", Go: "Workspace.PortList", Python: "Workspace.port_list", Method: "GET", Path: "/v1/workspaces/{workspace}/ports",
		Request: api.WorkspaceRequest{}, Result: api.PortList{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.WorkspaceRequest, _ IO) (*api.PortList, error) {
			l, err := m.PortList(ctx, r.Workspace)
			if err != nil {
				return nil, err
			}
			return &api.PortList{Ports: nonNil(l)}, nil
		}),
	},
	{
		Name: "port_unpublish", Summary: "Stop publishing a host port",
		Guide: "port is the host side as published ([HOST_ADDR:]HOST_PORT). Open connections finish; no new ones are accepted.",
		CLI:   "workspace port unpublish", Go: "Workspace.PortUnpublish", Python: "Workspace.port_unpublish", Method: "DELETE", Path: "/v1/workspaces/{workspace}/ports/{port}",
		Request: api.PortUnpublishRequest{}, Result: api.PublishedPort{}, Destructive: true,
		ArgsDoc: map[string]string{"port": "Host side of the published port: [HOST_ADDR:]HOST_PORT."},
		local: bind(func(ctx context.Context, m *m, r api.PortUnpublishRequest, _ IO) (*api.PublishedPort, error) {
			return m.PortUnpublish(ctx, r.Workspace, r.Port)
		}),
	},
}

func init() { All = append(All, serviceOps...) }

// limitedBuffer keeps the first api.OutputLimit bytes written to it.
type limitedBuffer struct {
	b         []byte
	truncated bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	room := api.OutputLimit - len(l.b)
	if len(p) > room {
		l.truncated = true
		l.b = append(l.b, p[:max(room, 0)]...)
		return len(p), nil
	}
	l.b = append(l.b, p...)
	return len(p), nil
}
