// Package firecracker is hearth's vmm.Backend for Firecracker (tested
// against v1.16).
//
// It starts one firecracker process per VM with seccomp filtering left on,
// configures it through the REST API on the process's Unix socket with a
// small client of our own (see Client and docs/firecracker.md for why we do
// not use firecracker-go-sdk), and boots it. The guest agent is reached
// through Firecracker's hybrid vsock: Machine.AgentSocket is the vsock Unix
// socket, which speaks the "CONNECT <port>\n" / "OK <n>\n" handshake that
// serialmux.Dial performs.
//
// Disks: the image's root file system is the first drive (/dev/vda),
// read-only and not Firecracker's root device (the agent in the initramfs
// mounts it); the workspace data disk is the second (/dev/vdb), writable,
// with cache_type Writeback so guest fsyncs reach host storage.
package firecracker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/tapns"
	"github.com/hearthvm/hearth/internal/vmm"
)

// Name is the backend's name.
const Name = "firecracker"

// TestedSeries is the Firecracker release series this backend is tested
// with; other versions work if their API is compatible, with a warning.
const TestedSeries = "1.16"

// EnvBinary names the environment variable that overrides where the
// firecracker binary is found.
const EnvBinary = "HEARTH_FIRECRACKER"

// Socket and device names inside spec.Dir, and the guest's vsock CID.
const (
	APISocketName   = "fc.sock"
	VsockSocketName = "vsock.sock"
	GuestCID        = 3
	RootDriveID     = "rootfs"
	DataDriveID     = "data"
)

// baseBootArgs come before spec.KernelArgs. console=ttyS0 turns the serial
// console on (our own boot_args replace Firecracker's default command line,
// which disables it); reboot=k makes a guest reboot end the firecracker
// process; panic=1 turns a guest panic into a reboot, hence an exit;
// pci=off because devices are virtio-mmio.
var baseBootArgs = []string{"console=ttyS0", "reboot=k", "panic=1", "pci=off", "i8042.noaux", "i8042.nomux", "i8042.dumbkbd"}

// maxSocketPath is the longest path a Unix socket address holds
// (sun_path is 108 bytes including the terminating NUL).
const maxSocketPath = 107

// Options configures a Backend. The zero value is usable.
type Options struct {
	// Binary is the firecracker executable. Empty means $HEARTH_FIRECRACKER,
	// then "firecracker" on PATH.
	Binary string
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// KillWithParent makes the kernel SIGKILL the firecracker process when
	// the process that started it exits (Pdeathsig). Off by default:
	// workspaces outlive the CLI call that booted them.
	KillWithParent bool
	// CallTimeout bounds each API call; zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// ReadyTimeout bounds the wait for the API socket to answer after the
	// process starts; zero means 10 s (Firecracker documents ~12 ms).
	ReadyTimeout time.Duration
	// KVMDevice is the KVM device Check opens; empty means /dev/kvm.
	KVMDevice string
}

// Backend boots Firecracker microVMs. Create it with New.
type Backend struct {
	opts Options
	log  *slog.Logger
}

var _ vmm.Backend = (*Backend)(nil)

// New returns a Firecracker backend.
func New(opts Options) *Backend {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.KVMDevice == "" {
		opts.KVMDevice = "/dev/kvm"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 10 * time.Second
	}
	return &Backend{opts: opts, log: log.With("backend", Name)}
}

// Name returns "firecracker".
func (b *Backend) Name() string { return Name }

const installHint = "install Firecracker v" + TestedSeries + " (a release binary from https://github.com/firecracker-microvm/firecracker/releases, renamed to firecracker) on PATH, or set " + EnvBinary + "=/path/to/firecracker"

// Binary returns the firecracker executable that will be used.
func (b *Backend) Binary() (string, error) {
	name := b.opts.Binary
	source := "option"
	if name == "" {
		name, source = os.Getenv(EnvBinary), "$"+EnvBinary
	}
	if name == "" {
		p, err := exec.LookPath("firecracker")
		if err != nil {
			return "", fmt.Errorf("firecracker not on PATH (%w); %s", errdefs.ErrUnavailable, installHint)
		}
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("firecracker binary %q (from %s) is not usable: %w (%v); %s", name, source, errdefs.ErrUnavailable, err, installHint)
	}
	return p, nil
}

// Version runs "firecracker --version" and returns the version, e.g.
// "1.16.1".
func (b *Backend) Version(ctx context.Context) (string, error) {
	bin, err := b.Binary()
	if err != nil {
		return "", err
	}
	return binaryVersion(ctx, bin)
}

var versionRE = regexp.MustCompile(`(?i)firecracker v?(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)`)

// parseVersion extracts the version from --version output.
func parseVersion(out string) (string, bool) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return "", false
	}
	return m[1], true
}

func binaryVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w (output: %q); %s", bin, err, truncate(string(out), 200), installHint)
	}
	v, ok := parseVersion(string(out))
	if !ok {
		return "", fmt.Errorf("%s --version printed %q, not a Firecracker version; %s", bin, truncate(string(out), 200), installHint)
	}
	return v, nil
}

// versionWarning is non-empty when v is outside the tested series.
func versionWarning(v string) string {
	if v == "" || strings.HasPrefix(v, TestedSeries+".") {
		return ""
	}
	return fmt.Sprintf("Firecracker %s is untested; hearth is tested with v%s.x", v, TestedSeries)
}

// Check reports whether Firecracker can run here: the binary exists and
// prints a version, and the KVM device is openable read-write and answers.
// A version outside TestedSeries is logged, not an error.
func (b *Backend) Check(ctx context.Context) error {
	bin, err := b.Binary()
	if err != nil {
		return err
	}
	v, err := binaryVersion(ctx, bin)
	if err != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
	}
	if w := versionWarning(v); w != "" {
		b.log.Warn(w, "binary", bin)
	}
	if err := checkKVM(b.opts.KVMDevice); err != nil {
		return err
	}
	return nil
}

// Describe returns details for `hearth doctor`: the binary, its version
// and, when the version is outside TestedSeries, a warning. Failures are
// reported in an "error" entry; Check says whether the backend is usable.
func (b *Backend) Describe(ctx context.Context) map[string]string {
	d := map[string]string{"backend": Name, "tested_series": TestedSeries}
	bin, err := b.Binary()
	if err != nil {
		d["error"] = err.Error()
		return d
	}
	d["binary"] = bin
	v, err := binaryVersion(ctx, bin)
	if err != nil {
		d["error"] = err.Error()
		return d
	}
	d["version"] = v
	if w := versionWarning(v); w != "" {
		d["warning"] = w
	}
	return d
}

// kvmGetAPIVersion is the KVM_GET_API_VERSION ioctl, _IO(0xAE, 0x00).
const kvmGetAPIVersion = 0xAE00

func checkKVM(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		var hint string
		switch {
		case errors.Is(err, fs.ErrNotExist):
			hint = "KVM is not available on this host: enable virtualisation (VT-x/AMD-V) in the firmware, load kvm_intel or kvm_amd, or use a cloud instance with nested virtualisation or bare metal; otherwise use the qemu backend"
		case errors.Is(err, fs.ErrPermission):
			hint = "this user may not use it: run `sudo setfacl -m u:$USER:rw " + dev + "` or add yourself to the kvm group (`sudo usermod -aG kvm $USER`, then log in again)"
		case errors.Is(err, syscall.EBUSY):
			hint = "another hypervisor (VirtualBox, VMware) holds it; stop it"
		default:
			hint = "check the device and its permissions"
		}
		return fmt.Errorf("KVM not usable: open %s read-write: %w; %s (%w)", dev, err, hint, errdefs.ErrUnavailable)
	}
	defer f.Close()
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if errno != 0 {
		return fmt.Errorf("KVM not usable: %s does not answer KVM_GET_API_VERSION: %v (%w)", dev, errno, errdefs.ErrUnavailable)
	}
	if v != 12 {
		return fmt.Errorf("KVM not usable: %s reports API version %d, want 12 (%w)", dev, v, errdefs.ErrUnavailable)
	}
	return nil
}

// SanitizeID turns s into a Firecracker instance id: ASCII letters, digits
// and hyphens, at most 64 characters (what --id and the jailer accept).
func SanitizeID(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if sb.Len() == 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			sb.WriteRune(r)
		default:
			sb.WriteByte('-')
		}
	}
	if sb.Len() == 0 {
		return "hearth"
	}
	return sb.String()
}

// BootArgs returns the kernel command line for spec.
func BootArgs(spec vmm.Spec) string {
	return strings.Join(append(append([]string(nil), baseBootArgs...), spec.KernelArgs...), " ")
}

// Plan is the configuration Start sends, in order, before InstanceStart.
type Plan struct {
	Machine MachineConfig
	Boot    BootSource
	Drives  []Drive // in guest order: vda, vdb
	Vsock   Vsock
	// NIC, if set, is the guest's network interface on a TAP device.
	NIC *NetworkInterface
}

// PlanFor returns the API configuration for spec with the vsock socket at
// vsockPath.
//
// vCPU counts are passed through: Firecracker's "1 or an even number" rule
// applies only with SMT on (vmm_config/machine_config.rs), and hearth leaves
// SMT off.
func PlanFor(spec vmm.Spec, vsockPath string) Plan {
	p := Plan{
		Machine: MachineConfig{VCPUCount: spec.CPUs, MemSizeMiB: spec.MemoryMiB},
		Boot: BootSource{
			KernelImagePath: spec.Kernel,
			InitrdPath:      spec.Initrd,
			BootArgs:        BootArgs(spec),
		},
		Drives: []Drive{{
			DriveID:      RootDriveID,
			PathOnHost:   spec.RootFS,
			IsRootDevice: false, // the agent mounts /dev/vda itself
			IsReadOnly:   true,  // shared by every VM of the image
		}},
		Vsock: Vsock{GuestCID: GuestCID, UDSPath: vsockPath},
	}
	if spec.DataDisk != "" {
		p.Drives = append(p.Drives, Drive{
			DriveID:    DataDriveID,
			PathOnHost: spec.DataDisk,
			IsReadOnly: false,
			// Unsafe (the default) drops guest flushes; a persistent
			// workspace must survive a host crash after the guest fsyncs.
			CacheType: CacheWriteback,
		})
	}
	for i, d := range spec.ExtraDisks {
		p.Drives = append(p.Drives, Drive{DriveID: fmt.Sprintf("disk%d", i+1), PathOnHost: d.Path, IsReadOnly: d.ReadOnly, CacheType: CacheWriteback})
	}
	if spec.NetTap != "" {
		nic := GuestNIC(GuestMAC)
		nic.HostDevName = spec.NetTap
		p.NIC = &nic
	}
	return p
}

// Apply sends the plan's pre-boot configuration (not InstanceStart).
func (p Plan) Apply(ctx context.Context, c *Client) error {
	if err := c.PutMachineConfig(ctx, p.Machine); err != nil {
		return err
	}
	if err := c.PutBootSource(ctx, p.Boot); err != nil {
		return err
	}
	for _, d := range p.Drives {
		if err := c.PutDrive(ctx, d); err != nil {
			return err
		}
	}
	if err := c.PutVsock(ctx, p.Vsock); err != nil {
		return err
	}
	if p.NIC != nil {
		return c.PutNetworkInterface(ctx, *p.NIC)
	}
	return nil
}

// Start boots spec. It returns once Firecracker accepted InstanceStart; the
// guest agent may still be booting (serialmux.Dial retries until it
// listens). If ctx ends before Start returns, the VM is killed; afterwards
// ctx has no effect on it.
func (b *Backend) Start(ctx context.Context, spec vmm.Spec) (vmm.Machine, error) {
	return b.start(ctx, spec)
}

func (b *Backend) start(ctx context.Context, spec vmm.Spec) (*Machine, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("firecracker: %w (%w)", err, errdefs.ErrInvalidArgument)
	}
	if spec.NetSocket != "" {
		return nil, fmt.Errorf("firecracker: a guest network needs a TAP device (spec.NetTap), not a stream socket: %w", errdefs.ErrInvalidArgument)
	}
	bin, err := b.Binary()
	if err != nil {
		return nil, err
	}
	apiSock := filepath.Join(spec.Dir, APISocketName)
	vsockPath := filepath.Join(spec.Dir, VsockSocketName)
	for _, p := range []string{apiSock, vsockPath} {
		if len(p) > maxSocketPath {
			return nil, fmt.Errorf("firecracker: socket path %s is %d bytes, over the %d a Unix socket allows; use a shorter VM directory (%w)", p, len(p), maxSocketPath, errdefs.ErrInvalidArgument)
		}
	}
	if err := clearStaleSockets(ctx, apiSock, vsockPath); err != nil {
		return nil, err
	}
	consolePath := spec.ConsoleLog
	if consolePath == "" {
		consolePath = filepath.Join(spec.Dir, "console.log")
	}
	console, err := os.OpenFile(consolePath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("firecracker: open console log: %w", err)
	}
	id := SanitizeID(spec.ID)
	// Seccomp stays on: never --no-seccomp.
	cmd := exec.Command(bin, "--api-sock", apiSock, "--id", id)
	cmd.Dir = spec.Dir
	cmd.Stdin = nil // /dev/null: Firecracker must not touch our terminal
	cmd.Stdout = console
	cmd.Stderr = console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // no terminal signals
	if b.opts.KillWithParent {
		// Pdeathsig fires when the forking OS thread exits; the Go runtime
		// keeps threads alive unless a goroutine exits while locked to one.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	var tap *tapns.Link
	if spec.NetTap != "" {
		// Firecracker runs in a network namespace of its own whose only
		// device is the TAP; the supervisor's stack gets its frames.
		if tap, err = tapns.Wrap(cmd); err != nil {
			console.Close()
			return nil, err
		}
		defer tap.Close()
	}
	startErr := cmd.Start()
	console.Close() // the child holds its own descriptor
	if tap != nil {
		tap.Started()
	}
	if startErr != nil {
		return nil, fmt.Errorf("firecracker: start %s: %w", bin, startErr)
	}
	client := NewClient(apiSock)
	client.Timeout = b.opts.CallTimeout
	m := &Machine{
		id:      id,
		apiSock: apiSock,
		vsock:   vsockPath,
		console: consolePath,
		pid:     cmd.Process.Pid,
		proc:    cmd.Process,
		client:  client,
		log:     b.log.With("vm", id, "pid", cmd.Process.Pid),
		done:    make(chan struct{}),
	}
	go m.wait(cmd)
	m.log.Debug("firecracker started", "binary", bin, "api_socket", apiSock)

	fail := func(err error) (*Machine, error) {
		err = fmt.Errorf("firecracker: start VM %s: %w", id, err)
		if kerr := m.Kill(); kerr != nil {
			return nil, errors.Join(err, fmt.Errorf("clean up: %w", kerr))
		}
		return nil, err
	}
	if tap != nil {
		if err := tap.Attach(ctx, spec.NetAttach); err != nil {
			return fail(m.withExit(err))
		}
	}
	info, err := m.waitAPI(ctx, b.opts.ReadyTimeout)
	if err != nil {
		return fail(err)
	}
	m.version = info.VMMVersion
	if w := versionWarning(info.VMMVersion); w != "" {
		m.warning = w
		m.log.Warn(w)
	}
	m.spec = spec
	if spec.Restore != nil {
		// A fresh process loads the snapshot (before any boot resource)
		// and resumes it; the vsock socket is this VM's, not the saved one.
		if err := client.LoadSnapshot(ctx, LoadFor(spec, vsockPath)); err != nil {
			return fail(m.withExit(err))
		}
		m.log.Info("VM restored", "state", spec.Restore.StateFile, "version", m.version)
		return m, nil
	}
	if err := PlanFor(spec, vsockPath).Apply(ctx, client); err != nil {
		return fail(m.withExit(err))
	}
	if err := client.Action(ctx, ActionInstanceStart); err != nil {
		return fail(m.withExit(err))
	}
	m.log.Info("VM started", "cpus", spec.CPUs, "memory_mib", spec.MemoryMiB, "version", m.version)
	return m, nil
}

// clearStaleSockets removes sockets a dead firecracker left in the VM
// directory (Firecracker refuses to bind an existing path), but refuses to
// touch a live one.
func clearStaleSockets(ctx context.Context, apiSock, vsockPath string) error {
	if _, err := os.Lstat(apiSock); err == nil {
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		if c, err := d.DialContext(ctx, "unix", apiSock); err == nil {
			c.Close()
			return fmt.Errorf("firecracker: %s is served by a running firecracker; stop that VM first (%w)", apiSock, errdefs.ErrConflict)
		}
	}
	for _, p := range []string{apiSock, vsockPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("firecracker: remove stale socket: %w", err)
		}
	}
	return nil
}

// Machine is a running Firecracker microVM started by this process.
type Machine struct {
	id, apiSock, vsock, console string
	pid                         int
	proc                        *os.Process
	client                      *Client
	log                         *slog.Logger
	version, warning            string
	spec                        vmm.Spec

	done       chan struct{}
	killed     atomic.Bool
	mu         sync.Mutex
	exitStatus string // "exited with status N" / "killed by signal N"
	exitReason string
}

var _ vmm.Machine = (*Machine)(nil)

func (m *Machine) wait(cmd *exec.Cmd) {
	err := cmd.Wait()
	status := describeExit(cmd.ProcessState, err)
	reason := status
	abnormal := cmd.ProcessState == nil || !cmd.ProcessState.Success()
	if abnormal && !m.killed.Load() {
		if line := vmm.ConsoleTail(m.console, 1); line != "" {
			reason += ": " + line
		}
	}
	m.mu.Lock()
	m.exitStatus, m.exitReason = status, reason
	m.mu.Unlock()
	m.client.Close()
	removeSockets(m.apiSock, m.vsock)
	m.log.Debug("firecracker exited", "reason", reason)
	close(m.done)
}

func describeExit(ps *os.ProcessState, err error) string {
	if ps == nil {
		return fmt.Sprintf("lost: %v", err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("killed by signal %d", int(ws.Signal()))
	}
	return fmt.Sprintf("exited with status %d", ps.ExitCode())
}

func removeSockets(paths ...string) {
	for _, p := range paths {
		os.Remove(p)
	}
}

// waitAPI polls until the API socket exists and GET / answers, racing the
// process's exit, ctx and the ready timeout.
func (m *Machine) waitAPI(ctx context.Context, timeout time.Duration) (InstanceInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := time.Millisecond
	var last error
	for {
		if _, err := os.Stat(m.apiSock); err != nil {
			last = err
		} else {
			actx, acancel := context.WithTimeout(ctx, time.Second)
			info, err := m.client.InstanceInfo(actx)
			acancel()
			if err == nil {
				return info, nil
			}
			last = err
		}
		t := time.NewTimer(delay)
		select {
		case <-m.done:
			t.Stop()
			return InstanceInfo{}, m.exitError("before its API socket was ready")
		case <-ctx.Done():
			t.Stop()
			// The process may have died in the same instant.
			select {
			case <-m.done:
				return InstanceInfo{}, m.exitError("before its API socket was ready")
			default:
			}
			return InstanceInfo{}, fmt.Errorf("API socket %s not ready: %w (last error: %v)", m.apiSock, context.Cause(ctx), last)
		case <-t.C:
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// exitError describes an exit that happened while Start waited.
func (m *Machine) exitError(when string) error {
	m.mu.Lock()
	status := m.exitStatus
	m.mu.Unlock()
	msg := fmt.Sprintf("firecracker %s %s", status, when)
	if tail := vmm.ConsoleTail(m.console, 10); tail != "" {
		msg += "; console log " + m.console + " ends:\n" + tail
	}
	return fmt.Errorf("%w: %s", vmm.ErrVMExited, msg)
}

// withExit adds the exit to an API error when the process died during the
// call (e.g. InstanceStart with a kernel Firecracker cannot load).
func (m *Machine) withExit(err error) error {
	select {
	case <-m.done:
		return errors.Join(err, m.exitError("during the call"))
	default:
		return err
	}
}

// PID is the firecracker process id.
func (m *Machine) PID() int { return m.pid }

// AgentSocket is Firecracker's vsock Unix socket (hybrid vsock).
func (m *Machine) AgentSocket() string { return m.vsock }

// APISocket is the Firecracker API socket.
func (m *Machine) APISocket() string { return m.apiSock }

// API returns the client for this VM's Firecracker API (pause, resume,
// snapshots).
func (m *Machine) API() *Client { return m.client }

// Done is closed when the firecracker process has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// ExitReason says how firecracker ended, e.g. "exited with status 0" or
// "killed by signal 9", followed by the last console line when the end was
// abnormal and not requested. It is empty while the VM runs.
func (m *Machine) ExitReason() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exitReason
}

// killWait bounds the wait for a SIGKILLed process to be reaped.
const killWait = 10 * time.Second

// Kill SIGKILLs firecracker (the guest gets no shutdown), waits for it to
// exit and removes its sockets. Killing an exited VM is not an error.
func (m *Machine) Kill() error {
	select {
	case <-m.done:
		removeSockets(m.apiSock, m.vsock)
		return nil
	default:
	}
	m.killed.Store(true)
	// os.Process.Signal uses a pidfd where available, so it cannot hit a
	// recycled pid.
	if err := m.proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("firecracker: kill pid %d: %w", m.pid, err)
	}
	select {
	case <-m.done:
	case <-time.After(killWait):
		return fmt.Errorf("firecracker: pid %d still running %v after SIGKILL (%w)", m.pid, killWait, errdefs.ErrTimeout)
	}
	removeSockets(m.apiSock, m.vsock)
	return nil
}

// Shutdown asks the guest to stop with SendCtrlAltDel (the guest needs an
// i8042 keyboard driver; Firecracker exits on the resulting reset) and waits
// until firecracker exits or ctx ends. The guest agent normally powers the
// VM off itself; this is the fallback before Kill.
func (m *Machine) Shutdown(ctx context.Context) error {
	select {
	case <-m.done:
		return nil
	default:
	}
	if err := m.client.Action(ctx, ActionSendCtrlAltDel); err != nil {
		select {
		case <-m.done: // exited while we asked
			return nil
		default:
		}
		return fmt.Errorf("firecracker: shutdown VM %s: %w", m.id, err)
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("firecracker: VM %s did not stop after Ctrl-Alt-Del: %w", m.id, context.Cause(ctx))
	}
}

// Describe returns backend details for status output.
func (m *Machine) Describe() map[string]string {
	d := map[string]string{
		"backend":    Name,
		"version":    m.version,
		"api_socket": m.apiSock,
		"seccomp":    "default filters",
	}
	if m.warning != "" {
		d["warning"] = m.warning
	}
	return d
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
