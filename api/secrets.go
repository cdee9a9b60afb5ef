package api

import "time"

// Secret modes of a workspace's exposure (WorkspaceSecret.Mode).
const (
	// SecretFile: the value in /run/secrets/NAME (a tmpfs, mode 0400).
	SecretFile = "file"
	// SecretEnv: NAME=value in the environment of the execs and shells
	// that ask for it (secret_env), or of all of them with secret_env_all.
	SecretEnv = "env"
	// SecretBrokered: the guest sees only a placeholder (in
	// /run/secrets/NAME and, when asked, in the environment); the egress
	// path puts the value in place of the placeholder only in the
	// configured headers of requests to the configured hosts.
	SecretBrokered = "brokered"
)

// Secret is a stored secret's metadata, never its value.
type Secret struct {
	Name string `json:"name"`
	// Bytes is the value's length.
	Bytes     int       `json:"bytes"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Hosts and Headers configure brokered exposure (see SecretBrokered).
	Hosts   []string `json:"hosts,omitempty"`
	Headers []string `json:"headers,omitempty"`
	// Workspaces are the workspaces that expose it.
	Workspaces []string `json:"workspaces,omitempty"`
}

// SecretList is the result of `secret_list`.
type SecretList struct {
	Secrets []Secret `json:"secrets"`
}

// WorkspaceSecret is one secret a workspace exposes, and how.
type WorkspaceSecret struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
	// Placeholder is what the guest sees in place of a brokered value.
	Placeholder string `json:"placeholder,omitempty"`
	// Hosts and Headers of a brokered exposure.
	Hosts   []string `json:"hosts,omitempty"`
	Headers []string `json:"headers,omitempty"`
}

// SecretSetRequest is the request of `secret_set`. The value is never
// echoed: not in results, errors or logs.
type SecretSetRequest struct {
	Name string `json:"name" path:"true" cli:"arg"`
	// Value is the value as UTF-8 text; ValueBase64 the same for arbitrary
	// bytes (give one). The CLI reads it from stdin, --from-file or
	// --from-env instead, on the machine the CLI runs on.
	Value       string `json:"value,omitempty" cli:"-"`
	ValueBase64 string `json:"value_base64,omitempty" cli:"-"`
	// Hosts are the hosts a brokered exposure sends the value to (required
	// for brokered; no wildcard means any host).
	Hosts []string `json:"hosts,omitempty" cli:"host"`
	// Headers are the request headers the value goes in (brokered;
	// default Authorization).
	Headers []string `json:"headers,omitempty" cli:"header"`
}

// SecretRequest names a stored secret: the request of `secret_rm`.
type SecretRequest struct {
	Name string `json:"name" path:"true" cli:"arg"`
}

// SecretListRequest is the request of `secret_list`.
type SecretListRequest struct{}

// WorkspaceSecretAddRequest is the request of `workspace_secret_add`.
type WorkspaceSecretAddRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Name      string `json:"name" path:"true" cli:"arg"`
	// Mode is file, env or brokered.
	Mode string `json:"mode,omitempty" default:"env"`
	// Hosts and Headers override the stored secret's for a brokered
	// exposure.
	Hosts   []string `json:"hosts,omitempty" cli:"host"`
	Headers []string `json:"headers,omitempty" cli:"header"`
}

// WorkspaceSecretRmRequest is the request of `workspace_secret_rm`.
type WorkspaceSecretRmRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Name      string `json:"name" path:"true" cli:"arg"`
}
