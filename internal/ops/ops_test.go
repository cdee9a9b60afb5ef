package ops

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hearthvm/hearth"
)

func TestRegistryWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range All {
		if seen[o.Name] {
			t.Errorf("duplicate op %s", o.Name)
		}
		seen[o.Name] = true
		if o.Name == "" || o.CLI == "" || o.Go == "" || o.Python == "" || o.HTTP == "" || o.Summary == "" {
			t.Errorf("op %+v lacks a surface", o)
		}
		if o.ReadOnly && o.Destructive {
			t.Errorf("%s is both read-only and destructive", o.Name)
		}
	}
}

// TestContractDocTable fails when docs/public-contract.md's table is not
// what the registry generates (run `go run ./internal/ops/gen`).
func TestContractDocTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "public-contract.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, BeginMarker), strings.Index(s, EndMarker)
	if i < 0 || j < i {
		t.Fatal("docs/public-contract.md lacks the ops table markers")
	}
	if got := strings.TrimSpace(s[i+len(BeginMarker) : j]); got != strings.TrimSpace(Table()) {
		t.Fatal("docs/public-contract.md's operation table is stale: run `go run ./internal/ops/gen`")
	}
}

// TestGoSDKHasEveryOp fails when the Go SDK lacks an operation's method.
func TestGoSDKHasEveryOp(t *testing.T) {
	types := map[string]reflect.Type{"Client": reflect.TypeOf(&hearth.Client{}), "Workspace": reflect.TypeOf(&hearth.Workspace{})}
	for _, o := range All {
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
