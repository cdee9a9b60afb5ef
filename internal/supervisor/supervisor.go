// Package supervisor is the small per-VM host process that owns a VMM.
//
// hearth has no central daemon. A persistent VM is started by a CLI (or
// SDK) call that spawns `hearth _supervise DIR`, a detached process which
// boots the VMM as its child, holds what the VMM cannot share (QEMU's single
// serial connection, multiplexed by package serialmux), waits for the guest
// agent's handshake, reports readiness to its starter through a pipe, and
// then waits: when the VMM exits it records why in DIR/vm.json. The
// starter returns as soon as the guest is ready; the VM outlives it.
//
// The VMM never outlives its supervisor: it is started with a parent-death
// signal (SIGKILL), so a supervisor killed outright (kill -9, OOM) takes its
// VMM with it instead of leaving a VM nobody can reach. DIR/vm.json records
// both processes' identities (pid, start time, host boot id; package proc)
// so that nothing but these very processes is ever signalled.
package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/netstack"
	"github.com/hearthvm/hearth/internal/proc"
	"github.com/hearthvm/hearth/internal/tapns"
	"github.com/hearthvm/hearth/internal/vmm"
	"golang.org/x/sys/unix"
)

// Config is what a supervisor boots; it is written to DIR/supervisor.json.
type Config struct {
	Backend     string        `json:"backend"`
	Spec        vmm.Spec      `json:"spec"`
	BootTimeout time.Duration `json:"boot_timeout"`
	CacheDir    string        `json:"cache_dir"`
	// Network, if set, runs the guest network stack (package netstack)
	// in this supervisor and gives the guest a NIC on it.
	Network *netstack.Config `json:"network,omitempty"`
}

// Status is DIR/vm.json: the live state of a supervised VM.
type Status struct {
	State         string `json:"state"` // "booting", "running", "exited"
	SupervisorPID int    `json:"supervisor_pid"`
	VMMPID        int    `json:"vmm_pid,omitempty"`
	// SupervisorStart and VMMStart are the processes' start times (clock
	// ticks after boot, /proc/PID/stat field 22) and HostBootID the host's
	// boot id: with the pids they make the identities checked before any
	// signal (see Supervisor and VMM).
	SupervisorStart uint64            `json:"supervisor_start_ticks,omitempty"`
	VMMStart        uint64            `json:"vmm_start_ticks,omitempty"`
	HostBootID      string            `json:"host_boot_id,omitempty"`
	Backend         string            `json:"backend"`
	Details         map[string]string `json:"details,omitempty"`
	AgentSocket     string            `json:"agent_socket,omitempty"`
	StartedAt       time.Time         `json:"started_at"`
	ReadyAt         *time.Time        `json:"ready_at,omitempty"`
	// BootID is the guest's boot id (HostBootID is the host's).
	BootID       string     `json:"boot_id,omitempty"`
	AgentVersion string     `json:"agent_version,omitempty"`
	ExitedAt     *time.Time `json:"exited_at,omitempty"`
	ExitReason   string     `json:"exit_reason,omitempty"`
	// Clean is true when the guest shut down on request.
	Clean bool   `json:"clean,omitempty"`
	Error string `json:"error,omitempty"`
}

// Supervisor is the supervisor process's recorded identity.
func (s *Status) Supervisor() proc.Identity {
	return proc.Identity{PID: s.SupervisorPID, StartTicks: s.SupervisorStart, BootID: s.HostBootID}
}

// VMM is the VMM process's recorded identity (zero until it runs).
func (s *Status) VMM() proc.Identity {
	return proc.Identity{PID: s.VMMPID, StartTicks: s.VMMStart, BootID: s.HostBootID}
}

// ExitSuspended is the exit reason of a VM stopped by a suspend.
const ExitSuspended = "suspended (memory saved)"

const (
	configFile = "supervisor.json"
	statusFile = "vm.json"
	// LogFile is the supervisor's own log in DIR.
	LogFile = "supervisor.log"
)

// ControlHandler serves one connection on the VM's control socket
// (DIR/ctl.sock), e.g. to run commands that outlive the CLI call that
// started them. agentSocket is the guest agent's socket.
type ControlHandler func(ctx context.Context, conn net.Conn, dir, agentSocket string)

// BackendFactory builds the named backend for a supervisor.
type BackendFactory func(name, cacheDir string, killWithParent bool) (vmm.Backend, error)

// Boot starts spec on b and waits for the guest agent's handshake. On
// failure nothing is left running and the error carries the console tail.
func Boot(ctx context.Context, b vmm.Backend, spec vmm.Spec, timeout time.Duration) (vmm.Machine, *guestproto.Hello, error) {
	if timeout <= 0 {
		timeout = vmm.DefaultBootTimeout
	}
	m, err := b.Start(ctx, spec)
	if err != nil {
		return nil, nil, errdefs.Mark(withConsole(fmt.Errorf("start %s VM: %w", b.Name(), err), spec.ConsoleLog), errdefs.ErrUnavailable)
	}
	wctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("no answer within %s", timeout))
	defer cancel()
	c := &guest.Client{Socket: m.AgentSocket()}
	hello, err := c.WaitReady(wctx, m.Done())
	if err != nil {
		m.Kill()
		select {
		case <-m.Done():
			err = fmt.Errorf("%w (VMM %s)", err, m.ExitReason())
		default:
		}
		return nil, nil, errdefs.Mark(withConsole(fmt.Errorf("boot %s: %w", spec.ID, err), spec.ConsoleLog), errdefs.ErrUnavailable)
	}
	if spec.Restore != nil {
		// A restored guest is fixed before anyone uses it: clock, random
		// pool, and (a fork) identity.
		if _, err := c.Restored(wctx, spec.ID, HostnameArg(spec.KernelArgs)); err != nil {
			m.Kill()
			return nil, nil, errdefs.Mark(withConsole(fmt.Errorf("restore %s: %w", spec.ID, err), spec.ConsoleLog), errdefs.ErrUnavailable)
		}
	}
	return m, hello, nil
}

// HostnameArg returns the hearth.hostname= value of kernel arguments.
func HostnameArg(args []string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "hearth.hostname="); ok {
			return v
		}
	}
	return ""
}

func withConsole(err error, console string) error {
	tail := strings.TrimSpace(vmm.ConsoleTail(console, 15))
	if tail == "" {
		return fmt.Errorf("%w (console log %s is empty)", err, console)
	}
	return fmt.Errorf("%w\nconsole log %s ends with:\n%s", err, console, indent(tail))
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// ReadStatus reads DIR/vm.json.
func ReadStatus(dir string) (*Status, error) {
	b, err := os.ReadFile(filepath.Join(dir, statusFile))
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, statusFile), err)
	}
	return &s, nil
}

func writeStatus(dir string, s *Status) error {
	return atomicfile.WriteJSON(filepath.Join(dir, statusFile), s, 0o600)
}

// Launch starts a supervisor for cfg in dir by running exe (the hearth
// binary) as `exe _supervise dir`, detached from the caller's session, and
// waits until the guest answers or the supervisor fails. The error of a
// failed boot carries the console tail.
func Launch(ctx context.Context, exe, dir string, cfg Config) (*Status, error) {
	if err := atomicfile.WriteJSON(filepath.Join(dir, configFile), cfg, 0o600); err != nil {
		return nil, fmt.Errorf("write supervisor config: %w", err)
	}
	os.Remove(filepath.Join(dir, statusFile))
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	logf, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		pw.Close()
		return nil, err
	}
	cmd := exec.Command(exe, "_supervise", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC=50")
	err = cmd.Start()
	pw.Close()
	logf.Close()
	if err != nil {
		return nil, fmt.Errorf("start supervisor: %w", err)
	}
	go cmd.Wait() // reap it if it exits while we run; it normally outlives us
	type result struct {
		msg readyMsg
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var m readyMsg
		err := json.NewDecoder(pr).Decode(&m)
		ch <- result{m, err}
	}()
	select {
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		return nil, fmt.Errorf("waiting for the VM to boot: %w", context.Cause(ctx))
	case r := <-ch:
		if r.err != nil {
			tail := strings.TrimSpace(vmm.ConsoleTail(filepath.Join(dir, LogFile), 10))
			return nil, fmt.Errorf("supervisor exited before the VM was ready (%v); its log %s ends with:\n%s: %w", r.err, filepath.Join(dir, LogFile), indent(tail), errdefs.ErrUnavailable)
		}
		if r.msg.Error != "" {
			// The supervisor's error keeps its kind across the pipe (a boot
			// failure is unavailable, as it is for run).
			return nil, &errdefs.KindError{Kind: r.msg.Kind, Msg: r.msg.Error}
		}
		return ReadStatus(dir)
	}
}

// errStarterGone ends a boot whose starter went away.
var errStarterGone = errors.New("boot abandoned: the process that started the VM exited before it was ready")

// watchStarter calls gone if the starter, the reader of the ready pipe,
// goes away (its end of the pipe closes: POLLERR on ours). The returned
// function stops watching, and returns once the watch has ended.
func watchStarter(ready io.Writer, gone func()) func() {
	f, ok := ready.(*os.File)
	if !ok {
		return func() {}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return func() {}
	}
	wr, ww, err := os.Pipe()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rc.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd)}, {Fd: int32(wr.Fd()), Events: unix.POLLIN}}
			for {
				_, err := unix.Poll(fds, -1)
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if err == nil && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
					gone()
				}
				return
			}
		})
	}()
	return func() {
		ww.Write([]byte{0})
		<-done
		wr.Close()
		ww.Close()
	}
}

type readyMsg struct {
	OK    bool         `json:"ok"`
	Error string       `json:"error,omitempty"`
	Kind  errdefs.Kind `json:"kind,omitempty"`
}

// Run is the body of `hearth _supervise DIR`. ready is the pipe to the
// starter (fd 3); it gets one JSON line and is closed.
func Run(ctx context.Context, dir string, ready io.WriteCloser, factory BackendFactory, control ControlHandler, log *slog.Logger) error {
	report := func(m readyMsg) {
		if ready != nil {
			json.NewEncoder(ready).Encode(m)
			ready.Close()
			ready = nil
		}
	}
	fail := func(err error) error {
		report(readyMsg{Error: err.Error(), Kind: errdefs.Classify(err)})
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return fail(fmt.Errorf("read supervisor config: %w", err))
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fail(fmt.Errorf("parse supervisor config: %w", err))
	}
	// The VMM gets a parent-death signal (killWithParent): it dies with
	// this process. Linux sends that signal when the *thread* that forked
	// the VMM exits, and the Go runtime ends a thread when a goroutine
	// locked to it exits; keeping this goroutine locked to its thread for
	// the supervisor's whole life keeps that thread alive, and no other
	// goroutine runs on it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	backend, err := factory(cfg.Backend, cfg.CacheDir, true)
	if err != nil {
		return fail(err)
	}
	self, err := proc.Self()
	if err != nil {
		return fail(err)
	}
	st := &Status{State: "booting", SupervisorPID: self.PID, SupervisorStart: self.StartTicks, HostBootID: self.BootID,
		Backend: backend.Name(), StartedAt: time.Now().UTC()}
	if err := writeStatus(dir, st); err != nil {
		return fail(fmt.Errorf("write %s: %w", statusFile, err))
	}

	// Signals: TERM/INT ask for a clean guest shutdown.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	bootCtx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case sig := <-sigs:
			cancel(fmt.Errorf("signal %s", sig))
		case <-bootCtx.Done():
		}
	}()
	// A starter that dies before the VM is ready (a create or start killed
	// with -9) takes the boot with it: nobody would use that VM.
	unwatch := watchStarter(ready, func() { cancel(errStarterGone) })
	if cfg.Network != nil {
		ns, err := netstack.Start(*cfg.Network, dir, log)
		if err != nil {
			unwatch()
			cancel(nil)
			now := time.Now().UTC()
			st.State, st.ExitedAt, st.ExitReason, st.Error = "exited", &now, "boot failed", err.Error()
			writeStatus(dir, st)
			return fail(err)
		}
		defer ns.Close()
		if tapLink(backend.Name(), cfg.Network.Link) {
			// A TAP device in the VMM's own network namespace (package
			// tapns): Firecracker's only way, QEMU's on request.
			cfg.Spec.NetTap = tapns.Name
			cfg.Spec.NetAttach = func(sock *os.File) {
				go func() {
					if err := ns.ServePackets(ctx, sock); err != nil {
						log.Warn("guest network link ended", "err", err)
					}
				}()
			}
		} else {
			cfg.Spec.NetSocket = ns.FrameSocketPath()
		}
		cfg.Spec.KernelArgs = append(cfg.Spec.KernelArgs, netstack.KernelArg())
	}
	m, hello, err := Boot(bootCtx, backend, cfg.Spec, cfg.BootTimeout)
	unwatch()
	gone := errors.Is(context.Cause(bootCtx), errStarterGone)
	cancel(nil)
	if err == nil && gone {
		m.Kill()
		<-m.Done()
		err = errStarterGone
	}
	if err != nil {
		now := time.Now().UTC()
		st.State, st.ExitedAt, st.ExitReason, st.Error = "exited", &now, "boot failed", err.Error()
		if gone {
			st.ExitReason, st.Error = errStarterGone.Error(), ""
		}
		writeStatus(dir, st)
		return fail(err)
	}
	// The VMM is our child and answered just now: its pid still names it
	// (had it exited since, proc.Of fails or the boot is reported failed).
	vid, err := proc.Of(m.PID())
	if err != nil {
		m.Kill()
		now := time.Now().UTC()
		st.State, st.ExitedAt, st.ExitReason, st.Error = "exited", &now, "boot failed", err.Error()
		writeStatus(dir, st)
		return fail(fmt.Errorf("record the VMM's identity: %w", err))
	}
	now := time.Now().UTC()
	st.State, st.VMMPID, st.VMMStart, st.Details, st.AgentSocket = "running", m.PID(), vid.StartTicks, m.Describe(), m.AgentSocket()
	st.ReadyAt, st.BootID, st.AgentVersion = &now, hello.BootID, hello.AgentVersion
	if err := writeStatus(dir, st); err != nil {
		m.Kill()
		return fail(err)
	}
	if control != nil {
		ctlPath := filepath.Join(dir, "ctl.sock")
		os.Remove(ctlPath)
		ln, err := net.Listen("unix", ctlPath)
		if err != nil {
			m.Kill()
			return fail(fmt.Errorf("control socket: %w", err))
		}
		os.Chmod(ctlPath, 0o600)
		cctx, ccancel := context.WithCancel(context.Background())
		defer ccancel()
		go func() {
			<-m.Done()
			ccancel()
			ln.Close()
			os.Remove(ctlPath)
		}()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go control(cctx, c, dir, m.AgentSocket())
			}
		}()
	}
	// Published ports: the workspace publishes them through ports.sock.
	fwd := NewForwarder(&guest.Client{Socket: m.AgentSocket()}, log)
	stopPorts, err := listenPorts(dir, fwd)
	if err != nil {
		m.Kill()
		return fail(err)
	}
	defer stopPorts()
	var suspended atomic.Bool
	stopSave, err := listenSave(dir, &saver{m: m, spec: cfg.Spec, log: log, onStop: func() {
		suspended.Store(true)
		MarkClean(dir)
	}})
	if err != nil {
		m.Kill()
		return fail(err)
	}
	defer stopSave()
	if cfg.Spec.MemoryFile != "" {
		// The guest's RAM is worth nothing once its VMM is gone (a
		// suspend moved it away first).
		defer os.Remove(cfg.Spec.MemoryFile)
	}
	report(readyMsg{OK: true})
	// An idle workspace should cost the host as little as possible: boot
	// and bursts of traffic (a seed, an export) grow the heap, so keep a
	// soft limit and hand freed memory back to the OS while idle.
	debug.SetMemoryLimit(8 << 20)
	debug.FreeOSMemory()
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				debug.FreeOSMemory()
			case <-m.Done():
				return
			}
		}
	}()
	log.Info("VM ready", "pid", m.PID(), "boot_id", hello.BootID)

	clean := false
	for {
		select {
		case sig := <-sigs:
			log.Info("signal: shutting the guest down", "signal", sig)
			clean = Shutdown(context.Background(), m, 20*time.Second) == nil
			continue
		case <-m.Done():
		}
		break
	}
	end := time.Now().UTC()
	st.State, st.ExitedAt, st.ExitReason = "exited", &end, m.ExitReason()
	if cur, err := ReadStatus(dir); err == nil && cur.Clean {
		clean = true
	}
	st.Clean = clean
	if clean {
		st.ExitReason = "clean shutdown"
	}
	if suspended.Load() {
		st.ExitReason = ExitSuspended
	}
	log.Info("VMM exited", "reason", st.ExitReason)
	return writeStatus(dir, st)
}

// Shutdown asks the guest to power off and waits for the VMM to exit,
// killing it after grace.
func Shutdown(ctx context.Context, m vmm.Machine, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	c := &guest.Client{Socket: m.AgentSocket()}
	_, err := c.Call(ctx, &guestproto.Request{Op: guestproto.OpShutdown})
	if err == nil {
		select {
		case <-m.Done():
			return nil
		case <-ctx.Done():
			err = fmt.Errorf("guest did not power off within %s", grace)
		}
	}
	m.Kill()
	return err
}

// MarkClean records in DIR/vm.json that the coming VMM exit is a requested
// shutdown (called by whoever asks the guest to shut down).
func MarkClean(dir string) error {
	s, err := ReadStatus(dir)
	if err != nil {
		return err
	}
	s.Clean = true
	return writeStatus(dir, s)
}

// tapLink says whether the guest's NIC is a TAP device (package tapns)
// rather than QEMU's stream socket: always on Firecracker, and on QEMU when
// the workspace was made with HEARTH_NET_LINK=tap (the Firecracker path,
// testable where Firecracker cannot run).
func tapLink(backend, link string) bool {
	return backend == "firecracker" || link == "tap"
}
