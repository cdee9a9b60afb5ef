package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/ops"
	"github.com/hearthvm/hearth/internal/testenv"
	mcpsdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestExamples runs every example under examples/ the way its header
// says to, against real VMs: the Go and Python walkthroughs end to end,
// and each MCP host configuration by starting the server it names and
// listing its tools with a real MCP client.
func TestExamples(t *testing.T) {
	root := testenv.RepoRoot()
	base := append(os.Environ(), "HEARTH_HOME="+env.Home, "HEARTH_BIN="+env.Bin, "HEARTH_AGENT="+env.Agent)

	t.Run("go", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "run", "./examples/go")
		cmd.Dir = root
		cmd.Env = base
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go run ./examples/go: %v\n%s", err, out)
		}
		for _, want := range []string{"1. created", "deleted"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("python", func(t *testing.T) {
		// The example finds the server on the default socket; serve one
		// there (under a private XDG_RUNTIME_DIR) so none outlives the test.
		run := t.TempDir()
		sock := filepath.Join(run, "hearth", "hearth.sock")
		srv := exec.Command(env.Bin, "serve", "--socket", sock, "--allow-path", os.TempDir())
		srv.Env = base
		startLogged(t, srv, "listening")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "python3", "examples/python/demo.py")
		cmd.Dir = root
		cmd.Env = append(base, "PYTHONPATH="+filepath.Join(root, "python"), "XDG_RUNTIME_DIR="+run)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("examples/python/demo.py: %v\n%s", err, out)
		}
		for _, want := range []string{"exec: exit 0", "diff: modified hello.txt", "export: 1 file(s)", "gone:"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("mcp", func(t *testing.T) {
		var files []string
		filepath.WalkDir(filepath.Join(root, "examples", "mcp"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
				files = append(files, p)
			}
			return nil
		})
		if len(files) < 5 {
			t.Fatalf("found %d MCP configurations: %v", len(files), files)
		}
		allowed := t.TempDir()
		for _, f := range files {
			rel, _ := filepath.Rel(root, f)
			t.Run(rel, func(t *testing.T) {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				var cfg struct {
					MCPServers map[string]mcpEntry `json:"mcpServers"`
					Servers    map[string]mcpEntry `json:"servers"`
				}
				if err := json.Unmarshal(b, &cfg); err != nil {
					t.Fatalf("not JSON: %v", err)
				}
				entries := cfg.MCPServers
				if entries == nil {
					entries = cfg.Servers
				}
				e, ok := entries["hearth"]
				if !ok {
					t.Fatalf("no \"hearth\" server in %s", rel)
				}
				checkMCPEntry(t, e, allowed, base)
			})
		}
	})
}

type mcpEntry struct {
	Type    string            `json:"type"`
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
}

// checkMCPEntry starts the server a host configuration describes and
// lists its tools.
func checkMCPEntry(t *testing.T, e mcpEntry, allowed string, environ []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var transport mcpsdk.Transport
	switch {
	case e.Type == "http":
		if !strings.HasPrefix(e.URL, "http://127.0.0.1:") || !strings.HasSuffix(e.URL, "/mcp") || !strings.HasPrefix(e.Headers["Authorization"], "Bearer ") {
			t.Fatalf("http entry: url %q, headers %v", e.URL, e.Headers)
		}
		port := freeHostPort(t)
		home := t.TempDir()
		srv := exec.Command(env.Bin, "mcp", "serve", "--http", fmt.Sprintf("127.0.0.1:%d", port), "--allow-path", allowed)
		srv.Env = append(environ, "HEARTH_HOME="+home, "HEARTH_TOKEN=")
		startLogged(t, srv, fmt.Sprintf("127.0.0.1:%d/mcp", port))
		token, err := os.ReadFile(filepath.Join(home, "mcp-token"))
		if err != nil {
			t.Fatalf("the token the configuration asks for: %v", err)
		}
		transport = &mcpsdk.StreamableClientTransport{
			Endpoint:   fmt.Sprintf("http://127.0.0.1:%d/mcp", port),
			HTTPClient: &http.Client{Transport: bearer{strings.TrimSpace(string(token))}},
		}
	default:
		if e.Command != "hearth" || len(e.Args) < 2 || e.Args[0] != "mcp" || e.Args[1] != "serve" {
			t.Fatalf("stdio entry runs %q %v, want hearth mcp serve", e.Command, e.Args)
		}
		args := make([]string, len(e.Args))
		for i, a := range e.Args {
			args[i] = strings.ReplaceAll(a, "/home/you/projects", allowed)
		}
		cmd := exec.Command(env.Bin, args...)
		cmd.Env = environ
		transport = &mcpsdk.CommandTransport{Command: cmd}
	}
	cs, err := mcpsdk.NewClient(&mcpsdk.Implementation{Name: "examples-test", Version: "1.0.0"}, nil).Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	if len(tools.Tools) != len(ops.All) {
		t.Fatalf("tools/list: %d tools, want %d", len(tools.Tools), len(ops.All))
	}
	res, err := cs.CallTool(ctx, &mcpsdk.CallToolParams{Name: "workspace_list", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("workspace_list: %v %+v", err, res)
	}
}

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// startLogged starts a server and returns once its log (stderr) has a
// line containing ready: servers log where they listen once they do. The
// server is killed when the test ends.
func startLogged(t *testing.T, cmd *exec.Cmd, ready string) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	timeout := time.After(time.Minute)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s exited before it was ready; its log:\n%s", cmd.Path, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if strings.Contains(l, ready) {
				return
			}
		case <-timeout:
			t.Fatalf("%s not ready within a minute; its log:\n%s", cmd.Path, strings.Join(seen, "\n"))
		}
	}
}
