// Package ops is the one registry of hearth's public operations. The CLI,
// Go SDK, Python SDK, HTTP API and MCP server each expose every operation
// listed here under the names given; tests in each surface check their
// surface against this table, and docs/public-contract.md's operation
// table is generated from it (go run ./internal/ops/gen).
package ops

// Op is one operation of the contract.
type Op struct {
	// Name is the canonical name, also the MCP tool name.
	Name string
	// Summary is one line on what it does.
	Summary string
	// CLI is the command path after `hearth`.
	CLI string
	// Go is the SDK method (Client.X or Workspace.X).
	Go string
	// Python is the Python SDK method (Client.x or Workspace.x).
	Python string
	// HTTP is "METHOD /path" of the HTTP API.
	HTTP string
	// ReadOnly, Destructive and Idempotent are the MCP annotations.
	ReadOnly, Destructive, Idempotent bool
}

// All lists the operations in the order the contract documents them.
var All = []Op{
	{Name: "run", Summary: "Run one command in a throwaway VM and remove it", CLI: "run", Go: "Client.Run", Python: "Client.run", HTTP: "POST /v1/run"},
	{Name: "workspace_create", Summary: "Create a workspace (optionally seeded) and boot it", CLI: "workspace create", Go: "Client.CreateWorkspace", Python: "Client.create_workspace", HTTP: "POST /v1/workspaces"},
	{Name: "workspace_list", Summary: "List workspaces", CLI: "workspace list", Go: "Client.ListWorkspaces", Python: "Client.list_workspaces", HTTP: "GET /v1/workspaces", ReadOnly: true, Idempotent: true},
	{Name: "workspace_show", Summary: "Show one workspace", CLI: "workspace show", Go: "Workspace.Show", Python: "Workspace.show", HTTP: "GET /v1/workspaces/{ws}", ReadOnly: true, Idempotent: true},
	{Name: "workspace_start", Summary: "Boot a stopped workspace from its disk", CLI: "workspace start", Go: "Workspace.Start", Python: "Workspace.start", HTTP: "POST /v1/workspaces/{ws}/start", Idempotent: true},
	{Name: "workspace_stop", Summary: "Shut a workspace down cleanly", CLI: "workspace stop", Go: "Workspace.Stop", Python: "Workspace.stop", HTTP: "POST /v1/workspaces/{ws}/stop", Idempotent: true},
	{Name: "workspace_delete", Summary: "Delete a workspace and all its files", CLI: "workspace delete", Go: "Workspace.Delete", Python: "Workspace.delete", HTTP: "DELETE /v1/workspaces/{ws}", Destructive: true, Idempotent: true},
	{Name: "workspace_exec", Summary: "Run a command in a workspace", CLI: "workspace exec", Go: "Workspace.Exec", Python: "Workspace.exec", HTTP: "POST /v1/workspaces/{ws}/exec", Destructive: true},
	{Name: "workspace_logs", Summary: "List the command log", CLI: "workspace logs", Go: "Workspace.Logs", Python: "Workspace.logs", HTTP: "GET /v1/workspaces/{ws}/logs", ReadOnly: true, Idempotent: true},
	{Name: "workspace_sync_push", Summary: "Push a host directory into the workspace", CLI: "workspace sync push", Go: "Workspace.SyncPush", Python: "Workspace.sync_push", HTTP: "POST /v1/workspaces/{ws}/sync", Destructive: true, Idempotent: true},
	{Name: "workspace_diff", Summary: "Diff the live /workspace against the baseline", CLI: "workspace diff", Go: "Workspace.Diff", Python: "Workspace.diff", HTTP: "GET /v1/workspaces/{ws}/diff", ReadOnly: true, Idempotent: true},
	{Name: "workspace_export", Summary: "Copy a path out of /workspace to the host", CLI: "workspace export", Go: "Workspace.Export", Python: "Workspace.export", HTTP: "POST /v1/workspaces/{ws}/export"},
	{Name: "command_wait", Summary: "Wait for a running command", CLI: "workspace wait", Go: "Workspace.CommandWait", Python: "Workspace.command_wait", HTTP: "POST /v1/workspaces/{ws}/commands/{id}/wait", ReadOnly: true, Idempotent: true},
	{Name: "command_read", Summary: "Read a command's output from an offset", CLI: "workspace output", Go: "Workspace.CommandRead", Python: "Workspace.command_read", HTTP: "GET /v1/workspaces/{ws}/commands/{id}/output", ReadOnly: true, Idempotent: true},
	{Name: "command_kill", Summary: "Signal a running command", CLI: "workspace kill", Go: "Workspace.CommandKill", Python: "Workspace.command_kill", HTTP: "POST /v1/workspaces/{ws}/commands/{id}/kill", Destructive: true, Idempotent: true},
	{Name: "shell_open", Summary: "Open a persistent PTY shell", CLI: "workspace shell open", Go: "Workspace.ShellOpen", Python: "Workspace.shell_open", HTTP: "POST /v1/workspaces/{ws}/shells"},
	{Name: "shell_write", Summary: "Send bytes to a shell", CLI: "workspace shell write", Go: "Workspace.ShellWrite", Python: "Workspace.shell_write", HTTP: "POST /v1/workspaces/{ws}/shells/{id}/write", Destructive: true},
	{Name: "shell_read", Summary: "Read shell output from a cursor", CLI: "workspace shell read", Go: "Workspace.ShellRead", Python: "Workspace.shell_read", HTTP: "GET /v1/workspaces/{ws}/shells/{id}/output", ReadOnly: true},
	{Name: "shell_resize", Summary: "Resize a shell's terminal", CLI: "workspace shell resize", Go: "Workspace.ShellResize", Python: "Workspace.shell_resize", HTTP: "POST /v1/workspaces/{ws}/shells/{id}/resize", Idempotent: true},
	{Name: "shell_signal", Summary: "Signal a shell's foreground process group", CLI: "workspace shell signal", Go: "Workspace.ShellSignal", Python: "Workspace.shell_signal", HTTP: "POST /v1/workspaces/{ws}/shells/{id}/signal", Destructive: true},
	{Name: "shell_close", Summary: "Close a shell session", CLI: "workspace shell close", Go: "Workspace.ShellClose", Python: "Workspace.shell_close", HTTP: "DELETE /v1/workspaces/{ws}/shells/{id}", Destructive: true, Idempotent: true},
	{Name: "shell_list", Summary: "List shell sessions", CLI: "workspace shell list", Go: "Workspace.ShellList", Python: "Workspace.shell_list", HTTP: "GET /v1/workspaces/{ws}/shells", ReadOnly: true, Idempotent: true},
}

// ByName returns the operation called name.
func ByName(name string) (Op, bool) {
	for _, o := range All {
		if o.Name == name {
			return o, true
		}
	}
	return Op{}, false
}
