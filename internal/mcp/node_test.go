package mcp

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/ops"
	"github.com/hearthvm/hearth/internal/testenv"
)

// TestNodeClient runs test/mcp/client.mjs: the official MCP TypeScript SDK
// client drives `hearth mcp serve` over stdio through the whole workflow on
// a real microVM, checking every structuredContent against its
// outputSchema. It installs the pinned client (npm ci) when missing.
func TestNodeClient(t *testing.T) {
	if testing.Short() {
		t.Skip("real-VM test (make test runs it)")
	}
	env, err := testenv.Get()
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the MCP acceptance client: %v", err)
	}
	dir := filepath.Join(testenv.RepoRoot(), "test", "mcp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		npm := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		npm.Dir = dir
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	var want []map[string]any
	for _, o := range ops.All {
		want = append(want, map[string]any{"name": o.Name, "readOnly": o.ReadOnly, "destructive": o.Destructive, "idempotent": o.Idempotent})
	}
	b, _ := json.Marshal(want)
	cmd := exec.CommandContext(ctx, node, "client.mjs")
	cmd.Dir = dir
	cmd.Env = append(env.Environ(), "HEARTH_MCP_EXPECT="+string(b))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node client.mjs: %v\n%s", err, out)
	}
	t.Logf("node client.mjs:\n%s", out)
}
