package firecracker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/tapns"
	"github.com/hearthvm/hearth/internal/vmm"
)

func TestMain(m *testing.M) {
	tapns.Child() // the fake firecracker, started in its own network namespace
	if os.Getenv(fakeEnv) == "1" {
		os.Exit(runFakeFirecracker(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeBackend returns a backend whose "firecracker" is this test binary
// acting as runFakeFirecracker; the requests it receives are appended to
// the returned file.
func fakeBackend(t *testing.T, fault string) (*Backend, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(t.TempDir(), "requests.jsonl")
	t.Setenv(fakeEnv, "1")
	t.Setenv(fakeRecordEnv, record)
	t.Setenv(fakeFaultEnv, fault)
	return New(Options{Binary: exe}), record
}

// scriptBackend returns a backend whose "firecracker" is a shell script.
func scriptBackend(t *testing.T, script string) *Backend {
	t.Helper()
	path := filepath.Join(t.TempDir(), "firecracker")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return New(Options{Binary: path})
}

// bootableSpec is testSpec with its files created.
func bootableSpec(t *testing.T) vmm.Spec {
	t.Helper()
	spec := testSpec(t.TempDir())
	for _, p := range []string{spec.Kernel, spec.Initrd, spec.RootFS, spec.DataDisk} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return spec
}

func readRecord(t *testing.T, path string) []recorded {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []recorded
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r recorded
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func assertNoSockets(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{APISocketName, VsockSocketName} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", name, err)
		}
	}
}

func TestStartKill(t *testing.T) {
	b, record := fakeBackend(t, "")
	spec := bootableSpec(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vm, err := b.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	m := vm.(*Machine)
	if m.PID() <= 0 {
		t.Errorf("PID %d", m.PID())
	}
	if want := filepath.Join(spec.Dir, VsockSocketName); m.AgentSocket() != want {
		t.Errorf("AgentSocket %q, want %q", m.AgentSocket(), want)
	}
	if _, err := os.Stat(m.AgentSocket()); err != nil {
		t.Errorf("vsock socket: %v", err)
	}
	d := m.Describe()
	if d["backend"] != "firecracker" || d["version"] != fakeVersion || d["api_socket"] != filepath.Join(spec.Dir, APISocketName) {
		t.Errorf("Describe %v", d)
	}
	if _, ok := d["warning"]; ok {
		t.Errorf("warning for the tested version: %v", d)
	}

	// Arguments: API socket, sanitised id, seccomp left on.
	args, _ := os.ReadFile(filepath.Join(spec.Dir, "fake.args"))
	wantArgs := []string{"--api-sock", filepath.Join(spec.Dir, APISocketName), "--id", "ws-demo-1"}
	if got := strings.Split(string(args), "\n"); !slices.Equal(got, wantArgs) {
		t.Errorf("args %q, want %q", got, wantArgs)
	}

	// Configuration order: drives rootfs (vda) before data (vdb), then start.
	seq := configRequests(t, record, spec.Dir, map[string]string{"/actions": "action-start.json"})
	wantSeq := []string{"PUT /machine-config", "PUT /boot-source", "PUT /drives/rootfs", "PUT /drives/data", "PUT /vsock", "PUT /actions"}
	if !slices.Equal(seq, wantSeq) {
		t.Errorf("requests %q, want %q", seq, wantSeq)
	}
	select {
	case <-m.Done():
		t.Fatalf("exited early: %s", m.ExitReason())
	default:
	}

	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
	default:
		t.Fatal("Done not closed after Kill")
	}
	if r := m.ExitReason(); r != "killed by signal 9" {
		t.Errorf("ExitReason %q", r)
	}
	if !processGone(m.PID()) {
		t.Errorf("pid %d still exists", m.PID())
	}
	assertNoSockets(t, spec.Dir)
	if err := m.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	if log, _ := os.ReadFile(spec.ConsoleLog); !strings.Contains(string(log), "Running Firecracker") {
		t.Errorf("console log %q lacks firecracker's stdout", log)
	}
}

func TestShutdown(t *testing.T) {
	b, _ := fakeBackend(t, "")
	spec := bootableSpec(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vm, err := b.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	m := vm.(*Machine)
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if r := m.ExitReason(); r != "exited with status 0" {
		t.Errorf("ExitReason %q", r)
	}
	assertNoSockets(t, spec.Dir)
}

func TestStartFaultKillsVM(t *testing.T) {
	const fault = "Unable to create the block device: No such file or directory (os error 2)"
	b, _ := fakeBackend(t, "PUT /drives/data="+fault)
	spec := bootableSpec(t)
	_, err := b.Start(context.Background(), spec)
	if err == nil {
		t.Fatal("Start succeeded")
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Path != "/drives/data" {
		t.Errorf("error %v is not the drive's APIError", err)
	}
	if !strings.Contains(err.Error(), "PUT /drives/data") || !strings.Contains(err.Error(), fault) {
		t.Errorf("error %q does not name the endpoint and fault", err)
	}
	pidText, _ := os.ReadFile(filepath.Join(spec.Dir, "fake.pid"))
	pid, _ := strconv.Atoi(string(pidText))
	if pid <= 0 || !processGone(pid) {
		t.Errorf("fake firecracker pid %d still running after a failed Start", pid)
	}
	assertNoSockets(t, spec.Dir)
}

func TestStartEarlyExit(t *testing.T) {
	b := scriptBackend(t, `echo "Error creating the Kvm object: Error(13)"; exit 1`)
	spec := bootableSpec(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.Start(ctx, spec)
	if err == nil {
		t.Fatal("Start succeeded")
	}
	if !errors.Is(err, vmm.ErrVMExited) {
		t.Errorf("error %v is not ErrVMExited", err)
	}
	for _, want := range []string{"exited with status 1", "before its API socket was ready", "Error creating the Kvm object"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("noticing the exit took %v", d)
	}
	assertNoSockets(t, spec.Dir)
}

func TestStartNotReady(t *testing.T) {
	// A "firecracker" that never opens its API socket: Start gives up when
	// ctx ends and kills it.
	b := scriptBackend(t, `echo $$ > "$(dirname "$2")/fake.pid"; exec sleep 60`)
	spec := bootableSpec(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := b.Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "not ready") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v", err)
	}
	pidText, _ := os.ReadFile(filepath.Join(spec.Dir, "fake.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if pid <= 0 || !processGone(pid) {
		t.Errorf("pid %d still running after Start gave up", pid)
	}
}

func TestStartRejects(t *testing.T) {
	b := scriptBackend(t, "exit 0")
	tests := []struct {
		name string
		edit func(*vmm.Spec)
		want string
	}{
		{"missing kernel", func(s *vmm.Spec) { s.Kernel = filepath.Join(s.Dir, "nope") }, "kernel"},
		{"no cpus", func(s *vmm.Spec) { s.CPUs = 0 }, "cpus 0"},
		{"socket path too long", func(s *vmm.Spec) {
			long := filepath.Join(s.Dir, strings.Repeat("d", 100))
			os.Mkdir(long, 0o755)
			s.Dir = long
		}, "shorter VM directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := bootableSpec(t)
			tt.edit(&spec)
			_, err := b.Start(context.Background(), spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v, want %q and invalid argument", err, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	notKVM := filepath.Join(dir, "not-kvm")
	os.WriteFile(notKVM, nil, 0o600)
	script := func(body string) string {
		p := filepath.Join(t.TempDir(), "firecracker")
		os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755)
		return p
	}
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"missing binary", Options{Binary: filepath.Join(dir, "nope")}, []string{"not usable", EnvBinary, "v1.16"}},
		{"not firecracker", Options{Binary: script("echo hello")}, []string{"not a Firecracker version"}},
		{"version fails", Options{Binary: script("exit 3")}, []string{"--version", "exit status 3"}},
		{"no kvm", Options{Binary: script("echo Firecracker v1.16.1"), KVMDevice: filepath.Join(dir, "kvm")}, []string{"KVM not usable", "qemu backend"}},
		{"kvm not a kvm device", Options{Binary: script("echo Firecracker v1.16.1"), KVMDevice: notKVM}, []string{"KVM not usable", "KVM_GET_API_VERSION"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(tt.opts).Check(context.Background())
			if err == nil {
				t.Fatal("Check passed")
			}
			if !errors.Is(err, errdefs.ErrUnavailable) {
				t.Errorf("error %v is not ErrUnavailable", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	t.Run("env override", func(t *testing.T) {
		p := script("echo Firecracker v1.16.0")
		t.Setenv(EnvBinary, p)
		got, err := New(Options{}).Binary()
		if err != nil || got != p {
			t.Errorf("Binary() = %q, %v; want %q", got, err, p)
		}
		v, err := New(Options{}).Version(context.Background())
		if err != nil || v != "1.16.0" {
			t.Errorf("Version() = %q, %v", v, err)
		}
		if d := New(Options{}).Describe(context.Background()); d["version"] != "1.16.0" || d["binary"] != p || d["warning"] != "" {
			t.Errorf("Describe() = %v", d)
		}
		t.Setenv(EnvBinary, script("echo Firecracker v1.15.2"))
		if d := New(Options{}).Describe(context.Background()); !strings.Contains(d["warning"], "untested") {
			t.Errorf("Describe() for 1.15.2 = %v, want a warning", d)
		}
	})
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		out, want string
		ok        bool
		warn      bool
	}{
		{"Firecracker v1.16.1\n\n", "1.16.1", true, false},
		{"Firecracker v1.16.0\nSupported snapshot data format versions: v10.0.0\n", "1.16.0", true, false},
		{"Firecracker v1.17.0-dev\n", "1.17.0-dev", true, true},
		{"Firecracker v1.4.1\n", "1.4.1", true, true},
		{"firecracker 1.16.1", "1.16.1", true, false},
		{"qemu-system-x86_64 version 8.2.2", "", false, false},
		{"", "", false, false},
	}
	for _, tt := range tests {
		got, ok := parseVersion(tt.out)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseVersion(%q) = %q, %v; want %q, %v", tt.out, got, ok, tt.want, tt.ok)
		}
		if ok && (versionWarning(got) != "") != tt.warn {
			t.Errorf("versionWarning(%q) = %q", got, versionWarning(got))
		}
	}
}

func TestSanitizeID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ws-1", "ws-1"},
		{"my workspace/α", "my-workspace--"},
		{"", "hearth"},
		{strings.Repeat("a", 70), strings.Repeat("a", 64)},
		{"a_b.c", "a-b-c"},
	}
	for _, tt := range tests {
		if got := SanitizeID(tt.in); got != tt.want {
			t.Errorf("SanitizeID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBootArgs(t *testing.T) {
	spec := vmm.Spec{KernelArgs: []string{"a=1", "b"}}
	if got, want := BootArgs(spec), "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd a=1 b"; got != want {
		t.Errorf("BootArgs = %q, want %q", got, want)
	}
	if BootArgs(vmm.Spec{}) != "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd" {
		t.Error("BootArgs without extra args")
	}
}

// TestStartNetworkTAP runs the guest network's Firecracker path with the
// fake firecracker: it starts in a network namespace of its own whose only
// devices are lo and the TAP, is told the TAP's name, opens it as Firecracker
// does, and frames cross both ways between it and the packet socket the
// supervisor's stack is given.
func TestStartNetworkTAP(t *testing.T) {
	if err := tapns.Check(); err != nil {
		t.Skipf("no network namespace here: %v", err)
	}
	b, record := fakeBackend(t, "")
	spec := bootableSpec(t)
	spec.NetTap = TapName
	socks := make(chan *os.File, 1)
	spec.NetAttach = func(f *os.File) { socks <- f }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vm, err := b.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	var sock *os.File
	select {
	case sock = <-socks:
	default:
		t.Fatal("Start returned without handing over the packet socket")
	}
	defer sock.Close()

	seq := configRequests(t, record, spec.Dir, map[string]string{"/network-interfaces/eth0": "network-interface.json"})
	if want := []string{"PUT /machine-config", "PUT /boot-source", "PUT /drives/rootfs", "PUT /drives/data", "PUT /vsock", "PUT /network-interfaces/eth0", "PUT /actions"}; !slices.Equal(seq, want) {
		t.Errorf("requests %q, want %q", seq, want)
	}
	ns, err := os.ReadFile(filepath.Join(spec.Dir, "fake.netns"))
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	nsName, ifaces, _ := strings.Cut(string(ns), "\n")
	if nsName == self || nsName == "" {
		t.Errorf("firecracker runs in the host's network namespace (%s)", self)
	}
	if ifaces != "lo,"+TapName {
		t.Errorf("interfaces in firecracker's namespace: %q, want lo and %s only", ifaces, TapName)
	}

	// The guest's frame reaches the stack's side.
	sock.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	for {
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("read the guest's frame from the packet socket: %v", err)
		}
		if n >= 14 && string(buf[14:n]) == "hello-from-guest" {
			break
		}
	}
	// And the stack's frame reaches the guest.
	frame := append([]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x54, 0x00, 0x12, 0x35, 0x02, 0x88, 0xb5}, "hello-from-host"...)
	if _, err := sock.Write(frame); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := os.ReadFile(filepath.Join(spec.Dir, "fake.tapin"))
		if strings.Contains(string(got), "hello-from-host") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the frame written to the packet socket never reached firecracker's TAP (got %q)", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid := vm.PID()
	vm.Kill()
	if !processGone(pid) {
		t.Errorf("pid %d still exists", pid)
	}
}

// configRequests returns the fake firecracker's recorded requests other
// than GETs, as "METHOD PATH", checking the body of each path in golden
// against its golden file.
func configRequests(t *testing.T, record, dir string, golden map[string]string) []string {
	t.Helper()
	var seq []string
	for _, r := range readRecord(t, record) {
		if r.Method == "GET" {
			continue
		}
		seq = append(seq, r.Method+" "+r.Path)
		if name, ok := golden[r.Path]; ok {
			checkGolden(t, name, r.Body, dir)
		}
	}
	return seq
}
