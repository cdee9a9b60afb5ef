package hearth

import (
	"context"
	"encoding/base64"

	"github.com/hearthvm/hearth/api"
)

type (
	// Secret is a stored secret's metadata (never its value).
	Secret = api.Secret
	// WorkspaceSecret is one secret a workspace exposes, and how.
	WorkspaceSecret = api.WorkspaceSecret
)

// SecretSetOptions configure a stored secret beyond its value.
type SecretSetOptions struct {
	// Hosts and Headers configure brokered exposure: the hosts the value
	// may be sent to (required for brokered) and the headers it goes in
	// (default Authorization).
	Hosts, Headers []string
}

// SecretSet stores value under name in the host's secret store,
// replacing any value it had. The value is never returned or logged; over
// a remote client it travels in the request (use a local socket).
func (c *Client) SecretSet(ctx context.Context, name string, value []byte, o SecretSetOptions) (*Secret, error) {
	req := api.SecretSetRequest{Name: name, Hosts: o.Hosts, Headers: o.Headers}
	if len(value) > 0 {
		req.ValueBase64 = base64.StdEncoding.EncodeToString(value)
	}
	return invoke[Secret](ctx, c, "secret_set", &req, Streams{})
}

// SecretList lists the stored secrets: names and metadata, never values.
func (c *Client) SecretList(ctx context.Context) ([]Secret, error) {
	r, err := invoke[api.SecretList](ctx, c, "secret_list", &api.SecretListRequest{}, Streams{})
	if err != nil {
		return nil, err
	}
	return r.Secrets, nil
}

// SecretRemove deletes a stored secret (refused while a workspace
// exposes it).
func (c *Client) SecretRemove(ctx context.Context, name string) (*Secret, error) {
	return invoke[Secret](ctx, c, "secret_rm", &api.SecretRequest{Name: name}, Streams{})
}

// SecretExposure is how a workspace exposes a secret.
type SecretExposure struct {
	// Mode is "file", "env" (default) or "brokered".
	Mode string
	// Hosts and Headers override the stored secret's for brokered.
	Hosts, Headers []string
}

// SecretAdd exposes a stored secret to the workspace.
func (w *Workspace) SecretAdd(ctx context.Context, name string, o SecretExposure) (*WorkspaceInfo, error) {
	req := api.WorkspaceSecretAddRequest{Workspace: w.ref, Name: name, Mode: o.Mode, Hosts: o.Hosts, Headers: o.Headers}
	return invoke[WorkspaceInfo](ctx, w.c, "workspace_secret_add", &req, Streams{})
}

// SecretRemove stops exposing a secret to the workspace.
func (w *Workspace) SecretRemove(ctx context.Context, name string) (*WorkspaceInfo, error) {
	return invoke[WorkspaceInfo](ctx, w.c, "workspace_secret_rm", &api.WorkspaceSecretRmRequest{Workspace: w.ref, Name: name}, Streams{})
}
