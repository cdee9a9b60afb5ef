package ops_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/ops"
)

func TestTableWellFormed(t *testing.T) {
	seen := map[string]bool{}
	routes := map[string]string{}
	for _, o := range ops.All {
		if seen[o.Name] {
			t.Errorf("duplicate op %s", o.Name)
		}
		seen[o.Name] = true
		if o.Name == "" || o.CLI == "" || o.Go == "" || o.Python == "" || o.Method == "" || o.Path == "" || o.Summary == "" || o.Guide == "" {
			t.Errorf("op %s lacks a surface or its texts", o.Name)
		}
		if o.Request == nil || o.Result == nil {
			t.Errorf("op %s lacks its request or result type", o.Name)
			continue
		}
		if o.ReadOnly && o.Destructive {
			t.Errorf("%s is both read-only and destructive", o.Name)
		}
		route := o.Method + " " + o.Path
		if other, ok := routes[route]; ok {
			t.Errorf("%s and %s share the route %s", o.Name, other, route)
		}
		routes[route] = o.Name
		// Path segments and path fields agree.
		fields := map[string]bool{}
		for _, a := range o.Args() {
			if a.Path {
				fields[a.Name] = true
				if !strings.Contains(o.Path, "{"+a.Name+"}") {
					t.Errorf("%s: path field %s is not in %s", o.Name, a.Name, o.Path)
				}
			}
			if a.Doc == "" {
				t.Errorf("%s: argument %s has no description (ops.ArgDocs)", o.Name, a.Name)
			}
		}
		if n := strings.Count(o.Path, "{"); n != len(fields) {
			t.Errorf("%s: %s has %d segments, the request %d path fields", o.Name, o.Path, n, len(fields))
		}
		for k := range o.MCP {
			if !hasArg(o, k) {
				t.Errorf("%s: MCP default for unknown argument %s", o.Name, k)
			}
		}
	}
}

func hasArg(o ops.Op, name string) bool {
	for _, a := range o.Args() {
		if a.Name == name {
			return true
		}
	}
	return false
}

// TestDefaultsApply: Prepare fills defaults, keeps given values, and
// rejects negative and over-max values naming the argument.
func TestDefaultsApply(t *testing.T) {
	op, _ := ops.ByName("command_read")
	r := &api.CommandReadRequest{Workspace: "w", CommandID: "c"}
	if err := op.Prepare(r, false); err != nil || r.Limit != 65536 || r.Stream != "stdout" {
		t.Fatalf("%v %+v", err, r)
	}
	r = &api.CommandReadRequest{Workspace: "w", CommandID: "c", Limit: 2 << 20}
	if err := op.Prepare(r, false); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("over max: %v", err)
	}
	ex, _ := ops.ByName("workspace_exec")
	e := &api.ExecRequest{Workspace: "w"}
	if err := ex.Prepare(e, true); err != nil || e.YieldMS != ops.MCPYieldMS {
		t.Fatalf("MCP default: %v %+v", err, e)
	}
	e = &api.ExecRequest{Workspace: "w"}
	if err := ex.Prepare(e, false); err != nil || e.YieldMS != 0 {
		t.Fatalf("contract default: %v %+v", err, e)
	}
	e = &api.ExecRequest{Workspace: "w", CommandSpec: api.CommandSpec{TimeoutMS: -5}}
	if err := ex.Prepare(e, false); err == nil || !strings.Contains(err.Error(), "timeout_ms") {
		t.Fatalf("negative: %v", err)
	}
	if err := ex.Prepare(&api.ExecRequest{}, false); err == nil || !strings.Contains(err.Error(), "workspace") {
		t.Fatalf("required: %v", err)
	}
}

// TestGeneratedDocs fails when docs/public-contract.md's table or
// docs/operations.json is not what the table generates.
func TestGeneratedDocs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "public-contract.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, ops.BeginMarker), strings.Index(s, ops.EndMarker)
	if i < 0 || j < i {
		t.Fatal("docs/public-contract.md lacks the ops table markers")
	}
	if got := strings.TrimSpace(s[i+len(ops.BeginMarker) : j]); got != strings.TrimSpace(ops.Table()) {
		t.Fatal("docs/public-contract.md's operation table is stale: run `go run ./internal/ops/gen`")
	}
	j2, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.json"))
	if err != nil || string(j2) != string(ops.Describe()) {
		t.Fatalf("docs/operations.json is stale (%v): run `go run ./internal/ops/gen`", err)
	}
}

// TestGoSDKHasEveryOp fails when the Go SDK lacks an operation's method.
func TestGoSDKHasEveryOp(t *testing.T) {
	types := map[string]reflect.Type{"Client": reflect.TypeOf(&hearth.Client{}), "Workspace": reflect.TypeOf(&hearth.Workspace{})}
	for _, o := range ops.All {
		recv, method, _ := strings.Cut(o.Go, ".")
		typ, ok := types[recv]
		if !ok {
			t.Errorf("%s: unknown receiver %s", o.Name, recv)
			continue
		}
		if _, ok := typ.MethodByName(method); !ok {
			t.Errorf("%s: the Go SDK has no %s", o.Name, o.Go)
		}
	}
}
