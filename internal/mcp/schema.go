package mcp

import (
	"fmt"
	"slices"

	"github.com/google/jsonschema-go/jsonschema"
)

// schemaFor infers the JSON Schema of T like the MCP SDK does, then makes
// it portable (G5): a Go slice infers as type ["null","array"], which some
// model providers' schema subsets reject, so slices become plain "array"
// (handlers never return nil slices). Properties named in desc get that
// description.
func schemaFor[T any](desc map[string]string) (*jsonschema.Schema, error) {
	s, err := jsonschema.For[T](nil)
	if err != nil {
		return nil, fmt.Errorf("infer schema for %T: %w", *new(T), err)
	}
	portable(s)
	for name, p := range s.Properties {
		if d, ok := desc[name]; ok && p.Description == "" {
			p.Description = d
		}
	}
	return s, nil
}

// portable rewrites nullable arrays to plain arrays throughout s.
func portable(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	if len(s.Types) == 2 && slices.Contains(s.Types, "null") && slices.Contains(s.Types, "array") {
		s.Types = nil
		s.Type = "array"
	}
	for _, p := range s.Properties {
		portable(p)
	}
	for _, d := range s.Defs {
		portable(d)
	}
	for _, list := range [][]*jsonschema.Schema{s.AnyOf, s.OneOf, s.AllOf, s.PrefixItems} {
		for _, x := range list {
			portable(x)
		}
	}
	portable(s.Items)
	portable(s.AdditionalProperties)
}

// argDocs describes the tool arguments for a model. A tool may override an
// entry (see tool.args).
var argDocs = map[string]string{
	"workspace":   "Workspace id or name (from workspace_create or workspace_list).",
	"argv":        "Program and arguments, run directly without a shell, e.g. [\"ls\",\"-la\"]. Give argv or command, not both.",
	"command":     "Shell command line run with /bin/sh -c, e.g. \"make test 2>&1 | tail\". Give argv or command, not both.",
	"cwd":         "Working directory in the guest (default /workspace).",
	"env":         "Extra environment entries, each \"KEY=VALUE\".",
	"timeout_ms":  "Kill the command after this many milliseconds (default: no limit). Unlike yield_ms this ends the command.",
	"stdin":       "Text given to the command as standard input (default: empty input).",
	"yield_ms":    "Wait at most this many milliseconds (default 10000, capped at 45000); a command still running then comes back with status \"running\" and a command_id and keeps running: follow up with command_wait, command_read or command_kill.",
	"detach":      "Return at once with status \"running\" and a command_id (for servers and other long-lived processes).",
	"name":        "Name for the workspace (default: generated). Must be unique.",
	"image":       "Guest image (default debian-12).",
	"backend":     "VMM backend: firecracker or qemu (default: the best available).",
	"cpus":        "Virtual CPUs (1 to 32, default 1).",
	"memory_mib":  "Guest memory in MiB (default 1024).",
	"disk_size":   "Writable disk size like \"8G\" or \"512M\" (default 8G).",
	"seed":        "Host path (directory, .tar, .tar.gz, .tgz or .zip) copied into /workspace; it becomes the baseline that workspace_diff compares against.",
	"tail":        "Only the last N commands (default: all).",
	"source":      "Host directory (on the machine hearth runs on) whose newer files are pushed into the workspace.",
	"dest":        "Guest directory to push into (default /workspace; must be under it).",
	"delete":      "Also delete guest files under dest that are gone from source.",
	"paths":       "Limit the diff to these files or directories (relative to /workspace).",
	"no_patch":    "Leave patches out: only paths, statuses and counts.",
	"guest_path":  "File or directory under /workspace to copy out.",
	"host_dest":   "New host path to write (a directory, or an archive with archive=true; .tar.gz/.tgz compress).",
	"archive":     "Write a tar archive instead of a directory.",
	"force":       "workspace_delete: also delete a running workspace. workspace_export: replace an existing non-empty destination.",
	"command_id":  "Command handle returned by workspace_exec (status \"running\") or listed by workspace_logs.",
	"stream":      "\"stdout\" (default) or \"stderr\".",
	"offset":      "Byte offset to read from (0 = start; use next_offset of the previous read to continue).",
	"limit":       "Bytes to read (default and maximum 65536).",
	"signal":      "Signal name: INT, TERM, KILL or HUP (command_kill defaults to KILL).",
	"shell_id":    "Shell handle returned by shell_open or listed by shell_list.",
	"cols":        "Terminal columns.",
	"rows":        "Terminal rows.",
	"data":        "Text to send exactly as given; end a command line with \"\\n\". Control keys as characters, e.g. \"\\u0003\" for Ctrl-C.",
	"data_base64": "Arbitrary bytes to send, base64-encoded (instead of data).",
	"cursor":      "Output offset to read from (default: where the previous read ended; use next_cursor of the previous read).",
	"wait_ms":     "Wait up to this many milliseconds for new output (default 0, capped at 45000); returns as soon as there is some.",
	"plain":       "Strip terminal escape sequences (recommended for reading).",
}
