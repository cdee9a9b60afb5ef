package firecracker

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/serialmux"
	"github.com/hearthvm/hearth/internal/vmm"
)

// TestSmokeBoot boots a real microVM and says hello to the guest agent. It
// runs only where a firecracker binary is on PATH (or in
// $HEARTH_FIRECRACKER), KVM is usable, and HEARTH_TEST_KERNEL,
// HEARTH_TEST_INITRD and HEARTH_TEST_ROOTFS name a guest image.
func TestSmokeBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM; skipped in -short mode")
	}
	b := New(Options{})
	if _, err := b.Binary(); err != nil {
		if _, perr := exec.LookPath("firecracker"); perr != nil && os.Getenv(EnvBinary) == "" {
			t.Skipf("firecracker not on PATH: %v (install v1.16 or set %s)", perr, EnvBinary)
		}
		t.Skipf("firecracker not usable: %v", err)
	}
	if err := checkKVM("/dev/kvm"); err != nil {
		t.Skipf("KVM not usable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*vmm.DefaultBootTimeout)
	defer cancel()
	if err := b.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	image := map[string]string{}
	for _, env := range []string{"HEARTH_TEST_KERNEL", "HEARTH_TEST_INITRD", "HEARTH_TEST_ROOTFS"} {
		image[env] = os.Getenv(env)
		if image[env] == "" {
			t.Skipf("no guest image: %s is unset (set HEARTH_TEST_KERNEL, HEARTH_TEST_INITRD and HEARTH_TEST_ROOTFS)", env)
		}
	}
	// A short directory: Unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "hfc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data.img")
	if err := os.WriteFile(data, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(data, 64<<20); err != nil {
		t.Fatal(err)
	}
	spec := vmm.Spec{
		ID:         "smoke",
		Dir:        dir,
		Kernel:     image["HEARTH_TEST_KERNEL"],
		Initrd:     image["HEARTH_TEST_INITRD"],
		RootFS:     image["HEARTH_TEST_ROOTFS"],
		DataDisk:   data,
		CPUs:       1,
		MemoryMiB:  256,
		ConsoleLog: filepath.Join(dir, "console.log"),
	}
	start := time.Now()
	vm, err := b.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	m := vm.(*Machine)
	defer m.Kill()
	t.Logf("firecracker pid %d started in %v: %v", m.PID(), time.Since(start), m.Describe())

	dctx, dcancel := context.WithTimeout(ctx, vmm.DefaultBootTimeout)
	defer dcancel()
	go func() { // stop dialling at once if the VM dies
		select {
		case <-m.Done():
			dcancel()
		case <-dctx.Done():
		}
	}()
	conn, err := serialmux.Dial(dctx, m.AgentSocket(), guestproto.AgentPort)
	if err != nil {
		t.Fatalf("dial agent: %v (VM: %s; console:\n%s)", err, m.ExitReason(), vmm.ConsoleTail(spec.ConsoleLog, 20))
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := guestproto.WriteJSON(conn, &guestproto.Request{Op: guestproto.OpHello}); err != nil {
		t.Fatalf("send hello: %v", err)
	}
	var resp guestproto.Response
	for {
		ft, payload, err := guestproto.ReadFrame(conn, nil)
		if err != nil {
			t.Fatalf("read hello response: %v", err)
		}
		if ft != guestproto.FrameJSON {
			continue
		}
		if err := json.Unmarshal(payload, &resp); err != nil {
			t.Fatalf("decode hello response %q: %v", payload, err)
		}
		break
	}
	if resp.Error != nil {
		t.Fatalf("hello failed: %v", resp.Error)
	}
	if resp.Hello == nil || resp.Hello.ProtocolVersion != guestproto.ProtocolVersion {
		t.Fatalf("hello = %+v, want protocol version %d", resp.Hello, guestproto.ProtocolVersion)
	}
	t.Logf("agent %s, kernel %s, up %d ms, %v after Start", resp.Hello.AgentVersion, resp.Hello.Kernel, resp.Hello.UptimeMS, time.Since(start))

	if err := m.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if !processGone(m.PID()) {
		t.Errorf("firecracker pid %d still exists after Kill", m.PID())
	}
	assertNoSockets(t, dir)
	if _, err := os.Stat(data); err != nil {
		t.Errorf("data disk: %v", err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("smoke test ran out of time")
	}
}
