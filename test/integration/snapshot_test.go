package integration

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
)

// out runs a script and returns its trimmed stdout, failing on a non-zero exit.
func out(t *testing.T, ws *hearth.Workspace, script string) string {
	t.Helper()
	r := sh(t, ws, script)
	if r.ExitCode != 0 {
		t.Fatalf("%q: exit %d: %s%s", script, r.ExitCode, r.Stdout, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

func reset(t *testing.T, ws *hearth.Workspace, o hearth.ResetOptions) *hearth.WorkspaceInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	w, err := ws.Reset(ctx, o)
	if err != nil {
		t.Fatalf("reset %+v: %v", o, err)
	}
	return w
}

func snapshot(t *testing.T, ws *hearth.Workspace, name string) *hearth.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := ws.SnapshotCreate(ctx, name)
	if err != nil {
		t.Fatalf("snapshot %s: %v", name, err)
	}
	return s
}

// TestSnapshotReset: files in and out of /workspace come back with a
// reset, five write → snapshot → reset cycles hold, reset to baseline
// empties /workspace, and the log and the diff baseline survive resets.
func TestSnapshotReset(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: uniq("snap")})
	out(t, ws, `echo one > /workspace/a && echo etc-one > /etc/hearth-snap && head -c 3000000 /dev/urandom > /workspace/blob && cd /workspace && sha256sum blob > blob.sum`)
	s1 := snapshot(t, ws, "s1")
	if !s1.Running || s1.Kind != api.SnapshotDisk || s1.SizeBytes > 256<<20 {
		t.Fatalf("snapshot %+v", s1)
	}
	out(t, ws, `rm /workspace/a /workspace/blob && echo two > /workspace/b && echo etc-two > /etc/hearth-snap && rm /etc/debian_version`)
	w := reset(t, ws, hearth.ResetOptions{To: "s1"})
	if w.State != api.StateRunning || w.Parent != "s1" {
		t.Fatalf("after reset: %+v", w)
	}
	got := out(t, ws, `cat /workspace/a /etc/hearth-snap; [ -e /workspace/b ] && echo b-still-there; [ -s /etc/debian_version ] && echo image-file-back; cd /workspace && sha256sum -c blob.sum >/dev/null && echo blob-ok`)
	if want := "one\netc-one\nimage-file-back\nblob-ok"; got != want {
		t.Fatalf("after reset to s1 the guest shows %q, want %q", got, want)
	}
	// The diff still compares against the create-time baseline (empty).
	d, err := ws.Diff(ctx, hearth.DiffOptions{NoPatch: true})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range d.Files {
		paths = append(paths, f.Path+":"+string(f.Status))
	}
	if strings.Join(paths, " ") != "a:added blob:added blob.sum:added" {
		t.Fatalf("diff after reset: %v", paths)
	}
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("c%d", i)
		out(t, ws, fmt.Sprintf(`echo cycle-%d > /workspace/c && echo %d > /etc/cyc`, i, i))
		snapshot(t, ws, name)
		out(t, ws, fmt.Sprintf(`echo junk > /workspace/c && rm /etc/cyc && touch /workspace/junk-%d`, i))
		reset(t, ws, hearth.ResetOptions{To: name})
		got := out(t, ws, `cat /workspace/c /etc/cyc; ls /workspace | grep junk || true`)
		if want := fmt.Sprintf("cycle-%d\n%d", i, i); got != want {
			t.Fatalf("cycle %d: guest shows %q, want %q", i, got, want)
		}
	}
	l, err := ws.SnapshotList(ctx)
	if err != nil || len(l.Snapshots) != 7 || l.Snapshots[0].Name != "baseline" {
		t.Fatalf("list: %+v %v", l, err)
	}
	reset(t, ws, hearth.ResetOptions{To: "baseline"})
	if got := out(t, ws, `ls -A /workspace; cat /etc/hearth-snap /etc/cyc 2>/dev/null; true`); got != "" {
		t.Fatalf("after reset to baseline: %q", got)
	}
	// The command log is kept, with an entry per reset.
	cmds, err := ws.Logs(ctx, hearth.LogsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resets := 0
	for _, cm := range cmds {
		if strings.HasPrefix(cm.Shell, "# hearth: reset to snapshot") {
			resets++
		}
	}
	if resets != 7 || len(cmds) < 7+12 {
		t.Fatalf("command log has %d entries, %d resets", len(cmds), resets)
	}
}

// TestSnapshotWhileWriting: a snapshot taken while a command writes
// continuously is a consistent file system, the command keeps running
// across it, and a reset refuses while it runs unless forced.
func TestSnapshotWhileWriting(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: uniq("snapw")})
	r, err := ws.Exec(ctx, hearth.ExecOptions{Detach: true, Argv: []string{"sh", "-c",
		`i=0; while :; do i=$((i+1)); head -c 65536 /dev/urandom > /workspace/w.$((i % 40)); echo $i > /var/tmp/count; mkdir -p /workspace/d$((i % 7)); done`}})
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n, _ := strconv.Atoi(out(t, ws, `cat /var/tmp/count 2>/dev/null || echo 0`))
		return n
	}
	deadline := time.Now().Add(time.Minute)
	for count() < 20 {
		if time.Now().After(deadline) {
			t.Fatal("the writer made no progress")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, name := range []string{"w1", "w2"} {
		s := snapshot(t, ws, name)
		disk := filepath.Join(env.Home, "workspaces", ws.Info.ID, "snapshots", name, "disk.ext4")
		fsck, err := exec.Command("e2fsck", "-fn", disk).CombinedOutput()
		if err != nil {
			t.Fatalf("e2fsck -fn of snapshot %s (frozen %d ms): %v\n%s", name, s.FrozenMS, err, fsck)
		}
	}
	// The writer kept running across the snapshots.
	before := count()
	wr, err := ws.CommandWait(ctx, r.CommandID, time.Millisecond)
	if err != nil || wr.Status != api.StatusRunning {
		t.Fatalf("writer after snapshots: %+v %v", wr, err)
	}
	deadline = time.Now().Add(time.Minute)
	for count() <= before {
		if time.Now().After(deadline) {
			t.Fatal("the writer stopped making progress after the snapshots")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Reset refuses while it runs, naming it, and changes nothing.
	_, err = ws.Reset(ctx, hearth.ResetOptions{To: "w1"})
	if !errors.Is(err, hearth.ErrFailedPrecondition) || !strings.Contains(err.Error(), r.CommandID) || !strings.Contains(err.Error(), "force") {
		t.Fatalf("reset while a command runs: %v", err)
	}
	if wr, _ := ws.CommandWait(ctx, r.CommandID, time.Millisecond); wr == nil || wr.Status != api.StatusRunning {
		t.Fatalf("a refused reset ended the command: %+v", wr)
	}
	// With force it goes ahead; the command ends.
	reset(t, ws, hearth.ResetOptions{To: "w1", Force: true})
	wr, err = ws.CommandWait(ctx, r.CommandID, time.Millisecond)
	if err != nil || wr.Status == api.StatusRunning {
		t.Fatalf("writer after a forced reset: %+v %v", wr, err)
	}
	if n := count(); n <= 0 {
		t.Fatalf("after reset the count file says %d", n)
	}
}

// TestFork: forks from a snapshot and from the disk now have the
// snapshot's files and their own identity; the diff baseline is the
// parent's unless rebaselined; a snapshot of another workspace is refused.
func TestFork(t *testing.T) {
	c := sdk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	parent := newWorkspace(t, c, hearth.CreateOptions{Name: uniq("fkp")})
	out(t, parent, `echo from-parent > /workspace/p`)
	snapshot(t, parent, "s1")
	out(t, parent, `echo later > /workspace/after`)
	pid := out(t, parent, `cat /etc/machine-id`)
	cleanup := func(ws []*hearth.Workspace) {
		for _, w := range ws {
			t.Cleanup(func() { w.Delete(context.Background(), true) })
		}
	}
	xname := uniq("fkx")
	xs, err := parent.Fork(ctx, hearth.ForkOptions{Name: xname, From: "s1"})
	cleanup(xs)
	if err != nil || len(xs) != 1 {
		t.Fatalf("fork --from s1: %v", err)
	}
	x := xs[0]
	if x.Info.ID == parent.Info.ID || x.Info.State != api.StateRunning || !strings.HasSuffix(x.Info.Parent, "/s1") {
		t.Fatalf("fork: %+v", x.Info)
	}
	got := out(t, x, `cat /workspace/p; [ -e /workspace/after ] && echo after-too; hostname; cat /etc/machine-id`)
	lines := strings.Split(got, "\n")
	if len(lines) != 3 || lines[0] != "from-parent" || lines[1] != xname || lines[2] == pid || len(lines[2]) != 32 {
		t.Fatalf("fork shows %q (parent machine-id %s)", got, pid)
	}
	d, err := x.Diff(ctx, hearth.DiffOptions{NoPatch: true})
	if err != nil || len(d.Files) != 1 || d.Files[0].Path != "p" {
		t.Fatalf("fork's diff against its parent's baseline: %+v %v", d, err)
	}
	// Two forks of the disk now, each with its own baseline.
	yname := uniq("fky")
	ys, err := parent.Fork(ctx, hearth.ForkOptions{Name: yname, Count: 2, Rebaseline: true})
	cleanup(ys)
	if err != nil || len(ys) != 2 || ys[0].Info.Name != yname+"-1" || ys[1].Info.Name != yname+"-2" {
		t.Fatalf("fork --count 2: %v %v", ys, err)
	}
	ids := map[string]string{pid: parent.Info.Name, lines[2]: xname}
	for _, y := range ys {
		got := out(t, y, `cat /workspace/after; cat /etc/machine-id`)
		f := strings.Split(got, "\n")
		if len(f) != 2 || f[0] != "later" {
			t.Fatalf("%s shows %q", y.Info.Name, got)
		}
		if o, dup := ids[f[1]]; dup {
			t.Fatalf("%s has the machine-id of %s", y.Info.Name, o)
		}
		ids[f[1]] = y.Info.Name
		d, err := y.Diff(ctx, hearth.DiffOptions{NoPatch: true})
		if err != nil || len(d.Files) != 0 {
			t.Fatalf("a rebaselined fork's diff: %+v %v", d, err)
		}
	}
	// The parent's snapshot is not the fork's.
	res := env.Hearth(nil, "workspace", "reset", xname, "--to", "s1")
	if res.Code == 0 || !strings.Contains(string(res.Stderr), parent.Info.Name) {
		t.Fatalf("reset of a fork to its parent's snapshot: exit %d: %s", res.Code, res.Stderr)
	}
	res = env.Hearth(nil, "workspace", "snapshot", "create", parent.Info.Name, "s1")
	if res.Code == 0 || !strings.Contains(string(res.Stderr), "already has a snapshot") {
		t.Fatalf("duplicate snapshot: exit %d: %s", res.Code, res.Stderr)
	}
	// The fork's baseline is its parent's: a reset to it empties /workspace.
	reset(t, x, hearth.ResetOptions{To: "baseline"})
	if got := out(t, x, `ls -A /workspace`); got != "" {
		t.Fatalf("fork after reset to baseline: %q", got)
	}
	// Deleting the parent leaves its forks whole.
	if _, err := parent.Delete(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := out(t, ys[0], `cat /workspace/p`); got != "from-parent" {
		t.Fatalf("fork after its parent's delete: %q", got)
	}
}

// killAfter starts the hearth CLI with args and SIGKILLs it after d (if
// it is still running); it reports whether the kill came before the end.
func killAfter(t *testing.T, d time.Duration, args ...string) bool {
	t.Helper()
	cmd := exec.Command(env.Bin, args...)
	cmd.Env = env.Environ()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return false
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return true
	}
}

// TestSnapshotKill9: a CLI killed mid-snapshot leaves no snapshot or a
// whole one, and never a frozen guest; killed mid-reset it leaves the old
// disk or the new one, and the workspace works afterwards.
func TestSnapshotKill9(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: uniq("snapk")})
	out(t, ws, `echo old > /workspace/state && head -c 20000000 /dev/urandom > /workspace/blob`)
	snapshot(t, ws, "s1")
	out(t, ws, `echo new > /workspace/state`)
	for i, d := range []time.Duration{300 * time.Millisecond, 900 * time.Millisecond} {
		name := fmt.Sprintf("k%d", i)
		killed := killAfter(t, d, "workspace", "snapshot", "create", ws.Info.ID, name)
		// The guest is not left frozen: a write goes through (the agent
		// thaws when the killed CLI's stream closes).
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		r, err := ws.Exec(wctx, hearth.ExecOptions{Argv: []string{"sh", "-c", "echo w > /workspace/after-kill && sync"}})
		cancel()
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("write after a killed snapshot (killed %v): %v %+v", killed, err, r)
		}
		s, err := ws.SnapshotShow(ctx, name)
		if err == nil {
			disk := filepath.Join(env.Home, "workspaces", ws.Info.ID, "snapshots", name, "disk.ext4")
			if fsck, err := exec.Command("e2fsck", "-fn", disk).CombinedOutput(); err != nil {
				t.Fatalf("snapshot %s that survived a kill: e2fsck: %v\n%s", name, err, fsck)
			}
		} else if !errors.Is(err, hearth.ErrNotFound) {
			t.Fatal(err)
		}
		t.Logf("snapshot killed after %v (before its end: %v): snapshot kept: %v", d, killed, s != nil)
	}
	for i, d := range []time.Duration{200 * time.Millisecond, 3 * time.Second} {
		killed := killAfter(t, d, "workspace", "reset", ws.Info.ID, "--to", "s1", "--force")
		if _, err := ws.Start(ctx); err != nil { // no-op when it is running
			t.Fatalf("start after a reset killed after %v: %v", d, err)
		}
		// "old" is the snapshot's content (the reset happened), "new" the
		// disk's before the reset.
		got := out(t, ws, `cat /workspace/state`)
		if got != "old" && got != "new" {
			t.Fatalf("after a reset killed after %v: state %q", d, got)
		}
		t.Logf("reset %d killed after %v (before its end: %v): disk as after the reset: %v", i, d, killed, got == "old")
		out(t, ws, `echo new > /workspace/state && sync`)
	}
	// Whatever the kills left is cleaned by the next operation.
	snapshot(t, ws, "after")
	l, err := ws.SnapshotList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := filepath.Glob(filepath.Join(env.Home, "workspaces", ws.Info.ID, "snapshots", ".*"))
	next, _ := filepath.Glob(filepath.Join(env.Home, "workspaces", ws.Info.ID, "*next*"))
	if len(ents)+len(next) != 0 {
		t.Fatalf("left behind: %v %v (snapshots %d)", ents, next, len(l.Snapshots))
	}
}
