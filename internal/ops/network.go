package ops

import (
	"context"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/workspace"
)

// networkOps are the guest network operations (issue 12).
var networkOps = []Op{
	{
		Name: "workspace_network_show", Summary: "Show a workspace's network policy",
		Guide: "Returns the mode (none, egress, open), the ordered rules, the host ports opened with allow_host, the guest's addresses, and whether the running VM enforces the policy now.",
		CLI:   "workspace network show", Go: "Workspace.NetworkShow", Python: "Workspace.network_show", Method: "GET", Path: "/v1/workspaces/{workspace}/network",
		Request: api.WorkspaceRequest{}, Result: api.NetworkInfo{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.WorkspaceRequest, _ IO) (*api.NetworkInfo, error) {
			return m.NetworkShow(ctx, r.Workspace)
		}),
	},
	{
		Name: "workspace_network_set", Summary: "Replace a workspace's network policy",
		Guide: "Sets the mode and the whole ordered rule list (each rule: DOMAIN, *.DOMAIN or CIDR, optional :PORT or :PORT-PORT, optional /tcp or /udp) and allow_host ports. " +
			"On a running workspace with a network it applies at once to new connections and DNS queries; switching to or from none adds or removes the network interface at the next start (see applied and note).",
		CLI: "workspace network set", Go: "Workspace.NetworkSet", Python: "Workspace.network_set", Method: "PUT", Path: "/v1/workspaces/{workspace}/network",
		Request: api.NetworkSetRequest{}, Result: api.NetworkInfo{}, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.NetworkSetRequest, _ IO) (*api.NetworkInfo, error) {
			p := r.NetworkSpec.Policy()
			if p == nil {
				p = &api.NetworkPolicy{Mode: "none"}
			}
			return m.NetworkSet(ctx, r.Workspace, *p)
		}),
	},
	{
		Name: "workspace_network_log", Summary: "Read a workspace's network log",
		Guide: "Returns what the guest network did: each DNS query and connection with its destination, the rule that decided, allowed or denied, and bytes for allowed flows. Poll with after set to the last event's time to follow.",
		CLI:   "workspace network log", Go: "Workspace.NetworkLog", Python: "Workspace.network_log", Method: "GET", Path: "/v1/workspaces/{workspace}/network/log",
		Request: api.NetworkLogRequest{}, Result: api.NetworkLog{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.NetworkLogRequest, _ IO) (*api.NetworkLog, error) {
			o := workspace.NetworkLogOptions{Tail: r.Tail}
			if r.After != "" {
				t, err := time.Parse(time.RFC3339Nano, r.After)
				if err != nil {
					return nil, errdefs.Arg("after", "%q: want an RFC 3339 time", r.After)
				}
				o.Since = t.Add(time.Nanosecond)
			}
			var out []api.NetworkEvent
			err := m.NetworkLog(ctx, r.Workspace, o, func(e api.NetworkEvent) error {
				out = append(out, e)
				return nil
			})
			if err != nil {
				return nil, err
			}
			return &api.NetworkLog{Events: nonNil(out)}, nil
		}),
	},
	{
		Name: "workspace_network_test", Summary: "Self-test the network policy from inside the guest",
		Guide: "Runs probes in the guest that cannot leave this machine: with no network, that the guest has no interface and no DNS; with one, that a host port not opened is refused at once, that a name no rule allows does not resolve (egress), and that allow_host ports connect. ok says whether enforcement holds.",
		CLI:   "workspace network test", Go: "Workspace.NetworkTest", Python: "Workspace.network_test", Method: "POST", Path: "/v1/workspaces/{workspace}/network/test",
		Request: api.WorkspaceRequest{}, Result: api.NetworkTestResult{}, ReadOnly: true,
		local: bind(func(ctx context.Context, m *m, r api.WorkspaceRequest, _ IO) (*api.NetworkTestResult, error) {
			return m.NetworkTest(ctx, r.Workspace)
		}),
	},
}

func init() {
	All = append(All, networkOps...)
	ArgDocs["network"] = "Guest network mode: none (no network interface), egress (deny by default, allow what rules allow) or open (all public egress)."
	ArgDocs["rules"] = "Ordered allow and deny rules, first match decides: objects {action: allow|deny, match: RULE}; RULE is DOMAIN, *.DOMAIN or CIDR with optional :PORT or :PORT-PORT and optional /tcp or /udp."
	ArgDocs["allow_host"] = "Host loopback ports the guest may reach at host.hearth.internal (forwarded to the host's 127.0.0.1:PORT)."
	ArgDocs["after"] = "Only events strictly after this RFC 3339 time (the last event's time, to follow the log)."
}
