// Package mcp is hearth's MCP server (`hearth mcp serve`): one tool per
// operation of the contract (internal/ops), named and annotated as the
// registry says, with typed inputs (the api request shapes plus a
// "workspace" argument) and typed structured outputs (the api result
// types). Every tool is a thin layer over the Go SDK (package hearth); this
// package only adapts arguments, bounds what a result carries for a
// model's context, keeps every call under about 50 seconds (yield and
// handles for long commands), and turns errors into isError results that
// say what to do next.
//
// It is built on github.com/modelcontextprotocol/go-sdk and works around
// that SDK's gaps (see /work/shared/notes/mcp.md): handler panics are
// recovered (G1), slices get portable schemas (G5), and every annotation
// hint is set explicitly (G6). The HTTP transport is in http.go.
package mcp

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ops"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Options configure a server.
type Options struct {
	// Logger receives the server's log (default: discard). In stdio mode
	// it must not write to stdout, which carries the protocol.
	Logger *slog.Logger
	// SDKLogger receives the MCP SDK's own log of sessions and requests
	// (default: discard).
	SDKLogger *slog.Logger
	// Version is reported to clients (default "dev").
	Version string
}

// instructions tell a model how the tools fit together.
const instructions = `hearth gives you persistent Linux microVM workspaces (hardware-isolated VMs on this machine).
Typical flow: workspace_create (optionally seed=<host dir> copied into /workspace as the baseline) ->
workspace_exec / shell_open+shell_write+shell_read to work -> workspace_sync_push to bring in newer host files ->
workspace_diff to see what changed against the baseline -> workspace_export to copy results to the host ->
workspace_delete when done. A workspace keeps its files between calls until deleted.
No call blocks for more than about 45 s: a command still running after yield_ms comes back with
status "running" and a command_id; continue with command_wait, command_read (output pages) or command_kill.
Large outputs are cut to their head and tail with a marker saying how to read the rest.`

// server holds what the tool handlers share.
type server struct {
	c   *hearth.Client
	log *slog.Logger
}

// NewServer returns an MCP server exposing every operation of ops.All as a
// tool backed by c.
func NewServer(c *hearth.Client, o Options) *sdk.Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SDKLogger == nil {
		o.SDKLogger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	s := sdk.NewServer(&sdk.Implementation{Name: "hearth", Title: "hearth microVM workspaces", Version: o.Version},
		&sdk.ServerOptions{Instructions: instructions, Logger: o.SDKLogger})
	h := &server{c: c, log: o.Logger}
	h.register(s)
	return s
}

// handlerFunc is a tool's body: it returns a short human summary for the
// text content and the typed structured output.
type handlerFunc[In, Out any] func(ctx context.Context, in In) (string, Out, error)

// toolSpec is what a tool adds to its registry entry.
type toolSpec struct {
	// guide tells a model when to use the tool and what to call next.
	guide string
	// args overrides argDocs for this tool's arguments.
	args map[string]string
}

// addTool registers the tool for the registry entry called name. It panics
// when name is not in the registry or a schema cannot be inferred: both are
// programming errors caught by the tests.
func addTool[In, Out any](s *sdk.Server, h *server, name string, spec toolSpec, fn handlerFunc[In, Out]) {
	op, ok := ops.ByName(name)
	if !ok {
		panic(fmt.Sprintf("mcp: tool %q is not in the operation registry", name))
	}
	desc := argDocs
	if len(spec.args) > 0 {
		desc = make(map[string]string, len(argDocs)+len(spec.args))
		for k, v := range argDocs {
			desc[k] = v
		}
		for k, v := range spec.args {
			desc[k] = v
		}
	}
	in, err := schemaFor[In](desc)
	if err != nil {
		panic(fmt.Sprintf("mcp: tool %s: %v", name, err))
	}
	out, err := schemaFor[Out](nil)
	if err != nil {
		panic(fmt.Sprintf("mcp: tool %s: %v", name, err))
	}
	t := &sdk.Tool{
		Name:         op.Name,
		Title:        op.Summary,
		Description:  op.Summary + ". " + spec.guide,
		InputSchema:  in,
		OutputSchema: out,
		Annotations:  annotations(op),
	}
	sdk.AddTool(s, t, wrap(h, name, fn))
}

// annotations maps a registry entry to MCP tool annotations, every hint
// set explicitly (G6): hearth's tools act on local VMs, a closed world.
func annotations(op ops.Op) *sdk.ToolAnnotations {
	return &sdk.ToolAnnotations{
		Title:           op.Summary,
		ReadOnlyHint:    op.ReadOnly,
		DestructiveHint: ptr(op.Destructive),
		IdempotentHint:  op.Idempotent,
		OpenWorldHint:   ptr(false),
	}
}

func ptr[T any](v T) *T { return &v }

// wrap adapts fn to the SDK: it recovers panics (G1), reports progress
// while a call runs, and turns errors into isError results with advice.
func wrap[In, Out any](h *server, name string, fn handlerFunc[In, Out]) sdk.ToolHandlerFor[In, Out] {
	return func(ctx context.Context, req *sdk.CallToolRequest, in In) (res *sdk.CallToolResult, out Out, err error) {
		var zero Out
		start := time.Now()
		p := newProgress(req)
		ctx = withProgress(ctx, p)
		stop := p.tick(ctx, name)
		defer stop()
		defer func() {
			if r := recover(); r != nil {
				h.log.Error("tool panicked", "tool", name, "panic", r, "stack", string(debug.Stack()))
				res, out = nil, zero
				err = fmt.Errorf("internal error in %s (%v): the server keeps running; this is a bug in hearth, so try another way and report it", name, r)
			}
		}()
		text, o, err := fn(ctx, in)
		if err != nil {
			if ctx.Err() != nil {
				h.log.Info("tool cancelled", "tool", name, "err", ctx.Err())
				return nil, zero, ctx.Err()
			}
			h.log.Info("tool failed", "tool", name, "ms", time.Since(start).Milliseconds(), "err", err)
			return nil, zero, toolError(err)
		}
		h.log.Debug("tool done", "tool", name, "ms", time.Since(start).Milliseconds())
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text}}}, o, nil
	}
}

// kindAdvice tells a model what to do after an error of each kind.
var kindAdvice = map[errdefs.Kind]string{
	errdefs.KindNotFound:           "Check the name: workspace_list lists workspaces, shell_list a workspace's shells, workspace_logs its commands.",
	errdefs.KindAlreadyExists:      "Pick another name, or use the existing one.",
	errdefs.KindInvalidArgument:    "Fix the arguments and call again.",
	errdefs.KindFailedPrecondition: "The workspace is not in the state this needs: workspace_show tells its state, and workspace_start boots a stopped one.",
	errdefs.KindConflict:           "Something else is using it right now: wait a moment and try again.",
	errdefs.KindUnavailable:        "The workspace's VM did not answer: check it with workspace_show; workspace_stop then workspace_start restarts it (files persist).",
	errdefs.KindTimeout:            "It took too long: run long commands with workspace_exec (it yields a command_id) and follow up with command_wait.",
	errdefs.KindNotImplemented:     "This version of hearth cannot do that yet.",
	errdefs.KindResourceExhausted:  "The host is short of resources: stop or delete workspaces you no longer need (workspace_stop, workspace_delete) and try again.",
	errdefs.KindInternal:           "Unexpected failure: the hearth server's log (stderr) has details.",
}

// toolError rewrites an SDK error for a model: CLI hints become tool names
// and arguments, and the error's kind and advice are added.
func toolError(err error) error {
	k := errdefs.Classify(err)
	msg := cliToTools(err.Error())
	return fmt.Errorf("%s [%s]. %s", msg, k, kindAdvice[k])
}

// flagWords translate CLI flags in SDK messages into tool arguments.
var flagWords = strings.NewReplacer(
	"pass the command after `--`, e.g. `-- ls -la`", "give argv or command",
	"delete with --force", "delete with force=true",
	"--force", "force=true",
	"--seed ", "seed ",
	"--cpus ", "cpus ",
	"--memory ", "memory_mib ",
	"--disk-size ", "disk_size ",
	"--wait ", "wait_ms ",
	"--cols and --rows", "cols and rows",
	"use --seed at create", "use seed in workspace_create",
)

// cliToTools replaces `hearth <command> ...` hints with the tool that does
// the same, and CLI flags with argument names.
func cliToTools(msg string) string {
	var b strings.Builder
	rest := msg
	for {
		i := strings.Index(rest, "`hearth ")
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i+1:], '`')
		if j < 0 {
			break
		}
		cmd := rest[i+1+len("hearth ") : i+1+j]
		b.WriteString(rest[:i])
		if name, ok := toolForCLI(cmd); ok {
			b.WriteString("the " + name + " tool")
		} else {
			b.WriteString(rest[i : i+2+j])
		}
		rest = rest[i+2+j:]
	}
	b.WriteString(rest)
	return flagWords.Replace(b.String())
}

// toolForCLI finds the operation whose CLI path is the longest prefix of
// cmd ("workspace start ws1" -> workspace_start).
func toolForCLI(cmd string) (string, bool) {
	best, name := 0, ""
	for _, op := range ops.All {
		if (cmd == op.CLI || strings.HasPrefix(cmd, op.CLI+" ")) && len(op.CLI) > best {
			best, name = len(op.CLI), op.Name
		}
	}
	return name, name != ""
}

// progress sends notifications/progress for one call when the client asked
// for them (the request carries a progress token).
type progress struct {
	req   *sdk.CallToolRequest
	token any
	mu    sync.Mutex
	n     float64
}

func newProgress(req *sdk.CallToolRequest) *progress {
	p := &progress{req: req}
	if req != nil && req.Params != nil && req.Session != nil {
		p.token = req.Params.GetProgressToken()
	}
	return p
}

// send reports one step; progress values only grow.
func (p *progress) send(ctx context.Context, msg string) {
	if p == nil || p.token == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	_ = p.req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: p.token, Progress: p.n, Message: msg})
}

// tick reports elapsed time every two seconds until stop is called, so a
// client sees a long call is alive.
func (p *progress) tick(ctx context.Context, what string) (stop func()) {
	if p.token == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				p.send(ctx, fmt.Sprintf("%s: %d s", what, int(time.Since(start).Seconds())))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

type progressKey struct{}

func withProgress(ctx context.Context, p *progress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

// report sends a progress message for the call running in ctx, if any.
func report(ctx context.Context, msg string) {
	p, _ := ctx.Value(progressKey{}).(*progress)
	p.send(ctx, msg)
}

// nonNil returns s, or an empty slice for nil (schemas say "array", G5).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
