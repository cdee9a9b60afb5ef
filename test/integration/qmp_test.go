package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/qmp"
)

// TestQMPSaveRestoreMicrovm: the memory-snapshot path measured on QEMU
// 7.2, through internal/qmp: a microvm (no guest kernel) with its RAM in a
// shared memory-backend-file is stopped and saved with migrate exec: and
// x-ignore-shared (a small device-state file), and a new QEMU restores it
// with -incoming defer and runs on.
func TestQMPSaveRestoreMicrovm(t *testing.T) {
	dir := t.TempDir()
	ram := filepath.Join(dir, "ram.img")
	state := filepath.Join(dir, "state")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := func(name string, extra ...string) *qmp.Client {
		sock := filepath.Join(dir, name+".qmp")
		args := append([]string{
			"-M", "microvm,x-option-roms=off,rtc=on,memory-backend=mem",
			"-object", "memory-backend-file,id=mem,size=128M,mem-path=" + ram + ",share=on",
			"-m", "128", "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
			"-accel", "tcg", "-cpu", "max", "-device", "virtio-rng-device",
			"-qmp", "unix:" + sock + ",server=on,wait=off"}, extra...)
		cmd := exec.Command("qemu-system-x86_64", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		logf, _ := os.Create(filepath.Join(dir, name+".log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		var c *qmp.Client
		for {
			var err error
			if c, err = qmp.Dial(ctx, sock); err == nil {
				break
			}
			if ctx.Err() != nil {
				b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
				t.Fatalf("QEMU %s: no monitor: %v\n%s", name, err, b)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	src := start("src")
	if s, err := src.Status(ctx); err != nil || s != "running" {
		t.Fatalf("source status %q %v", s, err)
	}
	for _, step := range []func() error{
		func() error { return src.Execute(ctx, "stop", nil, nil) },
		func() error { return src.SetCapabilities(ctx, "x-ignore-shared") },
		func() error { return src.SetMaxBandwidth(ctx, 1<<40) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := src.Migrate(ctx, "exec:cat > "+state)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(state)
	if err != nil || fi.Size() == 0 || fi.Size() > 1<<20 {
		t.Fatalf("device state %v bytes (%v): want a small file with RAM left in the shared backend", fi, err)
	}
	t.Logf("saved %d bytes of device state in %d ms (QEMU %s)", fi.Size(), st.TotalTime, src.Greeting.Version())
	src.Execute(ctx, "quit", nil, nil)

	dst := start("dst", "-incoming", "defer")
	if s, err := dst.Status(ctx); err != nil || s != "inmigrate" {
		t.Fatalf("restore target status %q %v", s, err)
	}
	if err := dst.SetCapabilities(ctx, "x-ignore-shared"); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.MigrateIncoming(ctx, "exec:cat "+state); err != nil {
		t.Fatal(err)
	}
	if s, err := dst.Status(ctx); err != nil || s != "paused" {
		t.Fatalf("after restore: %q %v, want paused", s, err)
	}
	if err := dst.Execute(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	if s, err := dst.Status(ctx); err != nil || s != "running" {
		t.Fatalf("after cont: %q %v", s, err)
	}
}
