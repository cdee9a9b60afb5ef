package hearth

import (
	"context"
	"time"

	"github.com/hearthvm/hearth/api"
)

// Guest network types (see api).
type (
	NetworkPolicy     = api.NetworkPolicy
	NetworkRule       = api.NetworkRule
	NetworkInfo       = api.NetworkInfo
	NetworkEvent      = api.NetworkEvent
	NetworkTestResult = api.NetworkTestResult
)

// NetworkShow returns the workspace's network policy and whether the
// running VM enforces it.
func (w *Workspace) NetworkShow(ctx context.Context) (*NetworkInfo, error) {
	return invoke[NetworkInfo](ctx, w.c, "workspace_network_show", &api.WorkspaceRequest{Workspace: w.ref}, Streams{})
}

// NetworkSet replaces the workspace's network policy (live on a running
// workspace with a network).
func (w *Workspace) NetworkSet(ctx context.Context, p NetworkPolicy) (*NetworkInfo, error) {
	if p.Mode == "" {
		p.Mode = "none"
	}
	return invoke[NetworkInfo](ctx, w.c, "workspace_network_set", &api.NetworkSetRequest{Workspace: w.ref, NetworkSpec: p.Spec()}, Streams{})
}

// NetworkLog returns the workspace's network log: the last tail events
// (0: all) logged after after (zero: from the start).
func (w *Workspace) NetworkLog(ctx context.Context, tail int, after time.Time) ([]NetworkEvent, error) {
	req := api.NetworkLogRequest{Workspace: w.ref, Tail: tail}
	if !after.IsZero() {
		req.After = after.Format(time.RFC3339Nano)
	}
	l, err := invoke[api.NetworkLog](ctx, w.c, "workspace_network_log", &req, Streams{})
	if err != nil {
		return nil, err
	}
	return l.Events, nil
}

// NetworkTest runs the network self-test inside the guest.
func (w *Workspace) NetworkTest(ctx context.Context) (*NetworkTestResult, error) {
	return invoke[NetworkTestResult](ctx, w.c, "workspace_network_test", &api.WorkspaceRequest{Workspace: w.ref}, Streams{})
}
