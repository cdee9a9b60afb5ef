package ops

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// Arg is one argument of an operation: a field of its request type.
type Arg struct {
	// Name is the JSON name.
	Name string
	// Type is the JSON type: string, integer, boolean, array (of strings).
	Type string
	// Default is the value an omitted argument takes ("" when none).
	Default string
	// Max is the largest accepted value ("" when unbounded).
	Max string
	// CLI is the CLI flag name, "arg" for a positional argument, "-" when
	// the CLI takes it another way.
	CLI string
	// Path is set for arguments carried in the HTTP path.
	Path bool
	// Required is set for arguments without omitempty.
	Required bool
	// Doc describes the argument.
	Doc string
	// Host is "read" or "write" for a host path the operation reads or
	// writes (servers confine these, see internal/hostpath).
	Host string

	field reflect.StructField
	index []int
}

// Args returns the operation's arguments in declaration order (embedded
// structs flattened).
func (o Op) Args() []Arg {
	var out []Arg
	collect(o.RequestType(), nil, &out)
	for i := range out {
		if d, ok := o.ArgsDoc[out[i].Name]; ok {
			out[i].Doc = d
		} else {
			out[i].Doc = ArgDocs[out[i].Name]
		}
	}
	return out
}

func collect(t reflect.Type, index []int, out *[]Arg) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		idx := append(append([]int(nil), index...), i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			collect(f.Type, idx, out)
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		a := Arg{Name: name, Type: jsonType(f.Type), Default: f.Tag.Get("default"), Max: f.Tag.Get("max"),
			CLI: f.Tag.Get("cli"), Path: f.Tag.Get("path") == "true", Host: f.Tag.Get("host"), Required: !strings.Contains(opts, "omitempty"), field: f, index: idx}
		if a.CLI == "" {
			a.CLI = strings.ReplaceAll(name, "_", "-")
		}
		*out = append(*out, a)
	}
}

func jsonType(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "integer"
	case reflect.Slice:
		return "array"
	}
	return t.Kind().String()
}

// Prepare applies the operation's defaults to the request req points to
// and checks the bounds every surface shares: durations and sizes are not
// negative, values are not above their max. mcp selects MCP's own
// defaults (Op.MCP) where it has them.
func (o Op) Prepare(req any, mcp bool) error {
	v := reflect.ValueOf(req)
	if v.Kind() != reflect.Pointer || v.Elem().Type() != o.RequestType() {
		return errWrongRequest(req, o.Request)
	}
	v = v.Elem()
	for _, a := range o.Args() {
		f := v.FieldByIndex(a.index)
		def := a.Default
		if mcp {
			if n, ok := o.MCP[a.Name]; ok {
				def = strconv.FormatInt(n, 10)
			}
		}
		if f.IsZero() && def != "" {
			if err := setFromString(f, def); err != nil {
				return fmt.Errorf("op %s: default of %s: %v", o.Name, a.Name, err)
			}
		}
		if f.Kind() == reflect.Int || f.Kind() == reflect.Int64 {
			n := f.Int()
			if n < 0 {
				return errdefs.Arg(a.Name, "must not be negative (got %d)", n)
			}
			if a.Max != "" {
				max, _ := strconv.ParseInt(a.Max, 10, 64)
				if n > max {
					return errdefs.Arg(a.Name, "%d is more than the maximum %d", n, max)
				}
			}
		}
		if a.field.Tag.Get("format") == "size" && f.String() != "" {
			if _, err := ParseSize(f.String()); err != nil {
				return errdefs.Arg(a.Name, "%q: want a positive number with an optional K, M, G or T suffix (e.g. 10G)", f.String())
			}
		}
		if a.Required && f.IsZero() && f.Kind() == reflect.String {
			return errdefs.Arg(a.Name, "is required")
		}
	}
	return nil
}

// setFromString sets a scalar field from its tag text.
func setFromString(f reflect.Value, s string) error {
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	default:
		return fmt.Errorf("no default for a %s", f.Type())
	}
	return nil
}

func errWrongRequest(got, want any) error {
	return fmt.Errorf("request of type %T, want %T: %w", got, want, errdefs.ErrInternal)
}

// ParseSize parses sizes like 512M, 8G, 10GiB, 1T or plain bytes.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSpace(strings.ToUpper(s))
	num = strings.TrimSuffix(strings.TrimSuffix(num, "IB"), "B")
	for _, u := range []struct {
		suf string
		m   int64
	}{{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}} {
		if strings.HasSuffix(num, u.suf) {
			mult, num = u.m, strings.TrimSuffix(num, u.suf)
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != num {
		return 0, fmt.Errorf("size %q: want a positive number with an optional K, M, G or T suffix (e.g. 10G): %w", s, errdefs.ErrInvalidArgument)
	}
	return n * mult, nil
}

// ArgDocs describes arguments by JSON name, for MCP schemas, the OpenAPI
// document and the contract; an operation's ArgsDoc overrides an entry.
var ArgDocs = map[string]string{
	"workspace":               "Workspace id or name (from workspace_create or workspace_list).",
	"argv":                    "Program and arguments, run directly without a shell, e.g. [\"ls\",\"-la\"]. Give argv or command, not both.",
	"command":                 "Shell command line run with /bin/sh -c, e.g. \"make test 2>&1 | tail\". Give argv or command, not both.",
	"cwd":                     "Working directory in the guest.",
	"env":                     "Extra environment entries, each \"KEY=VALUE\".",
	"timeout_ms":              "Kill the command after this many milliseconds (0: no limit). Unlike yield_ms this ends the command.",
	"stdin":                   "Text given to the command as standard input (default: empty input).",
	"stdin_base64":            "Arbitrary bytes given as standard input, base64-encoded (instead of stdin).",
	"yield_ms":                "Wait at most this many milliseconds (0: until it ends); a command still running then comes back with status \"running\" and a command_id and keeps running: follow up with command_wait, command_read or command_kill.",
	"detach":                  "Return at once with status \"running\" and a command_id (for servers and other long-lived processes).",
	"name":                    "Name for the workspace (default: its id). Must be unique.",
	"image":                   "Guest image.",
	"backend":                 "VMM backend: auto, qemu or firecracker (default: $HEARTH_BACKEND, else auto).",
	"cpus":                    "Virtual CPUs (1 to 32).",
	"memory_mib":              "Guest memory in MiB (at least 128).",
	"disk_size":               "Writable disk size (sparse) like \"8G\" or \"512M\".",
	"seed":                    "Host path (directory, .tar, .tar.gz, .tgz or .zip) copied into /workspace; it becomes the baseline that workspace_diff compares against.",
	"tail":                    "Only the last N commands (0: all).",
	"source":                  "Host directory (on the machine hearth runs on) whose new and changed files are pushed into the workspace.",
	"dest":                    "Guest directory to push into (must be under /workspace).",
	"delete":                  "Also delete guest files under dest that are gone from source.",
	"paths":                   "Limit the diff to these files or directories (relative to /workspace).",
	"no_patch":                "Leave patches out: only paths, statuses and counts.",
	"guest_path":              "File or directory under /workspace to copy out.",
	"host_dest":               "New host path to write (a directory, or an archive with archive=true; .tar.gz/.tgz compress).",
	"archive":                 "Write a tar archive instead of a directory.",
	"force":                   "Act even though it replaces or kills something (see the operation).",
	"command_id":              "Command handle returned by workspace_exec (status \"running\") or listed by workspace_logs.",
	"stream":                  "\"stdout\" or \"stderr\".",
	"offset":                  "Byte offset to read from (0 = start; use next_offset of the previous read to continue).",
	"limit":                   "Bytes to read at most.",
	"signal":                  "Signal name: INT, TERM, KILL, HUP, QUIT, USR1, USR2, TSTP or CONT.",
	"shell_id":                "Shell handle returned by shell_open or listed by shell_list.",
	"cols":                    "Terminal columns.",
	"rows":                    "Terminal rows.",
	"data":                    "Text to send exactly as given; end a command line with \"\\n\". Control keys as characters, e.g. \"\\u0003\" for Ctrl-C.",
	"data_base64":             "Arbitrary bytes to send, base64-encoded (instead of data).",
	"cursor":                  "Output offset to read from (default: where the previous read ended; use next_cursor of the previous read).",
	"wait_ms":                 "Wait up to this many milliseconds for new output; returns as soon as there is some.",
	"plain":                   "Strip terminal escape sequences (recommended for reading).",
	"exclude":                 "Leave out paths matching these gitignore-syntax patterns, e.g. [\"__pycache__/\", \"*.log\", \"/build\"].",
	"max_patch_bytes":         "Largest file (and patch) shown as a patch, in bytes; larger ones keep their status and sizes with patch_omitted saying why.",
	"max_total_patch_bytes":   "Patch text of the whole result at most this many bytes; later files keep their line counts with patch_omitted \"diff too large\".",
	"keep_last":               "Keep the output of the last N commands.",
	"older_than_ms":           "Prune only commands started longer ago than this many milliseconds.",
	"max_bytes":               "Stop once the whole log takes at most this much, like \"1G\" (default: prune every command selected).",
	"preserve_mode":           "Keep setuid, setgid, sticky and world-writable bits (dropped by default).",
	"service":                 "Service name, unique in its workspace (letters, digits, '.', '_', '-').",
	"ready":                   "Readiness probes, all of which must pass: port:N, http:[PORT]/PATH[=200-399], log:REGEX, file:PATH, cmd:COMMAND or notify, each optionally KIND{interval=1s,timeout=2s,start_period=30s,retries=3}:ARG (docs/services.md).",
	"restart":                 "Restart policy: no, on-failure or always (with back-off, and a start limit of 5 starts in 10 s).",
	"start_limit_burst":       "Starts allowed within start_limit_interval_ms; one more restart makes the service failed.",
	"start_limit_interval_ms": "The start limit's window in milliseconds.",
	"wait":                    "Wait until the service is ready or has ended, up to wait_timeout_ms; see the result's wait.",
	"wait_timeout_ms":         "With wait, wait at most this many milliseconds.",
	"publish":                 "Ports to publish on the host, each [HOST_ADDR:]HOST_PORT:GUEST_PORT (HOST_ADDR 127.0.0.1 by default).",
	"allow_non_loopback":      "Allow a published host address that is not a loopback address (reachable from other machines).",
	"follow":                  "Keep streaming new output.",
	"port":                    "[HOST_ADDR:]HOST_PORT:GUEST_PORT, e.g. 8080:3000 or 127.0.0.1:8080:3000.",
}

// GoName is the request field's Go name.
func (a Arg) GoName() string { return a.field.Name }

// GoType is the request field's Go type.
func (a Arg) GoType() reflect.Type { return a.field.Type }
