package httpapi

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/testenv"
)

// startServe runs `hearth serve` on a temporary socket and returns a remote
// client once /v1/health answers.
func startServe(t *testing.T, e *testenv.Env, allow ...string) *hearth.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hearth.sock")
	args := []string{"serve", "--socket", sock}
	for _, a := range allow {
		args = append(args, "--allow-path", a)
	}
	cmd := exec.Command(e.Bin, args...)
	cmd.Env = e.Environ()
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("socket left behind after shutdown")
		}
	})
	c, err := hearth.New(hearth.WithRemote("unix://"+sock, ""))
	if err != nil {
		t.Fatal(err)
	}
	for d := 5 * time.Millisecond; ; d = min(2*d, 200*time.Millisecond) {
		if _, err := c.ListWorkspaces(context.Background()); err == nil {
			return c
		}
		select {
		case err := <-exited:
			t.Fatalf("hearth serve exited: %v\n%s", err, logs.String())
		case <-time.After(d):
		}
	}
}

// TestRemoteWorkflow drives create -> exec (plain, streamed) -> sync push
// -> diff -> export -> delete through the remote Go SDK on a real VM and
// checks the results equal the local SDK's.
func TestRemoteWorkflow(t *testing.T) {
	if testing.Short() {
		t.Skip("real VM")
	}
	e, err := testenv.Get()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	rc := startServe(t, e, dir)
	lc, err := hearth.New(hearth.WithHome(e.Home), hearth.WithExecutable(e.Bin))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("one\n"), 0o644)
	name := "remote-wf"
	rw, err := rc.CreateWorkspace(ctx, hearth.CreateOptions{Name: name, Seed: src})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Workspace(name).Delete(context.Background(), true)
	lw := lc.Workspace(name)
	linfo, err := lw.Show(ctx)
	if err != nil || !reflect.DeepEqual(*linfo, rw.Info) {
		t.Fatalf("remote create info %+v != local show %+v (%v)", rw.Info, linfo, err)
	}

	exec := hearth.ExecOptions{Shell: "cd /workspace && echo two >> a.txt && mkdir -p out && printf 'x\\377' > out/b.bin && echo done && echo warn >&2", Capture: true}
	rr, err := rw.Exec(ctx, exec)
	if err != nil || rr.ExitCode != 0 || rr.Stdout != "done\n" || rr.Stderr != "warn\n" {
		t.Fatalf("remote exec: %v %+v", err, rr)
	}
	var so, se bytes.Buffer
	streamed, err := rw.Exec(ctx, hearth.ExecOptions{Argv: []string{"sh", "-c", "echo s1; echo e1 >&2; exit 4"}, Stdout: &so, Stderr: &se, Capture: true})
	if err != nil || streamed.ExitCode != 4 || so.String() != "s1\n" || se.String() != "e1\n" || streamed.Stdout != "s1\n" {
		t.Fatalf("remote streamed exec: %v %+v %q %q", err, streamed, so.String(), se.String())
	}
	lr, err := lw.Exec(ctx, hearth.ExecOptions{Argv: []string{"sh", "-c", "echo s1; echo e1 >&2; exit 4"}, Capture: true})
	if err != nil || lr.ExitCode != streamed.ExitCode || lr.Stdout != streamed.Stdout || lr.Stderr != streamed.Stderr || lr.Reason != streamed.Reason {
		t.Fatalf("local exec %+v != remote %+v (%v)", lr, streamed, err)
	}

	os.WriteFile(filepath.Join(src, "c.txt"), []byte("pushed\n"), 0o644)
	sr, err := rw.SyncPush(ctx, src, hearth.SyncOptions{})
	if err != nil || sr.Sent < 1 {
		t.Fatalf("sync push: %v %+v", err, sr)
	}
	rd, err := rw.Diff(ctx, hearth.DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ld, err := lw.Diff(ctx, hearth.DiffOptions{})
	if err != nil || !reflect.DeepEqual(rd, ld) {
		t.Fatalf("remote diff %+v != local %+v (%v)", rd, ld, err)
	}
	paths := map[string]string{}
	for _, f := range rd.Files {
		paths[f.Path] = string(f.Status)
	}
	if paths["c.txt"] != "added" || paths["out/b.bin"] != "added" {
		t.Fatalf("diff %+v", rd.Files)
	}
	rdq, err := rw.Diff(ctx, hearth.DiffOptions{Paths: []string{"c.txt"}, NoPatch: true})
	ldq, _ := lw.Diff(ctx, hearth.DiffOptions{Paths: []string{"c.txt"}, NoPatch: true})
	if err != nil || !reflect.DeepEqual(rdq, ldq) || len(rdq.Files) != 1 {
		t.Fatalf("remote diff with paths %+v != local %+v (%v)", rdq, ldq, err)
	}
	rx, err := rw.Export(ctx, "/workspace/out", filepath.Join(dir, "rout"), hearth.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lx, err := lw.Export(ctx, "/workspace/out", filepath.Join(dir, "lout"), hearth.ExportOptions{})
	if err != nil || rx.Files != lx.Files || rx.Bytes != lx.Bytes {
		t.Fatalf("remote export %+v != local %+v (%v)", rx, lx, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "rout", "b.bin")); err != nil || string(b) != "x\xff" {
		t.Fatalf("exported %q %v", b, err)
	}
	// Host paths outside --allow-path: refused, nothing written; a symlink
	// inside the allowed root that points out is no way around it.
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(dir, "link-out"))
	for _, dest := range []string{filepath.Join(outside, "x"), filepath.Join(dir, "link-out", "y"), filepath.Join(dir, "..", filepath.Base(outside), "z")} {
		if _, err := rw.Export(ctx, "/workspace/out", dest, hearth.ExportOptions{}); !errors.Is(err, hearth.ErrInvalidArgument) || !strings.Contains(err.Error(), "--allow-path") {
			t.Fatalf("export to %s outside the allowed root: %v", dest, err)
		}
	}
	if _, err := rw.SyncPush(ctx, outside, hearth.SyncOptions{}); !errors.Is(err, hearth.ErrInvalidArgument) {
		t.Fatalf("sync push from outside the allowed root: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("refused exports wrote %v", ents)
	}
	rl, err := rw.Logs(ctx, hearth.LogsOptions{})
	ll, _ := lw.Logs(ctx, hearth.LogsOptions{})
	if err != nil || !reflect.DeepEqual(rl, ll) || len(rl) != 3 {
		t.Fatalf("remote logs %+v != local %+v (%v)", rl, ll, err)
	}
	if _, err := rc.Workspace("no-such").Show(ctx); !errors.Is(err, hearth.ErrNotFound) {
		t.Fatalf("unknown workspace: %v", err)
	}
	if _, err := rw.Delete(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := lw.Show(ctx); !errors.Is(err, hearth.ErrNotFound) {
		t.Fatalf("after remote delete, local show: %v", err)
	}
}
