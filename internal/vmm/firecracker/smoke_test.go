package firecracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/netpolicy"
	"github.com/hearthvm/hearth/internal/netstack"
	"github.com/hearthvm/hearth/internal/serialmux"
	"github.com/hearthvm/hearth/internal/tapns"
	"github.com/hearthvm/hearth/internal/vmm"
)

// TestSmokeBoot boots a real microVM and says hello to the guest agent. It
// runs only where a firecracker binary is on PATH (or in
// $HEARTH_FIRECRACKER), KVM is usable, and HEARTH_TEST_KERNEL,
// HEARTH_TEST_INITRD and HEARTH_TEST_ROOTFS name a guest image.
func TestSmokeBoot(t *testing.T) {
	b, image, ctx, cancel := smokePrereqs(t)
	defer cancel()
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

// smokePrereqs skips, saying what is missing, unless a real Firecracker
// VM can run here; it returns the backend and the guest image.
func smokePrereqs(t *testing.T) (*Backend, map[string]string, context.Context, context.CancelFunc) {
	t.Helper()
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*vmm.DefaultBootTimeout)
	if err := b.Check(ctx); err != nil {
		cancel()
		t.Fatalf("Check: %v", err)
	}
	image := map[string]string{}
	for _, env := range []string{"HEARTH_TEST_KERNEL", "HEARTH_TEST_INITRD", "HEARTH_TEST_ROOTFS"} {
		image[env] = os.Getenv(env)
		if image[env] == "" {
			cancel()
			t.Skipf("no guest image: %s is unset (set HEARTH_TEST_KERNEL, HEARTH_TEST_INITRD and HEARTH_TEST_ROOTFS)", env)
		}
	}
	return b, image, ctx, cancel
}

// TestSmokeSnapshot saves a running Firecracker VM (pause, snapshot
// create, resume), kills it, loads the snapshot in a fresh process and
// says hello to the restored agent. It skips where TestSmokeBoot does:
// Firecracker needs a firecracker binary and a usable /dev/kvm, which the
// project's build machine lacks (its VMs run under QEMU's TCG).
func TestSmokeSnapshot(t *testing.T) {
	b, image, ctx, cancel := smokePrereqs(t)
	defer cancel()
	dir, err := os.MkdirTemp("", "hfc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	spec := vmm.Spec{ID: "snap", Dir: dir, Kernel: image["HEARTH_TEST_KERNEL"], Initrd: image["HEARTH_TEST_INITRD"],
		RootFS: image["HEARTH_TEST_ROOTFS"], CPUs: 1, MemoryMiB: 256, ConsoleLog: filepath.Join(dir, "console.log")}
	vm, err := b.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	m := vm.(*Machine)
	defer m.Kill()
	if _, err := helloOver(ctx, m.AgentSocket()); err != nil {
		t.Fatalf("hello before the save: %v", err)
	}
	state, mem := filepath.Join(dir, "state"), filepath.Join(dir, "memory.ram")
	if err := m.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveState(ctx, state, mem, true); err != nil {
		t.Fatal(err)
	}
	m.Kill()
	rdir := filepath.Join(dir, "r")
	os.Mkdir(rdir, 0o700)
	spec.Dir, spec.MemoryFile, spec.Restore = rdir, mem, &vmm.Restore{StateFile: state}
	vm2, err := b.Start(ctx, spec)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	defer vm2.Kill()
	if _, err := helloOver(ctx, vm2.AgentSocket()); err != nil {
		t.Fatalf("hello after the restore: %v", err)
	}
}

// helloOver says hello to the agent behind a hybrid-vsock socket.
func helloOver(ctx context.Context, sock string) (*guestproto.Hello, error) {
	dctx, cancel := context.WithTimeout(ctx, vmm.DefaultBootTimeout)
	defer cancel()
	conn, err := serialmux.Dial(dctx, sock, guestproto.AgentPort)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := guestproto.WriteJSON(conn, &guestproto.Request{Op: guestproto.OpHello}); err != nil {
		return nil, err
	}
	for {
		ft, payload, err := guestproto.ReadFrame(conn, nil)
		if err != nil {
			return nil, err
		}
		if ft != guestproto.FrameJSON {
			continue
		}
		var resp guestproto.Response
		if err := json.Unmarshal(payload, &resp); err != nil {
			return nil, err
		}
		if resp.Error != nil {
			return nil, resp.Error
		}
		return resp.Hello, nil
	}
}

// TestSmokeNetwork boots Firecracker with the guest network: its TAP in a
// network namespace of its own (package tapns), the frames pumped into the
// user-space stack, whose policy lets the guest reach one host loopback
// port through the gateway. It skips where TestSmokeBoot does.
func TestSmokeNetwork(t *testing.T) {
	b, image, ctx, cancel := smokePrereqs(t)
	defer cancel()
	if err := tapns.Check(); err != nil {
		t.Fatalf("a network namespace cannot be made here: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fc-net") })}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	dir, err := os.MkdirTemp("", "hfc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pf := filepath.Join(dir, "network.json")
	if err := netpolicy.Save(pf, &netpolicy.Policy{Mode: netpolicy.ModeEgress, AllowHost: []int{port}}); err != nil {
		t.Fatal(err)
	}
	ns, err := netstack.New(netstack.Config{PolicyFile: pf, LogFile: filepath.Join(dir, "network.log"), Upstream: "127.0.0.1:9"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	spec := vmm.Spec{ID: "net", Dir: dir, Kernel: image["HEARTH_TEST_KERNEL"], Initrd: image["HEARTH_TEST_INITRD"],
		RootFS: image["HEARTH_TEST_ROOTFS"], CPUs: 1, MemoryMiB: 256, ConsoleLog: filepath.Join(dir, "console.log"),
		KernelArgs: []string{netstack.KernelArg()}, NetTap: TapName,
		NetAttach: func(sock *os.File) { go ns.ServePackets(ctx, sock) }}
	vm, err := b.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer vm.Kill()
	if _, err := helloOver(ctx, vm.AgentSocket()); err != nil {
		t.Fatalf("hello: %v", err)
	}
	var out strings.Builder
	c := &guest.Client{Socket: vm.AgentSocket()}
	res, err := c.Exec(ctx, &guestproto.ExecRequest{Argv: []string{"curl", "-sS", "--max-time", "20", fmt.Sprintf("http://10.0.2.2:%d/", port)}}, guest.ExecIO{Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || out.String() != "fc-net" {
		t.Fatalf("curl through the TAP: exit %d, %q", res.ExitCode, out.String())
	}
}
