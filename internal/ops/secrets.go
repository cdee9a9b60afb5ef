package ops

import (
	"context"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/workspace"
)

// secretNameDoc describes a secret's name (ArgDocs' "name" is a workspace's).
var secretNameDoc = map[string]string{"name": "Secret name: 1-128 characters A-Z, a-z, 0-9 or '_', not starting with a digit (it is also the environment variable's name and the file name under /run/secrets)."}

func init() {
	All = append(All, secretOps...)
	for k, v := range map[string]string{
		"value": "The secret's value as UTF-8 text (4 bytes to 64 KiB). It is stored on the host with mode 0600 and never echoed: not in results, errors or logs. " +
			"It travels in this request, so send it only over the local Unix socket or MCP stdio.",
		"value_base64":   "The secret's value as base64, for arbitrary bytes (give value or value_base64).",
		"hosts":          "Hosts a brokered exposure may send the value to, e.g. api.example.com or 127.0.0.1:8443. Required for brokered; there is no any-host default.",
		"headers":        "Request headers a brokered value goes in (default Authorization).",
		"mode":           "How the secret is exposed: file (/run/secrets/NAME, tmpfs, 0400), env (NAME=value for the execs and shells that ask with secret_env), or brokered (the guest sees a placeholder).",
		"secrets":        "Stored secrets to expose, each NAME or NAME:MODE (file, env or brokered; default env). See secret_set.",
		"secret_env_all": "Put the env secrets in every exec's and shell's environment, not only of those that name them in secret_env.",
		"secret_env":     "Names of the workspace's env secrets to set in the environment (their values are redacted from all output).",
	} {
		if _, ok := ArgDocs[k]; !ok {
			ArgDocs[k] = v
		}
	}
}

var secretOps = []Op{
	{
		Name: "secret_set", Summary: "Store a secret on the host",
		Guide: "Stores a named value in the host's secret store (replacing any it had); the value is never shown again: not by secret_list, not in errors. " +
			"Expose it to a workspace with workspace_create's secrets or workspace_secret_add; its value is then redacted from every output as [REDACTED:NAME].",
		CLI: "secret set", Go: "Client.SecretSet", Python: "Client.secret_set", Method: "PUT", Path: "/v1/secrets/{name}",
		Request: api.SecretSetRequest{}, Result: api.Secret{}, Idempotent: true,
		ArgsDoc: secretNameDoc,
		local: bind(func(ctx context.Context, m *m, r api.SecretSetRequest, _ IO) (*api.Secret, error) {
			if r.Value == "" && r.ValueBase64 == "" {
				return nil, errdefs.Arg("value", "secret %s: no value given: give value or value_base64 (the CLI reads stdin, --from-file or --from-env)", r.Name)
			}
			v, err := oneOf("value", r.Value, r.ValueBase64)
			if err != nil {
				return nil, errdefs.Arg("value_base64", "secret %s: the value is not valid base64", r.Name)
			}
			defer clear(v)
			return m.SecretSet(ctx, r.Name, v, workspace.SecretSetOptions{Hosts: r.Hosts, Headers: r.Headers})
		}),
	},
	{
		Name: "secret_list", Summary: "List stored secrets (never their values)",
		Guide: "Returns each secret's name, size, brokered hosts and headers, and the workspaces that expose it. Values are never returned.",
		CLI:   "secret list", Go: "Client.SecretList", Python: "Client.secret_list", Method: "GET", Path: "/v1/secrets",
		Request: api.SecretListRequest{}, Result: api.SecretList{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, _ api.SecretListRequest, _ IO) (*api.SecretList, error) {
			l, err := m.SecretList(ctx)
			if err != nil {
				return nil, err
			}
			return &api.SecretList{Secrets: nonNil(l)}, nil
		}),
	},
	{
		Name: "secret_rm", Summary: "Remove a stored secret",
		Guide: "Deletes the secret from the host store. A secret a workspace exposes is refused: remove it there first with workspace_secret_rm.",
		CLI:   "secret rm", Go: "Client.SecretRemove", Python: "Client.secret_rm", Method: "DELETE", Path: "/v1/secrets/{name}",
		Request: api.SecretRequest{}, Result: api.Secret{}, Destructive: true,
		ArgsDoc: secretNameDoc,
		local: bind(func(ctx context.Context, m *m, r api.SecretRequest, _ IO) (*api.Secret, error) {
			return m.SecretRemove(ctx, r.Name)
		}),
	},
	{
		Name: "workspace_secret_add", Summary: "Expose a stored secret to a workspace",
		Guide: "file puts the value in /run/secrets/NAME (a tmpfs, mode 0400, never on the disk); env sets NAME=value in the execs and shells that ask with secret_env " +
			"(or all of them when the workspace was created with secret_env_all); brokered gives the guest a placeholder that egress replaces for the configured hosts and headers. " +
			"A running workspace gets the change at once. Values are redacted from all output as [REDACTED:NAME].",
		CLI: "workspace secret add", Go: "Workspace.SecretAdd", Python: "Workspace.secret_add", Method: "PUT", Path: "/v1/workspaces/{workspace}/secrets/{name}",
		Request: api.WorkspaceSecretAddRequest{}, Result: api.Workspace{}, Idempotent: true,
		ArgsDoc: secretNameDoc,
		local: bind(func(ctx context.Context, m *m, r api.WorkspaceSecretAddRequest, _ IO) (*api.Workspace, error) {
			return m.WorkspaceSecretAdd(ctx, r.Workspace, workspace.SecretExposure{Name: r.Name, Mode: r.Mode, Hosts: r.Hosts, Headers: r.Headers})
		}),
	},
	{
		Name: "workspace_secret_rm", Summary: "Stop exposing a secret to a workspace",
		Guide: "Removes its file at once; processes already running keep the environment they started with. The secret stays in the host store.",
		CLI:   "workspace secret rm", Go: "Workspace.SecretRemove", Python: "Workspace.secret_rm", Method: "DELETE", Path: "/v1/workspaces/{workspace}/secrets/{name}",
		Request: api.WorkspaceSecretRmRequest{}, Result: api.Workspace{}, Destructive: true,
		ArgsDoc: secretNameDoc,
		local: bind(func(ctx context.Context, m *m, r api.WorkspaceSecretRmRequest, _ IO) (*api.Workspace, error) {
			return m.WorkspaceSecretRemove(ctx, r.Workspace, r.Name)
		}),
	},
}
