package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/testenv"
)

func sdk(t *testing.T) *hearth.Client {
	t.Helper()
	c, err := hearth.New(hearth.WithHome(env.Home), hearth.WithExecutable(env.Bin))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newWorkspace creates a workspace that is deleted when the test ends.
func newWorkspace(t *testing.T, c *hearth.Client, o hearth.CreateOptions) *hearth.Workspace {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 512
	}
	ws, err := c.CreateWorkspace(ctx, o)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		if _, err := ws.Delete(context.Background(), true); err != nil && !errors.Is(err, hearth.ErrNotFound) {
			t.Errorf("delete: %v", err)
		}
	})
	return ws
}

func sh(t *testing.T, ws *hearth.Workspace, script string) *hearth.ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"sh", "-c", script}, Capture: true})
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return r
}

// TestWorkspaceLifecycle: create → exec writes a file → stop → start → the
// file is there; SIGKILL of the VMM → not running → start → file is there;
// delete leaves nothing under HEARTH_HOME.
func TestWorkspaceLifecycle(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: "life-" + fmt.Sprint(time.Now().UnixNano()%100000)})
	info := ws.Info
	if info.State != api.StateRunning || info.PID == 0 || !strings.HasPrefix(info.ID, "ws-") {
		t.Fatalf("new workspace: %+v", info)
	}
	if r := sh(t, ws, "echo persisted > /workspace/p.txt && sync"); r.ExitCode != 0 {
		t.Fatalf("write: %+v", r)
	}
	// Root file system changes persist too (overlay on the workspace disk).
	if r := sh(t, ws, "echo rootchange > /etc/hearth-test && sync"); r.ExitCode != 0 {
		t.Fatalf("write /etc: %+v", r)
	}
	if _, err := ws.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if i, _ := ws.Show(ctx); i.State != api.StateStopped {
		t.Fatalf("after stop: %s", i.State)
	}
	if _, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"true"}}); !errors.Is(err, hearth.ErrFailedPrecondition) || !strings.Contains(err.Error(), "start it first") {
		t.Fatalf("exec on stopped workspace: %v", err)
	}
	if _, err := ws.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r := sh(t, ws, "cat /workspace/p.txt /etc/hearth-test"); r.Stdout != "persisted\nrootchange\n" {
		t.Fatalf("after restart: %q", r.Stdout)
	}
	// Crash: SIGKILL the VMM.
	i, _ := ws.Show(ctx)
	if err := syscall.Kill(i.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		i, _ = ws.Show(ctx)
		if i.State != api.StateRunning || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if i.State == api.StateRunning {
		t.Fatal("killed VMM still reported running")
	}
	if i.LastExit == "" {
		t.Errorf("no exit reason recorded after the crash: %+v", i)
	}
	if _, err := ws.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r := sh(t, ws, "cat /workspace/p.txt"); r.Stdout != "persisted\n" {
		t.Fatalf("after crash: %q", r.Stdout)
	}
	// Delete refuses a running workspace without force, then removes all.
	if _, err := ws.Delete(ctx, false); !errors.Is(err, hearth.ErrFailedPrecondition) {
		t.Fatalf("delete running without force: %v", err)
	}
	before := testenv.VMMCount()
	if _, err := ws.Delete(ctx, true); err != nil {
		t.Fatal(err)
	}
	if testenv.VMMCount() >= before {
		t.Errorf("VMM still running after delete")
	}
	var left []string
	filepath.Walk(env.Home, func(p string, fi os.FileInfo, err error) error {
		if strings.Contains(p, i.ID) {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("files left after delete: %v", left)
	}
}

// TestWorkspaceConcurrentExecAndLogs: eight execs at once, then the log.
func TestWorkspaceConcurrentExecAndLogs(t *testing.T) {
	c := sdk(t)
	ws := newWorkspace(t, c, hearth.CreateOptions{})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	outs := make([]string, 8)
	start := time.Now()
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := ws.Exec(context.Background(), hearth.ExecOptions{Argv: []string{"sh", "-c", fmt.Sprintf("sleep 2; echo %d", i)}, Capture: true})
			if err == nil {
				outs[i] = r.Stdout
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range 8 {
		if errs[i] != nil || outs[i] != fmt.Sprintf("%d\n", i) {
			t.Errorf("exec %d: %q %v", i, outs[i], errs[i])
		}
	}
	// Really concurrent: eight 2 s sleeps take far less than 16 s.
	if el := time.Since(start); el > 12*time.Second {
		t.Errorf("8 concurrent 2 s execs took %s: not concurrent", el)
	}
	sh(t, ws, "exit 3")
	r := env.Hearth(nil, "workspace", "logs", ws.Info.ID, "--json")
	var logs struct{ Commands []api.Command }
	if err := json.Unmarshal(r.Stdout, &logs); err != nil {
		t.Fatalf("logs --json: %v %s", err, r.Stdout)
	}
	if len(logs.Commands) != 9 {
		t.Fatalf("want 9 commands in the log, got %d", len(logs.Commands))
	}
	last := logs.Commands[8]
	if last.ExitCode == nil || *last.ExitCode != 3 || last.Shell != "" || last.Argv[0] != "sh" {
		t.Fatalf("last command: %+v", last)
	}
	// Full output of one command.
	r = env.Hearth(nil, "workspace", "logs", ws.Info.ID, logs.Commands[0].ID)
	if r.Code != 0 || len(r.Stdout) != 2 {
		t.Fatalf("output of %s: %q (%s)", logs.Commands[0].ID, r.Stdout, r.Stderr)
	}
}

// TestWorkspaceCLI drives the CLI surface, including bad input.
func TestWorkspaceCLI(t *testing.T) {
	name := fmt.Sprintf("cli-%d", time.Now().UnixNano()%100000)
	r := env.Hearth(nil, "workspace", "create", "--name", name, "--memory", "512", "--json")
	if r.Code != 0 {
		t.Fatalf("create: %s", r.Stderr)
	}
	var w api.Workspace
	json.Unmarshal(r.Stdout, &w)
	defer env.Hearth(nil, "workspace", "delete", "--force", w.ID)
	for _, k := range []string{"id", "name", "image", "backend", "state", "created_at", "cpus", "memory_mib", "pid"} {
		if !strings.Contains(string(r.Stdout), `"`+k+`"`) {
			t.Errorf("create --json lacks %q", k)
		}
	}
	// exit code propagation, exact bytes, json output.
	if r := env.Hearth(nil, "workspace", "exec", name, "--", "sh", "-c", "printf x; exit 5"); r.Code != 5 || string(r.Stdout) != "x" {
		t.Errorf("exec: code %d out %q", r.Code, r.Stdout)
	}
	r = env.Hearth(nil, "workspace", "exec", name, "--json", "--", "sh", "-c", "printf '\\377'; echo e >&2")
	var res api.ExecResult
	if err := json.Unmarshal(r.Stdout, &res); err != nil || res.StdoutEncoding != "base64" || res.Stdout != "/w==" || res.Stderr != "e\n" || res.CommandID == "" {
		t.Errorf("exec --json: %v %s", err, r.Stdout)
	}
	r = env.Hearth(nil, "workspace", "exec", name, "--json", "--timeout", "1s", "--", "sleep", "30")
	json.Unmarshal(r.Stdout, &res)
	if !res.TimedOut || res.Reason != "timeout" {
		t.Errorf("timeout: %s", r.Stdout)
	}
	bad := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"workspace", "exec", "no-such-ws", "--", "true"}, "no-such-ws", 3},
		{[]string{"workspace", "create", "--name", name}, "already exists", 4},
		{[]string{"workspace", "create", "--name", "Bad Name!"}, "workspace name", 2},
		{[]string{"workspace", "create", "--memory", "1"}, "at least 128", 2},
		{[]string{"workspace", "create", "--disk-size", "lots"}, "disk-size", 2},
		{[]string{"workspace", "delete", name}, "with force", 4},
		{[]string{"workspace", "exec", name}, "--", 2},
		{[]string{"workspace", "exec", name, "--env", "NOEQUALS", "--", "true"}, "KEY=VALUE", 2},
	}
	for _, b := range bad {
		r := env.Hearth(nil, b.args...)
		if r.Code != b.code || !strings.Contains(string(r.Stderr), b.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", b.args, r.Code, b.code, r.Stderr, b.want)
		}
	}
	// Still running and usable after all that.
	if r := env.Hearth(nil, "workspace", "exec", w.ID, "--", "true"); r.Code != 0 {
		t.Errorf("workspace unusable after bad input: %s", r.Stderr)
	}
}
