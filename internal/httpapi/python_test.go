package httpapi

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/ops"
	"github.com/hearthvm/hearth/internal/testenv"
)

// TestPythonMethods: every ops.All[*].Python method exists in the Python
// package.
func TestPythonMethods(t *testing.T) {
	script := `import json, inspect, hearth
print(json.dumps({c: [n for n, _ in inspect.getmembers(getattr(hearth, c), inspect.isfunction)] for c in ("Client", "Workspace")}))`
	cmd := exec.Command("python3", "-c", script)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(testenv.RepoRoot(), "python"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var have map[string][]string
	if err := json.Unmarshal(out, &have); err != nil {
		t.Fatal(err)
	}
	for _, o := range ops.All {
		cls, m, _ := strings.Cut(o.Python, ".")
		found := false
		for _, n := range have[cls] {
			found = found || n == m
		}
		if !found {
			t.Errorf("python: %s (operation %s) is missing", o.Python, o.Name)
		}
	}
}

// TestPython runs the Python SDK's unittest suite; outside -short it
// includes the end-to-end workflow on a real VM.
func TestPython(t *testing.T) {
	cmd := exec.Command("python3", "-m", "unittest", "discover", "-v", "-s", filepath.Join(testenv.RepoRoot(), "python", "tests"))
	cmd.Env = os.Environ()
	if testing.Short() {
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "HEARTH_BIN=") {
				env = append(env, kv)
			}
		}
		cmd.Env = env
	} else {
		e, err := testenv.Get()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = e.Environ()
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python tests: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
