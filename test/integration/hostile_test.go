package integration

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
)

// TestKilledCLIAndFullDisk: a CLI killed mid-exec leaves a usable
// workspace (its command reported lost, its guest process gone), and a
// full guest disk is the command's own error, not the workspace's.
func TestKilledCLIAndFullDisk(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{DiskSize: 128 << 20})
	cmd := exec.Command(env.Bin, "workspace", "exec", ws.Info.ID, "--", "sh", "-c", "echo started; exec sleep 300")
	cmd.Env = env.Environ()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := sh(t, ws, "pgrep -x sleep || true")
		if r.Stdout == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("guest process outlived the killed CLI: %q", r.Stdout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs, _ := ws.Logs(ctx, hearth.LogsOptions{})
	if len(logs) == 0 || logs[0].Status != api.CommandLost {
		t.Fatalf("command of the killed CLI: %+v", logs)
	}
	// Fill the 128 MiB disk.
	r := sh(t, ws, "dd if=/dev/zero of=/workspace/fill bs=1M count=400 2>&1; echo rc=$?")
	if !strings.Contains(r.Stdout, "No space left") {
		t.Fatalf("filling the disk: %q", r.Stdout)
	}
	// The workspace still works, and freeing space recovers it.
	if r := sh(t, ws, "rm /workspace/fill && echo ok > /workspace/after && cat /workspace/after"); r.Stdout != "ok\n" {
		t.Fatalf("after a full disk: %+v", r)
	}
	if _, err := ws.Diff(ctx, hearth.DiffOptions{}); err != nil {
		t.Fatalf("diff after a full disk: %v", err)
	}
}
