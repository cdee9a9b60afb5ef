package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ops"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// connect serves a server over in-memory transports (with extra, if set,
// applied to it first) and returns a connected client session.
func connect(t *testing.T, extra func(*sdk.Server, *server)) *sdk.ClientSession {
	t.Helper()
	c, err := hearth.New(hearth.WithHome(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(c, Options{})
	if extra != nil {
		extra(s, &server{c: c, log: testLogger(t)})
	}
	st, ct := sdk.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := s.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "0"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func listTools(t *testing.T, cs *sdk.ClientSession) map[string]*sdk.Tool {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*sdk.Tool{}
	for _, tl := range res.Tools {
		m[tl.Name] = tl
	}
	return m
}

// TestToolsMatchRegistry fails when an operation has no tool, a tool is
// not an operation, or annotations differ from the registry.
func TestToolsMatchRegistry(t *testing.T) {
	tools := listTools(t, connect(t, nil))
	for _, op := range ops.All {
		tl, ok := tools[op.Name]
		if !ok {
			t.Errorf("operation %s has no MCP tool", op.Name)
			continue
		}
		a := tl.Annotations
		if a == nil {
			t.Errorf("%s: no annotations", op.Name)
			continue
		}
		if a.ReadOnlyHint != op.ReadOnly || a.IdempotentHint != op.Idempotent {
			t.Errorf("%s: readOnly=%v idempotent=%v, registry says %v %v", op.Name, a.ReadOnlyHint, a.IdempotentHint, op.ReadOnly, op.Idempotent)
		}
		if a.DestructiveHint == nil || *a.DestructiveHint != op.Destructive {
			t.Errorf("%s: destructiveHint %v, registry says %v (must be set explicitly)", op.Name, a.DestructiveHint, op.Destructive)
		}
		if a.OpenWorldHint == nil || *a.OpenWorldHint {
			t.Errorf("%s: openWorldHint must be set to false explicitly, got %v", op.Name, a.OpenWorldHint)
		}
		if !strings.HasPrefix(tl.Description, op.Summary) || len(tl.Description) < len(op.Summary)+20 {
			t.Errorf("%s: description %q should start with the summary and add guidance", op.Name, tl.Description)
		}
		if tl.OutputSchema == nil {
			t.Errorf("%s: no output schema", op.Name)
		}
	}
	for name := range tools {
		if _, ok := ops.ByName(name); !ok {
			t.Errorf("tool %s is not in the operation registry", name)
		}
	}
	if len(tools) != len(ops.All) {
		t.Errorf("%d tools for %d operations", len(tools), len(ops.All))
	}
}

// TestSchemasPortable checks that no schema uses a nullable array (G5) and
// that every input schema names "workspace" where the operation has one.
func TestSchemasPortable(t *testing.T) {
	for name, tl := range listTools(t, connect(t, nil)) {
		for kind, sch := range map[string]any{"input": tl.InputSchema, "output": tl.OutputSchema} {
			b, _ := json.Marshal(sch)
			if strings.Contains(string(b), `["null","array"]`) {
				t.Errorf("%s %s schema has a nullable array: %s", name, kind, b)
			}
		}
		b, _ := json.Marshal(tl.InputSchema)
		wantWS := name != "run" && name != "workspace_create" && name != "workspace_list" && !strings.HasPrefix(name, "disk_") && !strings.HasPrefix(name, "secret_")
		if got := strings.Contains(string(b), `"workspace"`); got != wantWS {
			t.Errorf("%s: input schema has workspace=%v, want %v: %s", name, got, wantWS, b)
		}
	}
}

func call(t *testing.T, cs *sdk.ClientSession, name string, args any) *sdk.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error: %v", name, err)
	}
	return res
}

func text(r *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// TestBadArguments: unknown, wrong-typed or missing arguments and SDK
// errors come back as isError results with advice, never protocol errors.
func TestBadArguments(t *testing.T) {
	cs := connect(t, nil)
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"workspace_exec", map[string]any{"workspace": "w", "bogus": 1}, "bogus"},
		{"workspace_exec", map[string]any{"workspace": "w", "argv": "ls"}, "argv"},
		{"workspace_exec", map[string]any{"workspace": 7, "command": "ls"}, "workspace"},
		{"workspace_exec", map[string]any{"command": "ls"}, "workspace"},
		{"workspace_exec", map[string]any{"workspace": "w", "yield_ms": "soon"}, "yield_ms"},
		{"shell_read", map[string]any{"workspace": "w", "shell_id": "s", "cursor": "x"}, "cursor"},
		{"workspace_list", map[string]any{"all": true}, "all"},
		{"workspace_show", map[string]any{"workspace": "nope"}, "workspace_list"},
		{"workspace_exec", map[string]any{"workspace": "w", "yield_ms": 60000, "command": "true"}, "not_found"},
		{"command_read", map[string]any{"workspace": "w", "command_id": "c", "limit": 2 << 20}, "argument limit"},
		{"shell_read", map[string]any{"workspace": "w", "shell_id": "s", "wait_ms": 60000}, "maximum 50000"},
		{"workspace_exec", map[string]any{"workspace": "nope", "command": "true"}, "not_found"},
		{"workspace_exec", map[string]any{"workspace": "w", "yield_ms": -1, "command": "true"}, "invalid_argument"},
		{"run", map[string]any{"command": "true", "yield_ms": 100}, "yield_ms"},
		{"workspace_create", map[string]any{"disk_size": "lots"}, "disk_size"},
	} {
		t.Run(fmt.Sprintf("%s %v", tc.tool, tc.args), func(t *testing.T) {
			r := call(t, cs, tc.tool, tc.args)
			if !r.IsError {
				t.Fatalf("want isError, got %s", text(r))
			}
			if !strings.Contains(text(r), tc.want) {
				t.Errorf("error %q does not mention %q", text(r), tc.want)
			}
		})
	}
}

// TestPanicRecovered: a panicking tool gives isError and the server keeps
// answering (G1).
func TestPanicRecovered(t *testing.T) {
	cs := connect(t, func(s *sdk.Server, h *server) {
		op, _ := ops.ByName("workspace_list")
		h.c = nil // Invoke on a nil client panics
		s.AddTool(&sdk.Tool{Name: "boom", InputSchema: map[string]any{"type": "object"}}, h.handler(op))
	})
	r := call(t, cs, "boom", map[string]any{})
	if !r.IsError || !strings.Contains(text(r), "internal error in workspace_list") {
		t.Fatalf("want isError for a panic, got %v %q", r.IsError, text(r))
	}
	r = call(t, cs, "workspace_list", map[string]any{})
	if r.IsError {
		t.Fatalf("server broken after panic: %s", text(r))
	}
}

// TestMCPDefaults: MCP's own defaults are documented in the schema under
// the same argument names.
func TestMCPDefaults(t *testing.T) {
	tools := listTools(t, connect(t, nil))
	for _, op := range ops.All {
		b, _ := json.Marshal(tools[op.Name].InputSchema)
		var sch struct {
			Properties map[string]struct {
				Default     json.RawMessage `json:"default"`
				Description string          `json:"description"`
			} `json:"properties"`
		}
		json.Unmarshal(b, &sch)
		for name, def := range op.MCP {
			p := sch.Properties[name]
			if string(p.Default) != fmt.Sprint(def) || !strings.Contains(p.Description, "MCP default") {
				t.Errorf("%s.%s: schema default %s, description %q; want MCP default %d documented", op.Name, name, p.Default, p.Description, def)
			}
		}
		for _, a := range op.Args() {
			if _, ok := op.MCP[a.Name]; ok || a.Default == "" {
				continue
			}
			if p := sch.Properties[a.Name]; strings.Trim(string(p.Default), `"`) != a.Default {
				t.Errorf("%s.%s: schema default %s, table default %s", op.Name, a.Name, p.Default, a.Default)
			}
		}
	}
}

// TestListsNeverNull: list results are objects with arrays, never null.
func TestListsNeverNull(t *testing.T) {
	cs := connect(t, nil)
	r := call(t, cs, "workspace_list", map[string]any{})
	b, _ := json.Marshal(r.StructuredContent)
	if string(b) != `{"workspaces":[]}` {
		t.Errorf("workspace_list = %s", b)
	}
}

func TestToolError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{fmt.Errorf("workspace w1 is stopped: start it first: %w", errdefs.ErrFailedPrecondition),
			[]string{"start it first", "[failed_precondition]", "workspace_show"}},
		{fmt.Errorf("create: %w", errdefs.Arg("memory_mib", "64 MiB is too small: the guest needs at least 128")),
			[]string{"memory_mib: 64 MiB", "[invalid_argument, argument memory_mib]", "Fix the arguments"}},
		{context.Canceled, []string{"[canceled]"}},
	} {
		got := toolError(tc.err).Error()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("toolError(%q) = %q, missing %q", tc.err, got, w)
			}
		}
	}
}

func TestAnnotationsExplicit(t *testing.T) {
	for _, op := range ops.All {
		a := annotations(op)
		b, _ := json.Marshal(a)
		for _, k := range []string{"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"} {
			if !strings.Contains(string(b), `"`+k+`"`) {
				t.Errorf("%s: %s not set explicitly: %s", op.Name, k, b)
			}
		}
	}
	if !slices.ContainsFunc(ops.All, func(o ops.Op) bool { return o.Destructive }) {
		t.Fatal("registry has no destructive op")
	}
}
