// Package qemu is the QEMU backend: the `microvm` machine, accelerated with
// KVM when a probe boot shows KVM works here, software emulation (TCG)
// otherwise. QEMU offers no Firecracker-style vsock without the host's
// vhost-vsock module, so the guest agent is reached over a named
// virtio-serial port whose single connection this package holds and
// multiplexes (package serialmux) behind a hybrid-vsock Unix socket.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/qmp"
	"github.com/hearthvm/hearth/internal/serialmux"
	"github.com/hearthvm/hearth/internal/tapns"
	"github.com/hearthvm/hearth/internal/vmm"
)

// Accel is a QEMU accelerator.
type Accel string

// Accelerators.
const (
	AccelKVM Accel = "kvm"
	AccelTCG Accel = "tcg"
)

// GuestMAC is the guest NIC's MAC address (QEMU's default one).
const GuestMAC = "52:54:00:12:34:56"

// Options configure the backend.
type Options struct {
	// Binary is the QEMU executable; qemu-system-x86_64 from PATH when empty.
	Binary string
	// Accel forces an accelerator; empty means decide by Probe (cached in CacheDir).
	Accel Accel
	// CacheDir holds the cached KVM probe result.
	CacheDir string
	// KillWithParent kills the VMM when the calling process dies (for
	// throwaway VMs); workspaces leave it false so they outlive the CLI.
	KillWithParent bool
	Log            *slog.Logger
}

// Backend boots QEMU microvm machines.
type Backend struct {
	opts Options
}

var _ vmm.Backend = (*Backend)(nil)

// New returns a QEMU backend.
func New(opts Options) *Backend {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Backend{opts: opts}
}

// Name implements vmm.Backend.
func (b *Backend) Name() string { return "qemu" }

func (b *Backend) binary() (string, error) {
	name := b.opts.Binary
	if name == "" {
		name = "qemu-system-x86_64"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: install it with `apt-get install qemu-system-x86`", name)
	}
	return p, nil
}

// Check implements vmm.Backend. A passing check is cached in CacheDir,
// keyed by the binary's path, size and mtime: `-machine help` costs a
// process start on every boot otherwise.
func (b *Backend) Check(ctx context.Context) error {
	bin, err := b.binary()
	if err != nil {
		return err
	}
	var stamp, cache string
	if st, err := os.Stat(bin); err == nil && b.opts.CacheDir != "" {
		stamp = fmt.Sprintf("%s %d %d", bin, st.Size(), st.ModTime().UnixNano())
		cache = filepath.Join(b.opts.CacheDir, "qemu-check")
		if got, err := os.ReadFile(cache); err == nil && string(got) == stamp {
			return nil
		}
	}
	out, err := exec.CommandContext(ctx, bin, "-machine", "help").Output()
	if err != nil {
		return fmt.Errorf("%s -machine help: %w", bin, err)
	}
	if !strings.Contains(string(out), "microvm") {
		return fmt.Errorf("%s lacks the microvm machine type: install a QEMU ≥ 4.2 (Debian 12's qemu-system-x86 has it)", bin)
	}
	if cache != "" {
		os.MkdirAll(b.opts.CacheDir, 0o755)
		tmp := fmt.Sprintf("%s.%d", cache, os.Getpid())
		if os.WriteFile(tmp, []byte(stamp), 0o644) == nil {
			os.Rename(tmp, cache)
		}
	}
	return nil
}

// Version returns QEMU's version line.
func (b *Backend) Version(ctx context.Context) (string, error) {
	bin, err := b.binary()
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// machine is a running QEMU.
type machine struct {
	spec    vmm.Spec
	bin     string
	qmpPath string
	qmpMu   sync.Mutex
	qmp     *qmp.Client
	cmd     *exec.Cmd
	accel   Accel
	sock    string
	mux     *serialmux.Host
	pipe    *os.File
	ln      net.Listener
	done    chan struct{}
	reason  string
	console string
}

func (m *machine) PID() int              { return m.cmd.Process.Pid }
func (m *machine) AgentSocket() string   { return m.sock }
func (m *machine) Done() <-chan struct{} { return m.done }
func (m *machine) ExitReason() string    { return m.reason }
func (m *machine) Describe() map[string]string {
	return map[string]string{"backend": "qemu", "accel": string(m.accel), "machine": "microvm"}
}

func (m *machine) Kill() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	return nil
}

// tscKHz returns the host TSC rate for the guest's command line: under
// TCG about one boot in five hangs calibrating the TSC unless it is given.
func tscKHz() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "cpu MHz") {
				_, v, _ := strings.Cut(line, ":")
				var mhz float64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f", &mhz); err == nil && mhz > 100 {
					return int(mhz * 1000)
				}
			}
		}
	}
	return 2000000
}

// Args returns QEMU's command line for spec (without the binary). The agent
// serial chardev uses fd 3, which Start passes.
func Args(spec vmm.Spec, accel Accel) []string {
	cmdline := []string{"console=ttyS0", "quiet", "panic=-1", "reboot=t", "i8042.noaux", "i8042.nomux", "i8042.dumbkbd"}
	if accel == AccelTCG {
		cmdline = append(cmdline, fmt.Sprintf("tsc_early_khz=%d", tscKHz()), "tsc=reliable")
	}
	cmdline = append(cmdline, spec.KernelArgs...)
	machine := "microvm,x-option-roms=off,rtc=on"
	var mem []string
	if spec.MemoryFile != "" {
		// Guest RAM in a shared file: a memory snapshot copies the file
		// (sparsely) and migrates only the device state (x-ignore-shared).
		machine += ",memory-backend=mem"
		mem = []string{"-object", fmt.Sprintf("memory-backend-file,id=mem,size=%dM,mem-path=%s,share=on", spec.MemoryMiB, spec.MemoryFile)}
	}
	args := []string{
		"-M", machine,
		"-m", fmt.Sprint(spec.MemoryMiB),
		"-smp", fmt.Sprint(spec.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
		"-no-reboot",
		"-qmp", "unix:" + QMPSocket(spec) + ",server=on,wait=off",
	}
	args = append(args, mem...)
	args = append(args,
		"-chardev", "file,id=con,path="+spec.ConsoleLog+",append=on",
		"-serial", "chardev:con",
		"-kernel", spec.Kernel,
		"-initrd", spec.Initrd,
		"-append", strings.Join(cmdline, " "),
		"-drive", "id=root,file="+spec.RootFS+",format=raw,if=none,readonly=on",
		"-device", "virtio-blk-device,drive=root",
	)
	if spec.DataDisk != "" {
		args = append(args,
			"-drive", "id=data,file="+spec.DataDisk+",format=raw,if=none,cache=writeback,discard=unmap",
			"-device", "virtio-blk-device,drive=data")
	}
	for i, d := range spec.ExtraDisks {
		drive := fmt.Sprintf("id=disk%d,file=%s,format=raw,if=none,cache=writeback", i+1, d.Path)
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		args = append(args, "-drive", drive, "-device", fmt.Sprintf("virtio-blk-device,drive=disk%d", i+1))
	}
	if spec.NetSocket != "" {
		// The supervisor's user-space network stack (package netstack):
		// QEMU 7.2's stream netdev, 4-byte big-endian length per frame.
		args = append(args,
			"-netdev", "stream,id=net0,server=off,addr.type=unix,addr.path="+spec.NetSocket,
			"-device", "virtio-net-device,netdev=net0,mac="+GuestMAC)
	} else if spec.NetTap != "" {
		// The TAP device package tapns made in QEMU's own network
		// namespace: the path Firecracker takes, through the same stack.
		args = append(args,
			"-netdev", "tap,id=net0,ifname="+spec.NetTap+",script=no,downscript=no",
			"-device", "virtio-net-device,netdev=net0,mac="+GuestMAC)
	}
	args = append(args,
		"-device", "virtio-rng-device",
		"-chardev", "socket,id=agent,fd=3",
		"-device", "virtio-serial-device",
		"-device", "virtserialport,chardev=agent,name="+guestproto.SerialPortName,
	)
	if accel == AccelKVM {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	if spec.Restore != nil {
		args = append(args, "-incoming", "defer")
	}
	return args
}

// QMPSocket is where QEMU's monitor (QMP) listens for a VM of spec.
func QMPSocket(spec vmm.Spec) string { return filepath.Join(spec.Dir, "qmp.sock") }

// Start implements vmm.Backend.
func (b *Backend) Start(ctx context.Context, spec vmm.Spec) (_ vmm.Machine, err error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	bin, err := b.binary()
	if err != nil {
		return nil, err
	}
	accel := b.opts.Accel
	if accel == "" {
		accel = b.Probe(ctx, spec.Kernel)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "agent-serial")
	theirs := os.NewFile(uintptr(fds[1]), "agent-serial-qemu")
	defer theirs.Close()

	cmd := exec.Command(bin, Args(spec, accel)...)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Dir = spec.Dir
	logf, err := os.OpenFile(filepath.Join(spec.Dir, "qemu.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		ours.Close()
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if b.opts.KillWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	var tap *tapns.Link
	if spec.NetTap != "" {
		if tap, err = tapns.Wrap(cmd); err != nil {
			ours.Close()
			return nil, err
		}
		defer tap.Close()
	}
	err = cmd.Start()
	if tap != nil {
		tap.Started()
	}
	if err != nil {
		ours.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	m := &machine{cmd: cmd, accel: accel, pipe: ours, done: make(chan struct{}), console: spec.ConsoleLog,
		qmpPath: QMPSocket(spec), spec: spec, bin: bin}
	go func() {
		werr := cmd.Wait()
		m.reason = exitReason(cmd, werr, filepath.Join(spec.Dir, "qemu.log"))
		ours.Close()
		close(m.done)
	}()
	defer func() {
		if err != nil {
			err = errors.Join(err, m.Kill())
		}
	}()
	if tap != nil {
		if err := tap.Attach(ctx, spec.NetAttach); err != nil {
			return nil, err
		}
	}
	if spec.Restore != nil {
		// The guest resumes in the session it was saved with: load its
		// devices, run it, and resync the agent channel.
		if err := m.incoming(ctx, spec.Restore.StateFile); err != nil {
			return nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m.mux, err = serialmux.NewHostResync(rctx, ours)
		cancel()
	} else {
		m.mux, err = serialmux.NewHost(ours)
	}
	if err != nil {
		return nil, err
	}
	m.sock = filepath.Join(spec.Dir, "agent.sock")
	os.Remove(m.sock)
	m.ln, err = net.Listen("unix", m.sock)
	if err != nil {
		return nil, fmt.Errorf("listen on agent socket: %w", err)
	}
	os.Chmod(m.sock, 0o600)
	go func() {
		m.mux.Serve(context.Background(), m.ln)
	}()
	go func() {
		<-m.done
		m.ln.Close()
		m.mux.Close()
		os.Remove(m.sock)
	}()
	b.opts.Log.Debug("qemu started", "pid", cmd.Process.Pid, "accel", accel, "id", spec.ID)
	return m, nil
}

func exitReason(cmd *exec.Cmd, werr error, logPath string) string {
	st := cmd.ProcessState
	var r string
	switch {
	case st == nil:
		r = fmt.Sprintf("wait failed: %v", werr)
	case st.Exited():
		r = fmt.Sprintf("exited with status %d", st.ExitCode())
	default:
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r = fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
		} else {
			r = st.String()
		}
	}
	if st == nil || st.ExitCode() != 0 {
		if tail := strings.TrimSpace(vmm.ConsoleTail(logPath, 3)); tail != "" {
			r += ": " + tail
		}
	}
	return r
}
