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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
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
	// CheckRequest, when set, vets every decoded request before it runs
	// (host path confinement, internal/hostpath); its error is the tool's.
	CheckRequest func(op ops.Op, req any) error
}

// instructions tell a model how the tools fit together.
const instructions = `hearth gives you persistent Linux microVM workspaces (hardware-isolated VMs on this machine).
Typical flow: workspace_create (optionally seed=<host dir> copied into /workspace as the baseline) ->
workspace_exec / shell_open+shell_write+shell_read to work -> workspace_sync_push to bring in newer host files ->
workspace_diff to see what changed against the baseline -> workspace_export to copy results to the host ->
workspace_delete when done. A workspace keeps its files between calls until deleted.
Here workspace_exec waits yield_ms (MCP default 10000) and run's timeout_ms defaults to 40000, so calls stay
short: a command still running after yield_ms comes back with status "running" and a command_id; continue with
command_wait, command_read (output pages) or command_kill. Command output keeps its last 32 KiB here (exact
bytes; stdout_offset says where they start); workspace_diff's max_patch_bytes defaults to 16384 and
max_total_patch_bytes to 65536 here (patch_omitted says what was left out and how to see it).`

// server holds what the tool handlers share.
type server struct {
	c     Invoker
	log   *slog.Logger
	check func(op ops.Op, req any) error
}

// ServerVersion is the version the server reports in its MCP
// implementation info: the contract version as semver, with hearth's
// build version as build metadata ("1.0.0+3.0.0"), so a client sees which
// contract it talks to.
func ServerVersion(build string) string {
	meta := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '.':
			return r
		}
		return '-'
	}, build)
	return api.ContractVersion + ".0+" + meta
}

// Invoker runs an operation of the table by name; *hearth.Client is one.
type Invoker interface {
	Invoke(ctx context.Context, name string, req any, s hearth.Streams) (any, error)
}

// NewServer returns an MCP server exposing every operation of ops.All as a
// tool backed by c (a *hearth.Client).
func NewServer(c Invoker, o Options) *sdk.Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SDKLogger == nil {
		o.SDKLogger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	s := sdk.NewServer(&sdk.Implementation{Name: "hearth", Title: "hearth microVM workspaces", Version: ServerVersion(o.Version)},
		&sdk.ServerOptions{Instructions: instructions, Logger: o.SDKLogger})
	h := &server{c: c, log: o.Logger, check: o.CheckRequest}
	h.register(s)
	return s
}

// register adds one tool per operation of the table.
func (h *server) register(s *sdk.Server) {
	for _, op := range ops.All {
		in, err := inputSchema(op)
		if err != nil {
			panic(fmt.Sprintf("mcp: tool %s: %v", op.Name, err))
		}
		out, err := outputSchema(op)
		if err != nil {
			panic(fmt.Sprintf("mcp: tool %s: %v", op.Name, err))
		}
		t := &sdk.Tool{
			Name:         op.Name,
			Title:        op.Summary,
			Description:  op.Summary + ". " + op.Guide,
			InputSchema:  in,
			OutputSchema: out,
			Annotations:  annotations(op),
		}
		s.AddTool(t, h.handler(op))
	}
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

// handler serves one operation: strict decoding of the arguments into the
// operation's request, MCP's defaults, the call through the Go SDK, the
// result bounded for a model's context, panics recovered (G1), progress
// reported, and errors as isError results with advice.
func (h *server) handler(op ops.Op) sdk.ToolHandler {
	return func(ctx context.Context, req *sdk.CallToolRequest) (res *sdk.CallToolResult, err error) {
		start := time.Now()
		p := newProgress(req)
		ctx = withProgress(ctx, p)
		stop := p.tick(ctx, op.Name)
		defer stop()
		defer func() {
			if r := recover(); r != nil {
				h.log.Error("tool panicked", "tool", op.Name, "panic", r, "stack", string(debug.Stack()))
				res, err = errorResult(fmt.Errorf("internal error in %s (%v): the server keeps running; this is a bug in hearth, so try another way and report it", op.Name, r)), nil
			}
		}()
		in := op.NewRequest()
		var raw json.RawMessage
		if req != nil && req.Params != nil {
			raw = req.Params.Arguments
		}
		if err := decodeArgs(raw, in); err != nil {
			return errorResult(toolError(err)), nil
		}
		if err := op.Prepare(in, true); err != nil {
			return errorResult(toolError(err)), nil
		}
		if h.check != nil {
			if err := h.check(op, in); err != nil {
				return errorResult(toolError(err)), nil
			}
		}
		out, err := h.c.Invoke(ctx, op.Name, in, hearth.Streams{Progress: func(msg string) { report(ctx, msg) }})
		if err != nil {
			if ctx.Err() != nil {
				h.log.Info("tool cancelled", "tool", op.Name, "err", ctx.Err())
				return nil, ctx.Err()
			}
			h.log.Info("tool failed", "tool", op.Name, "ms", time.Since(start).Milliseconds(), "err", err)
			return errorResult(toolError(err)), nil
		}
		switch r := out.(type) {
		case *api.ExecResult:
			boundExec(r)
		}
		text := fmt.Sprintf("%s done.", op.Name)
		if f, ok := summarize[op.Name]; ok {
			text = f(out)
		}
		h.log.Debug("tool done", "tool", op.Name, "ms", time.Since(start).Milliseconds())
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text}}, StructuredContent: out}, nil
	}
}

// decodeArgs decodes tool arguments strictly: unknown arguments and wrong
// types are errors naming the argument.
func decodeArgs(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errdefs.Arg(te.Field, "want %s, got JSON %s", te.Type, te.Value)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return errdefs.Arg(strings.Trim(f, `"`), "is not an argument of this tool (see its input schema)")
		}
		return fmt.Errorf("arguments are not a valid JSON object: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return nil
}

func errorResult(err error) *sdk.CallToolResult {
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: err.Error()}}}
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
	errdefs.KindCanceled:           "The call was cancelled before it finished.",
	errdefs.KindInternal:           "Unexpected failure: the hearth server's log (stderr) has details.",
}

// toolError adds the error's kind, the argument it blames, and advice
// for a model.
func toolError(err error) error {
	k := errdefs.Classify(err)
	msg := err.Error()
	if a := errdefs.ArgOf(err); a != "" {
		return fmt.Errorf("%s [%s, argument %s]. %s", msg, k, a, kindAdvice[k])
	}
	return fmt.Errorf("%s [%s]. %s", msg, k, kindAdvice[k])
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
