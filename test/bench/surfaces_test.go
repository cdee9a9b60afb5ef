package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/testenv"
)

const surfaceCalls = 30

// BenchmarkSurfaces prints the per-call time of workspace_exec of `true`
// through the MCP server (stdio JSON-RPC) and the Python SDK (over `hearth
// serve`), against the same call through the Go SDK in-process, as ratios,
// all on one workspace in one run.
func BenchmarkSurfaces(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	c := client(b, e)
	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{MemoryMiB: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Delete(ctx, true)
	id := ws.Info.ID

	goPer := timeCalls(b, func() error {
		_, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"true"}})
		return err
	})
	mcpPer := mcpCalls(b, e, id)
	pyPer := pythonCalls(b, e, id)
	fmt.Printf("\nper-call workspace_exec of true (%d calls each, one workspace):\n  Go SDK in-process  %v\n  MCP (stdio)        %v  ratio %.2f\n  Python SDK (HTTP)  %v  ratio %.2f\n",
		surfaceCalls, goPer.Round(time.Microsecond), mcpPer.Round(time.Microsecond), float64(mcpPer)/float64(goPer),
		pyPer.Round(time.Microsecond), float64(pyPer)/float64(goPer))
	b.ReportMetric(float64(mcpPer)/float64(goPer), "mcp/go")
	b.ReportMetric(float64(pyPer)/float64(goPer), "python/go")
}

func timeCalls(b *testing.B, call func() error) time.Duration {
	if err := call(); err != nil { // warm up
		b.Fatal(err)
	}
	start := time.Now()
	for range surfaceCalls {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start) / surfaceCalls
}

// mcpCalls speaks JSON-RPC to `hearth mcp serve` over stdio.
func mcpCalls(b *testing.B, e *testenv.Env, ws string) time.Duration {
	cmd := exec.Command(e.Bin, "mcp", "serve")
	cmd.Env = e.Environ()
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() }()
	rd := bufio.NewReader(stdout)
	id := 0
	rpc := func(method string, params any, notify bool) error {
		msg := map[string]any{"jsonrpc": "2.0", "method": method, "params": params}
		if !notify {
			id++
			msg["id"] = id
		}
		line, _ := json.Marshal(msg)
		if _, err := stdin.Write(append(line, '\n')); err != nil {
			return err
		}
		if notify {
			return nil
		}
		for {
			l, err := rd.ReadBytes('\n')
			if err != nil {
				return err
			}
			var r struct {
				ID     *int            `json:"id"`
				Error  json.RawMessage `json:"error"`
				Result struct {
					IsError bool `json:"isError"`
				} `json:"result"`
			}
			json.Unmarshal(l, &r)
			if r.ID == nil || *r.ID != id {
				continue // a notification
			}
			if r.Error != nil || r.Result.IsError {
				return fmt.Errorf("%s: %s", method, l)
			}
			return nil
		}
	}
	if err := rpc("initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "bench", "version": "0"}}, false); err != nil {
		b.Fatal(err)
	}
	rpc("notifications/initialized", map[string]any{}, true)
	return timeCalls(b, func() error {
		return rpc("tools/call", map[string]any{"name": "workspace_exec", "arguments": map[string]any{"workspace": ws, "argv": []string{"true"}}}, false)
	})
}

// pythonCalls starts `hearth serve` on a temporary socket and times the
// Python SDK's calls in a Python process.
func pythonCalls(b *testing.B, e *testenv.Env, ws string) time.Duration {
	sock := filepath.Join(b.TempDir(), "h.sock")
	srv := exec.Command(e.Bin, "serve", "--socket", sock)
	srv.Env = e.Environ()
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get("http://hearth/v1/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("hearth serve did not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	script := fmt.Sprintf(`
import time, hearth
c = hearth.Client(socket=%q, autostart=False)
w = c.workspace(%q)
w.exec(["true"])
t = time.perf_counter()
for _ in range(%d):
    w.exec(["true"])
print(int((time.perf_counter() - t) / %d * 1e9))
`, sock, ws, surfaceCalls, surfaceCalls)
	py := exec.Command("python3", "-c", script)
	py.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(testenv.RepoRoot(), "python"))
	out, err := py.CombinedOutput()
	if err != nil {
		b.Fatalf("python: %v\n%s", err, out)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatalf("python output %q", out)
	}
	return time.Duration(ns)
}
