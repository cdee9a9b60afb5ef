package integration

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/backend"
	"github.com/hearthvm/hearth/internal/cmdlog"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/hearthvm/hearth/internal/supervisor"
	"github.com/hearthvm/hearth/internal/workspace"
)

// hostUse sums the disk blocks of the regular files under dir, except the
// disk images and the kernel (hard links to the image, or the guest's own
// disk, whose size the guest's disk quota bounds).
func hostUse(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if strings.HasSuffix(p, ".ext4") || d.Name() == "vmlinux" {
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return err
		}
		n += st.Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func wsDirOf(ws *hearth.Workspace) string {
	return filepath.Join(home.Workspaces(env.Home), ws.Info.ID)
}

// TestGuestPrintsOneGiB: a guest command that prints 1 GiB leaves at most
// the output cap on the host, and its result and log entry still say how
// much it wrote.
func TestGuestPrintsOneGiB(t *testing.T) {
	c := sdk(t)
	ws := newWorkspace(t, c, hearth.CreateOptions{})
	dir := wsDirOf(ws)
	before := hostUse(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	r, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"head", "-c", "1073741824", "/dev/zero"}})
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	after := hostUse(t, dir)
	logs := hostUse(t, filepath.Join(dir, "logs"))
	t.Logf("1 GiB from the guest: %s wall (%.0f MiB/s); workspace dir (without disk images) %d -> %d bytes (+%.1f MiB), logs/ %.1f MiB",
		wall.Round(time.Millisecond), 1024/wall.Seconds(), before, after, float64(after-before)/(1<<20), float64(logs)/(1<<20))
	if r.ExitCode != 0 || r.StdoutBytes != 1<<30 {
		t.Fatalf("result: exit %d, %d stdout bytes, want 0 and %d", r.ExitCode, r.StdoutBytes, 1<<30)
	}
	const slack = 1 << 20 // the journal, the index, the console log
	if after-before > cmdlog.DefaultOutputCap+slack {
		t.Errorf("the workspace dir grew by %d bytes, over the %d byte cap", after-before, cmdlog.DefaultOutputCap)
	}
	cmds, err := ws.Logs(ctx, hearth.LogsOptions{Tail: 1})
	if err != nil || len(cmds) != 1 {
		t.Fatal(cmds, err)
	}
	e := cmds[0]
	if e.ID != r.CommandID || e.StdoutBytes != 1<<30 || e.StdoutDroppedBytes != 1<<30-cmdlog.DefaultOutputCap || e.Status != api.CommandFinished {
		t.Errorf("log entry: %+v", e)
	}
	st, err := os.Stat(filepath.Join(dir, "logs", r.CommandID+".stdout"))
	if err != nil || st.Size() != cmdlog.DefaultOutputCap {
		t.Errorf("kept output: %v %v, want %d bytes", st.Size(), err, cmdlog.DefaultOutputCap)
	}
	// The kept part reads back; the read says where it ends.
	out, err := ws.CommandRead(ctx, r.CommandID, "stdout", cmdlog.DefaultOutputCap-10, 100)
	if err != nil || out.TotalBytes != cmdlog.DefaultOutputCap || out.NextOffset != cmdlog.DefaultOutputCap || out.Status != api.StatusFinished {
		t.Errorf("read at the cap: %+v %v", out, err)
	}
}

// TestDetachedCap: a detached command (run by the supervisor) is capped
// by the caller's setting, and its result has the true byte count.
func TestDetachedCap(t *testing.T) {
	c := sdk(t)
	ws := newWorkspace(t, c, hearth.CreateOptions{})
	m, err := workspace.New(workspace.Options{
		Home: env.Home, Exe: env.Bin, CommandOutputCap: 1 << 20,
		Backends: backend.Factory(backend.Config{CacheDir: home.Cache(env.Home)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r, err := m.Exec(ctx, ws.Info.ID, workspace.ExecOptions{Shell: "head -c 10000000 /dev/zero; echo done >&2", Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	for r.Status == api.StatusRunning {
		if r, err = m.CommandWait(ctx, ws.Info.ID, r.CommandID, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if r.ExitCode != 0 || r.StdoutBytes != 10_000_000 || r.Stderr != "done\n" || !r.StdoutTruncated || len(r.Stdout) != api.OutputLimit {
		t.Errorf("result: exit %d, %d stdout bytes (%d in the result, truncated %v), stderr %q", r.ExitCode, r.StdoutBytes, len(r.Stdout), r.StdoutTruncated, r.Stderr)
	}
	cmds, err := m.Logs(ctx, ws.Info.ID, workspace.LogsOptions{Tail: 1})
	if err != nil || len(cmds) != 1 {
		t.Fatal(cmds, err)
	}
	if e := cmds[0]; e.StdoutBytes != 10_000_000 || e.StdoutDroppedBytes != 10_000_000-1<<20 || e.StderrDroppedBytes != 0 || !e.Detached {
		t.Errorf("log entry: %+v", e)
	}
	if st, err := os.Stat(filepath.Join(wsDirOf(ws), "logs", r.CommandID+".stdout")); err != nil || st.Size() != 1<<20 {
		t.Errorf("kept output: %v, want %d bytes", err, 1<<20)
	}

	// `workspace logs --prune` through the CLI: the newest output stays,
	// the older one goes, both entries stay.
	last := sh(t, ws, "echo last")
	pr := env.Hearth(nil, "workspace", "logs", ws.Info.ID, "--prune", "--keep-last", "1", "--json")
	var res cmdlog.PruneResult
	if err := json.Unmarshal(pr.Stdout, &res); pr.Code != 0 || err != nil || len(res.Pruned) != 1 || res.Pruned[0] != r.CommandID || res.FreedBytes < 1<<20 {
		t.Fatalf("prune: exit %d %s %s", pr.Code, pr.Stdout, pr.Stderr)
	}
	cmds, err = m.Logs(ctx, ws.Info.ID, workspace.LogsOptions{})
	if err != nil || len(cmds) != 2 || !cmds[0].Pruned || cmds[1].Pruned || cmds[1].ID != last.CommandID {
		t.Errorf("after prune: %+v %v", cmds, err)
	}
	if out := env.Hearth(nil, "workspace", "logs", ws.Info.ID, r.CommandID); out.Code != 3 || !strings.Contains(string(out.Stderr), "pruned") {
		t.Errorf("reading a pruned output: exit %d %s", out.Code, out.Stderr)
	}
	if out := env.Hearth(nil, "workspace", "logs", ws.Info.ID, last.CommandID); out.Code != 0 || string(out.Stdout) != "last\n" {
		t.Errorf("reading the kept output: exit %d %q %s", out.Code, out.Stdout, out.Stderr)
	}
}

func processGone(pid int) bool {
	return !cmdlog.ProcessAlive(cmdlog.Runner{PID: pid})
}

// waitGone waits (bounded) until pid is no longer a live process.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive 30 s after SIGKILL", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSupervisorKilledDetachedLost: a detached command whose supervisor is
// killed -9 reads as lost, with the output it had, also after a new
// supervisor runs the workspace again.
func TestSupervisorKilledDetachedLost(t *testing.T) {
	c := sdk(t)
	ws := newWorkspace(t, c, hearth.CreateOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r, err := ws.Exec(ctx, hearth.ExecOptions{Shell: "echo before; echo err-before >&2; exec sleep 600", Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		out, err := ws.CommandRead(ctx, r.CommandID, "stdout", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Both streams: they arrive separately.
		errOut, err := ws.CommandRead(ctx, r.CommandID, "stderr", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if out.Data == "before\n" && errOut.Data == "err-before\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no output from the detached command: %+v", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	run := filepath.Join(wsDirOf(ws), "run")
	st, err := supervisor.ReadStatus(run)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(st.SupervisorPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st.SupervisorPID)
	// Until the VMM dies with its supervisor (issue 10, item 4), kill it too.
	if !processGone(st.VMMPID) {
		t.Logf("the VMM (pid %d) outlived its supervisor; killing it", st.VMMPID)
		syscall.Kill(st.VMMPID, syscall.SIGKILL)
		waitGone(t, st.VMMPID)
	}
	// A new supervisor runs the workspace before anyone reads the log: the
	// command's own runner is gone, so it must not read as running.
	if _, err := ws.Start(ctx); err != nil {
		t.Fatalf("start after the supervisor was killed: %v", err)
	}
	check := func(what string, status, reason, message string, stdout, stderr int64) {
		t.Helper()
		if status != api.CommandLost || reason != api.ReasonLost || !strings.Contains(message, "supervisor") {
			t.Errorf("%s: status %q reason %q message %q, want lost/lost naming the supervisor", what, status, reason, message)
		}
		if stdout != int64(len("before\n")) || stderr != int64(len("err-before\n")) {
			t.Errorf("%s: %d/%d bytes of output so far, want %d/%d", what, stdout, stderr, len("before\n"), len("err-before\n"))
		}
	}
	cmds, err := ws.Logs(ctx, hearth.LogsOptions{})
	if err != nil || len(cmds) != 1 {
		t.Fatal(cmds, err)
	}
	check("logs", cmds[0].Status, cmds[0].Reason, cmds[0].Message, cmds[0].StdoutBytes, cmds[0].StderrBytes)
	res, err := ws.CommandWait(ctx, r.CommandID, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != api.StatusFinished || res.ExitCode != -1 || res.Stdout != "before\n" || res.Stderr != "err-before\n" {
		t.Errorf("wait: %+v", res)
	}
	check("wait", api.CommandLost, res.Reason, res.Message, res.StdoutBytes, res.StderrBytes)
	out, err := ws.CommandRead(ctx, r.CommandID, "stdout", 0, 0)
	if err != nil || out.Data != "before\n" || out.Status != api.StatusFinished {
		t.Errorf("read: %+v %v", out, err)
	}
	// The workspace works, and the next command gets a new id.
	r2 := sh(t, ws, "echo after")
	if r2.Stdout != "after\n" || r2.CommandID <= r.CommandID {
		t.Errorf("after: %+v", r2)
	}
}
