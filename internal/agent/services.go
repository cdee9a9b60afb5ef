package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
	"golang.org/x/sys/unix"
)

// Services are named, long-running processes the agent supervises: it
// starts them, keeps their output, runs their readiness probes, restarts
// them by their policy, and stops them on request. They live in the agent,
// independent of any stream; the host keeps their definitions and registers
// them again at every boot.
//
// Each service runs in its own session and, when the kernel offers cgroup
// v2, in its own cgroup (/sys/fs/cgroup/hearth-services/NAME): its process
// tree is the cgroup's members (else the session's members and their
// descendants). Port probes, stop and the clean-up after an exit work on
// that tree.

// Service limits.
const (
	maxServices       = 64
	serviceRingSize   = 1 << 20 // output kept per service
	serviceTailLines  = 20
	serviceTailBytes  = 4 << 10
	serviceMaxLine    = 64 << 10 // longer lines are matched in pieces
	serviceMaxWait    = time.Hour
	serviceCgroupRoot = "/sys/fs/cgroup/hearth-services"
	serviceNotifyDir  = "/run/hearth/notify"
)

// shuttingDown is set when the guest powers off: services are not
// restarted any more.
var shuttingDown atomic.Bool

func init() {
	register(guestproto.OpServiceStart, handleServiceStart)
	register(guestproto.OpServiceList, handleServiceList)
	register(guestproto.OpServiceShow, handleServiceShow)
	register(guestproto.OpServiceStop, handleServiceStop)
	register(guestproto.OpServiceRestart, handleServiceRestart)
	register(guestproto.OpServiceRemove, handleServiceRemove)
	register(guestproto.OpServiceWait, handleServiceWait)
	register(guestproto.OpServiceLogs, handleServiceLogs)
}

// serviceTable holds a Server's services.
type serviceTable struct {
	log  *slog.Logger
	mu   sync.Mutex
	svcs map[string]*service
	// proc and cgroupRoot are /proc and serviceCgroupRoot (tests change them).
	proc       string
	cgroupRoot string
	notifyDir  string
}

func newServiceTable(log *slog.Logger) *serviceTable {
	return &serviceTable{log: log, svcs: map[string]*service{}, proc: "/proc", cgroupRoot: serviceCgroupRoot, notifyDir: serviceNotifyDir}
}

func (t *serviceTable) get(name string) (*service, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sv, ok := t.svcs[name]
	if !ok {
		return nil, errorf(guestproto.CodeNotFound, "no service named %q (service_list lists the services)", name)
	}
	return sv, nil
}

// service is one supervised service.
type service struct {
	t      *serviceTable
	name   string
	spec   guestproto.ServiceSpec
	probes []*guestproto.Probe
	notify *notifySocket // set when a probe is notify
	// opMu serialises stop, restart and remove requests.
	opMu sync.Mutex

	mu        sync.Mutex
	state     string
	message   string
	restarts  int
	readyAt   time.Time
	nextStart time.Time
	lastExit  *guestproto.ServiceExit
	tracker   restartTracker
	run       *svcRun  // the current activation; nil when none
	proc      *svcProc // the current process; nil when none
	removed   bool
	changed   chan struct{} // closed and replaced on every change
	out       ring
}

// svcRun is one activation: starts and restarts until the service is
// stopped or ends for good.
type svcRun struct {
	stop     chan struct{} // closed to stop
	stopOnce sync.Once
	stopping bool           // under service.mu
	sig      syscall.Signal // the stop signal, under service.mu
	done     chan struct{}  // closed when the activation has ended
}

// svcProc is one process of a service with its probes' state.
type svcProc struct {
	cmd     *exec.Cmd
	pid     int
	cg      *cgroup
	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	pstates []*probeState
	// events nudge the probe of the same index (log, notify).
	events []chan struct{}
	// logMatched and notified are what log and notify probes check.
	logMatched []bool
	notified   bool
	status     string // the last STATUS= from sd_notify
	pumpDone   chan struct{}
}

func (sv *service) broadcastLocked() {
	close(sv.changed)
	sv.changed = make(chan struct{})
}

func (sv *service) setStateLocked(state, msg string) {
	if sv.state == state && sv.message == msg {
		return
	}
	sv.state, sv.message = state, msg
	if state == guestproto.ServiceReady && sv.readyAt.IsZero() {
		sv.readyAt = time.Now()
	}
	sv.broadcastLocked()
}

// start begins an activation and waits until its first process is
// started (or could not be).
func (sv *service) start() {
	sv.mu.Lock()
	r := &svcRun{stop: make(chan struct{}), done: make(chan struct{})}
	sv.run = r
	sv.readyAt = time.Time{}
	sv.tracker = restartTracker{p: policyOf(&sv.spec)}
	sv.mu.Unlock()
	spawned := make(chan struct{})
	go sv.loop(r, spawned)
	<-spawned
}

// loop runs an activation: start the process, wait for it, and restart it
// as the policy says.
func (sv *service) loop(r *svcRun, spawned chan struct{}) {
	defer close(r.done)
	first := true
	for {
		p, exit := sv.spawn(r)
		if first {
			close(spawned)
			first = false
		}
		if exit != nil {
			sv.mu.Lock()
			sv.lastExit = exit
			sv.run, sv.proc = nil, nil
			if r.stopping {
				sv.setStateLocked(guestproto.ServiceStopped, "")
			} else {
				sv.setStateLocked(guestproto.ServiceExited, exit.Message)
			}
			sv.mu.Unlock()
			return
		}
		for i := range sv.probes {
			go sv.runProbe(p, i)
		}
		exit = sv.waitProc(p)
		p.cancel()
		now := time.Now()
		sv.mu.Lock()
		sv.lastExit, sv.proc = exit, nil
		if r.stopping {
			sv.run = nil
			sv.setStateLocked(guestproto.ServiceStopped, "")
			sv.mu.Unlock()
			return
		}
		failed := exit.Signal != "" || exit.ExitCode != 0
		d := sv.tracker.exited(now, now.Sub(p.started), failed)
		switch {
		case shuttingDown.Load():
			sv.run = nil
			sv.setStateLocked(guestproto.ServiceStopped, "the guest is shutting down")
			sv.mu.Unlock()
			return
		case d.limitHit:
			sv.run = nil
			sv.setStateLocked(guestproto.ServiceFailed, fmt.Sprintf("start limit hit: %d starts within %s (%s); start it again with service_restart",
				sv.tracker.p.burst, sv.tracker.p.period, describeExit(exit)))
			sv.mu.Unlock()
			return
		case !d.restart:
			sv.run = nil
			sv.setStateLocked(guestproto.ServiceExited, describeExit(exit))
			sv.mu.Unlock()
			return
		}
		sv.restarts++
		sv.nextStart = now.Add(d.delay)
		sv.setStateLocked(guestproto.ServiceStarting, fmt.Sprintf("restarting in %s (%s)", d.delay, describeExit(exit)))
		sv.mu.Unlock()
		t := time.NewTimer(d.delay)
		select {
		case <-t.C:
		case <-r.stop:
			t.Stop()
			sv.mu.Lock()
			sv.run, sv.nextStart = nil, time.Time{}
			sv.setStateLocked(guestproto.ServiceStopped, "")
			sv.mu.Unlock()
			return
		}
		sv.mu.Lock()
		sv.nextStart = time.Time{}
		sv.mu.Unlock()
	}
}

func describeExit(e *guestproto.ServiceExit) string {
	switch {
	case e.Message != "" && e.Signal == "" && e.ExitCode >= 126:
		return fmt.Sprintf("exit code %d: %s", e.ExitCode, e.Message)
	case e.Signal != "":
		return fmt.Sprintf("killed by SIG%s", e.Signal)
	}
	return fmt.Sprintf("exited with code %d", e.ExitCode)
}

// spawn starts the service's process. A process that cannot start is
// returned as an exit (127 not found, 126 cannot run), never an error.
func (sv *service) spawn(r *svcRun) (*svcProc, *guestproto.ServiceExit) {
	startFailed := func(code int, msg string) *guestproto.ServiceExit {
		sv.appendOutput([]byte("hearth: " + msg + "\n"))
		sv.mu.Lock()
		tail := sv.tailLocked()
		sv.mu.Unlock()
		return &guestproto.ServiceExit{ExitCode: code, At: time.Now().UTC(), Message: msg, Tail: tail}
	}
	spec := &sv.spec
	env := mergeEnv(defaultEnv(), spec.Env)
	if sv.notify != nil {
		env = mergeEnv(env, []string{"NOTIFY_SOCKET=" + sv.notify.path})
	}
	cwd, err := execCwd(spec.Cwd)
	if err != nil {
		return nil, startFailed(126, err.Error())
	}
	path, code, msg := lookPath(spec.Argv[0], envValue(env, "PATH"), cwd)
	if code != 0 {
		return nil, startFailed(code, msg)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, startFailed(126, fmt.Sprintf("%s: create pipe: %v", spec.Argv[0], err))
	}
	cmd := &exec.Cmd{Path: path, Args: spec.Argv, Env: env, Dir: cwd, Stdout: pw, Stderr: pw,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	cg, cgErr := openCgroup(sv.t.cgroupRoot, sv.name)
	if cgErr != nil {
		sv.t.log.Debug("service without a cgroup", "service", sv.name, "err", cgErr)
	} else {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cg.fd
	}
	sv.mu.Lock()
	if r.stopping {
		sv.mu.Unlock()
		pr.Close()
		pw.Close()
		cg.close()
		return nil, &guestproto.ServiceExit{At: time.Now().UTC(), Message: "stopped before it started"}
	}
	sv.mu.Unlock()
	err = startTracked(cmd)
	if err != nil && cg != nil {
		// A kernel without CLONE_INTO_CGROUP: run it without one.
		cg.close()
		cg = nil
		cmd = &exec.Cmd{Path: path, Args: spec.Argv, Env: env, Dir: cwd, Stdout: pw, Stderr: pw,
			SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
		err = startTracked(cmd)
	}
	pw.Close()
	if err != nil {
		pr.Close()
		code := 126
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		return nil, startFailed(code, fmt.Sprintf("%s: %v", spec.Argv[0], unwrapExecErr(err)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &svcProc{cmd: cmd, pid: cmd.Process.Pid, cg: cg, started: time.Now(), ctx: ctx, cancel: cancel,
		logMatched: make([]bool, len(sv.probes)), events: make([]chan struct{}, len(sv.probes)), pumpDone: make(chan struct{})}
	for i, pb := range sv.probes {
		p.pstates = append(p.pstates, &probeState{p: pb})
		p.events[i] = make(chan struct{}, 1)
	}
	go sv.pump(p, pr)
	sv.mu.Lock()
	sv.proc = p
	sv.tracker.started(p.started)
	state := guestproto.ServiceStarting
	if len(sv.probes) == 0 {
		state = guestproto.ServiceReady
	}
	sv.setStateLocked(state, "")
	if r.stopping { // a stop raced with the start
		p.signal(sv.t.proc, r.sig)
	}
	sv.mu.Unlock()
	sv.t.log.Info("service started", "service", sv.name, "pid", p.pid, "cgroup", cg != nil)
	return p, nil
}

// pump copies the service's output into its ring and feeds log probes.
// It ends at EOF, which comes once every process holding the pipe is gone.
func (sv *service) pump(p *svcProc, f *os.File) {
	defer close(p.pumpDone)
	defer f.Close()
	buf := make([]byte, 32<<10)
	var line []byte
	hasLog := slices.ContainsFunc(sv.probes, func(pb *guestproto.Probe) bool { return pb.Kind == guestproto.ProbeLog })
	for {
		n, err := f.Read(buf)
		if n > 0 {
			sv.appendOutput(buf[:n])
			if hasLog {
				line = sv.matchLines(p, line, buf[:n])
			}
		}
		if err != nil {
			if hasLog && len(line) > 0 {
				sv.matchLine(p, line)
			}
			return
		}
	}
}

// matchLines splits output into lines for the log probes; it returns the
// unfinished last line.
func (sv *service) matchLines(p *svcProc, partial, b []byte) []byte {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			partial = append(partial, b...)
			if len(partial) > serviceMaxLine {
				sv.matchLine(p, partial)
				partial = partial[:0]
			}
			return partial
		}
		if len(partial) > 0 {
			partial = append(partial, b[:i]...)
			sv.matchLine(p, partial)
			partial = partial[:0]
		} else {
			sv.matchLine(p, b[:i])
		}
		b = b[i+1:]
	}
	return partial
}

func (sv *service) matchLine(p *svcProc, line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	for i, pb := range sv.probes {
		if pb.Kind != guestproto.ProbeLog {
			continue
		}
		sv.mu.Lock()
		done := p.logMatched[i]
		sv.mu.Unlock()
		if done || !pb.Regexp.Match(line) {
			continue
		}
		sv.mu.Lock()
		p.logMatched[i] = true
		sv.mu.Unlock()
		nudge(p.events[i])
	}
}

func nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (sv *service) appendOutput(b []byte) {
	sv.mu.Lock()
	sv.out.write(b)
	sv.broadcastLocked()
	sv.mu.Unlock()
}

// waitProc waits for the main process to exit, then kills what is left of
// its tree and lets the output drain.
func (sv *service) waitProc(p *svcProc) *guestproto.ServiceExit {
	werr := waitTracked(p.cmd)
	p.killTree(sv.t.proc)
	e := &guestproto.ServiceExit{At: time.Now().UTC()}
	ps := p.cmd.ProcessState
	if ps == nil {
		e.ExitCode, e.Message = 126, fmt.Sprintf("wait: %v", werr)
	} else if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.ExitCode, e.Signal = 128+int(ws.Signal()), protoSignalName(ws.Signal())
	} else {
		e.ExitCode = ps.ExitCode()
	}
	// The pipe reaches EOF once the killed processes are gone, and then
	// the tail holds the last words. A process that escaped the tree may
	// hold it longer: do not wait for that one.
	select {
	case <-p.pumpDone:
	case <-time.After(time.Second):
	}
	sv.mu.Lock()
	e.Tail = sv.tailLocked()
	sv.mu.Unlock()
	p.cg.close()
	sv.t.log.Info("service process ended", "service", sv.name, "pid", p.pid, "code", e.ExitCode, "signal", e.Signal)
	return e
}

// tailLocked is the end of the kept output: the last serviceTailLines
// lines, at most serviceTailBytes.
func (sv *service) tailLocked() string {
	from := tailOffset(&sv.out, serviceTailLines)
	from = max(from, sv.out.total-serviceTailBytes)
	return string(sv.out.read(from, serviceTailBytes))
}

// tailOffset returns the offset where the last n lines of r begin (a
// final unterminated line counts as one).
func tailOffset(r *ring, n int) int64 {
	start := r.start()
	if n <= 0 {
		return start
	}
	b := r.read(start, int(r.total-start))
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n--
			if n == 0 {
				return start + int64(i+1)
			}
		}
	}
	return start
}

// info describes the service.
func (sv *service) info() *guestproto.ServiceInfo {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.infoLocked()
}

func (sv *service) infoLocked() *guestproto.ServiceInfo {
	in := &guestproto.ServiceInfo{Name: sv.name, State: sv.state, Restarts: sv.restarts, Message: sv.message, Spec: sv.spec}
	in.Spec.Stopped = false
	tp := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	in.ReadyAt, in.NextStartAt = tp(sv.readyAt), tp(sv.nextStart)
	if sv.lastExit != nil {
		e := *sv.lastExit
		in.LastExit = &e
	}
	if p := sv.proc; p != nil {
		in.PID, in.StartedAt = p.pid, tp(p.started)
		for _, ps := range p.pstates {
			st := guestproto.ProbeStatus{Probe: ps.p.Text, OK: ps.ok, Passing: ps.passing, Failures: ps.failures, Checks: ps.checks, CheckedAt: tp(ps.at), Detail: ps.detail}
			in.Probes = append(in.Probes, st)
		}
	}
	return in
}

// stop ends the current activation: sig to the service's processes, then
// SIGKILL after timeout. It returns once the activation has ended.
func (sv *service) stop(sig syscall.Signal, timeout time.Duration) error {
	sv.mu.Lock()
	r := sv.run
	if r == nil {
		sv.mu.Unlock()
		return nil
	}
	r.stopping, r.sig = true, sig
	if sv.proc != nil {
		sv.proc.signal(sv.t.proc, sig)
	}
	sv.mu.Unlock()
	r.stopOnce.Do(func() { close(r.stop) })
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
		return nil
	case <-t.C:
	}
	sv.mu.Lock()
	if sv.proc != nil {
		sv.proc.signal(sv.t.proc, unix.SIGKILL)
	}
	sv.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-time.After(10 * time.Second):
		return errorf(guestproto.CodeInternal, "service %s did not end after SIGKILL", sv.name)
	}
}

// signal sends sig to every process of the service.
func (p *svcProc) signal(proc string, sig syscall.Signal) {
	for _, pid := range p.tree(proc) {
		unix.Kill(pid, sig)
	}
	unix.Kill(-p.pid, sig) // the session's group, should the tree have missed one
}

// killTree SIGKILLs whatever is left of the service after its main
// process ended.
func (p *svcProc) killTree(proc string) {
	if p.cg != nil {
		if p.cg.kill() == nil {
			return
		}
	}
	for _, pid := range p.tree(proc) {
		if pid != p.pid {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// tree lists the service's processes: its cgroup's members, or else the
// members of its session and their descendants.
func (p *svcProc) tree(proc string) []int {
	if p.cg != nil {
		return p.cg.pids()
	}
	return sessionTree(proc, p.pid)
}

// register adds a service to the table; it starts it unless the spec says
// stopped.
func (t *serviceTable) register(spec *guestproto.ServiceSpec) (*service, error) {
	if err := guestproto.CheckServiceSpec(spec); err != nil {
		return nil, errorf(guestproto.CodeInvalid, "%v", err)
	}
	sv := &service{t: t, name: spec.Name, spec: *spec, changed: make(chan struct{}), out: ring{size: serviceRingSize}}
	sv.spec.Argv = slices.Clone(spec.Argv)
	sv.spec.Stopped = false
	for _, r := range spec.Ready {
		p, _ := guestproto.ParseProbe(r) // checked above
		sv.probes = append(sv.probes, p)
	}
	if !spec.Stopped {
		if _, err := execCwd(spec.Cwd); err != nil {
			return nil, err
		}
	}
	t.mu.Lock()
	if old, ok := t.svcs[spec.Name]; ok {
		t.mu.Unlock()
		return nil, errorf(guestproto.CodeExists, "a service named %q already exists (state %s): start it again with service_restart, or remove it with service_remove first", spec.Name, old.info().State)
	}
	if len(t.svcs) >= maxServices {
		t.mu.Unlock()
		return nil, errorf(guestproto.CodeLimit, "%d services exist, the most a workspace allows: remove one first", len(t.svcs))
	}
	t.svcs[spec.Name] = sv
	t.mu.Unlock()
	for _, p := range sv.probes {
		if p.Kind == guestproto.ProbeNotify {
			ns, err := listenNotify(t.notifyDir, sv.name, sv.notified)
			if err != nil {
				t.mu.Lock()
				delete(t.svcs, spec.Name)
				t.mu.Unlock()
				return nil, fmt.Errorf("service %s: notify socket: %w", sv.name, err)
			}
			sv.notify = ns
		}
	}
	if spec.Stopped {
		sv.state = guestproto.ServiceStopped
		return sv, nil
	}
	sv.start()
	return sv, nil
}

// notified is called by the notify socket with READY=1 (ready) or a
// STATUS= text.
func (sv *service) notified(ready bool, status string) {
	sv.mu.Lock()
	p := sv.proc
	if p == nil {
		sv.mu.Unlock()
		return
	}
	if status != "" {
		p.status = status
	}
	if ready {
		p.notified = true
	}
	sv.mu.Unlock()
	for i, pb := range sv.probes {
		if pb.Kind == guestproto.ProbeNotify {
			nudge(p.events[i])
		}
	}
}

func (t *serviceTable) remove(sv *service) {
	t.mu.Lock()
	delete(t.svcs, sv.name)
	t.mu.Unlock()
	sv.mu.Lock()
	sv.removed = true
	sv.broadcastLocked()
	sv.mu.Unlock()
	if sv.notify != nil {
		sv.notify.close()
	}
	removeCgroup(t.cgroupRoot, sv.name)
}

func (t *serviceTable) list() []guestproto.ServiceInfo {
	t.mu.Lock()
	svcs := make([]*service, 0, len(t.svcs))
	for _, sv := range t.svcs {
		svcs = append(svcs, sv)
	}
	t.mu.Unlock()
	out := make([]guestproto.ServiceInfo, 0, len(svcs))
	for _, sv := range svcs {
		out = append(out, *sv.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// wait waits until the service is ready or has ended, up to timeout.
func (sv *service) wait(ctx context.Context, timeout time.Duration) *guestproto.ServiceWaitResult {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		sv.mu.Lock()
		in := sv.infoLocked()
		ch := sv.changed
		tail := sv.tailLocked()
		sv.mu.Unlock()
		res := &guestproto.ServiceWaitResult{Service: *in}
		switch in.State {
		case guestproto.ServiceReady:
			res.Result = guestproto.WaitReady
			return res
		case guestproto.ServiceExited, guestproto.ServiceFailed:
			res.Result, res.Tail = guestproto.WaitExited, tail
			if in.LastExit != nil && in.LastExit.Tail != "" {
				res.Tail = in.LastExit.Tail
			}
			return res
		case guestproto.ServiceStopped:
			res.Result, res.Tail = guestproto.WaitStopped, tail
			return res
		}
		select {
		case <-ch:
		case <-t.C:
			res.Result, res.Tail = guestproto.WaitTimedOut, tail
			return res
		case <-ctx.Done():
			res.Result, res.Tail = guestproto.WaitTimedOut, tail
			return res
		}
	}
}

func serviceReq(req *guestproto.Request) (*guestproto.ServiceRequest, error) {
	if req.Service == nil {
		return nil, errorf(guestproto.CodeInvalid, "%s request has no service body", req.Op)
	}
	return req.Service, nil
}

func handleServiceStart(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, err := serviceReq(req)
	if err != nil {
		return nil, err
	}
	if r.Spec == nil {
		return nil, errorf(guestproto.CodeInvalid, "service_start: no service definition")
	}
	sv, err := s.services.register(r.Spec)
	if err != nil {
		return nil, err
	}
	return &guestproto.Response{Service: sv.info()}, nil
}

func handleServiceList(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	return &guestproto.Response{Services: s.services.list()}, nil
}

func handleServiceShow(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, err := serviceReq(req)
	if err != nil {
		return nil, err
	}
	sv, err := s.services.get(r.Name)
	if err != nil {
		return nil, err
	}
	return &guestproto.Response{Service: sv.info()}, nil
}

// stopArgs reads a stop request's signal and timeout.
func stopArgs(r *guestproto.ServiceRequest) (syscall.Signal, time.Duration, error) {
	sig := syscall.Signal(unix.SIGTERM)
	if r.Signal != "" {
		var err error
		if sig, err = protoSignal(r.Signal); err != nil {
			return 0, 0, errorf(guestproto.CodeInvalid, "stop: %v", err)
		}
	}
	timeout := guestproto.DefaultStopTimeout
	if r.TimeoutMS < 0 {
		return 0, 0, errorf(guestproto.CodeInvalid, "stop: timeout_ms %d is negative", r.TimeoutMS)
	}
	if r.TimeoutMS > 0 {
		timeout = time.Duration(r.TimeoutMS) * time.Millisecond
	}
	return sig, timeout, nil
}

func handleServiceStop(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, err := serviceReq(req)
	if err != nil {
		return nil, err
	}
	sig, timeout, err := stopArgs(r)
	if err != nil {
		return nil, err
	}
	sv, err := s.services.get(r.Name)
	if err != nil {
		return nil, err
	}
	sv.opMu.Lock()
	defer sv.opMu.Unlock()
	if err := sv.stop(sig, timeout); err != nil {
		return nil, err
	}
	sv.mu.Lock()
	if sv.state == guestproto.ServiceExited || sv.state == guestproto.ServiceFailed {
		// It stays stopped now: nothing restarts it.
		sv.setStateLocked(guestproto.ServiceStopped, "")
	}
	sv.mu.Unlock()
	return &guestproto.Response{Service: sv.info()}, nil
}

func handleServiceRestart(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, err := serviceReq(req)
	if err != nil {
		return nil, err
	}
	sv, err := s.services.get(r.Name)
	if err != nil {
		return nil, err
	}
	sv.opMu.Lock()
	defer sv.opMu.Unlock()
	if err := sv.stop(unix.SIGTERM, guestproto.DefaultStopTimeout); err != nil {
		return nil, err
	}
	if _, err := execCwd(sv.spec.Cwd); err != nil {
		return nil, err
	}
	sv.start()
	return &guestproto.Response{Service: sv.info()}, nil
}

func handleServiceRemove(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, err := serviceReq(req)
	if err != nil {
		return nil, err
	}
	sv, err := s.services.get(r.Name)
	if err != nil {
		return nil, err
	}
	sv.opMu.Lock()
	defer sv.opMu.Unlock()
	if err := sv.stop(unix.SIGTERM, guestproto.DefaultStopTimeout); err != nil {
		return nil, err
	}
	s.services.remove(sv)
	return &guestproto.Response{Service: sv.info()}, nil
}

func handleServiceWait(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, err := serviceReq(req)
	if err != nil {
		return nil, err
	}
	sv, err := s.services.get(r.Name)
	if err != nil {
		return nil, err
	}
	timeout := min(time.Duration(r.TimeoutMS)*time.Millisecond, serviceMaxWait)
	if timeout < 0 {
		return nil, errorf(guestproto.CodeInvalid, "wait: timeout_ms %d is negative", r.TimeoutMS)
	}
	// The host going away ends the wait.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			if _, _, err := st.ReadFrame(); err != nil {
				cancel()
				return
			}
		}
	}()
	return &guestproto.Response{ServiceWait: sv.wait(wctx, timeout)}, nil
}

// handleServiceLogs streams the kept output (the last Tail lines) and,
// with Follow, what comes after.
func handleServiceLogs(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, err := serviceReq(req)
	if err != nil {
		return nil, err
	}
	if r.Tail < 0 {
		return nil, errorf(guestproto.CodeInvalid, "logs: tail %d is negative", r.Tail)
	}
	sv, err := s.services.get(r.Name)
	if err != nil {
		return nil, err
	}
	hostGone := make(chan struct{})
	if r.Follow {
		go func() {
			defer close(hostGone)
			for {
				if _, _, err := st.ReadFrame(); err != nil {
					return
				}
			}
		}()
	}
	sv.mu.Lock()
	cur := tailOffset(&sv.out, r.Tail)
	sv.mu.Unlock()
	for {
		sv.mu.Lock()
		cur = max(cur, sv.out.start())
		var chunk []byte
		if cur < sv.out.total {
			chunk = sv.out.read(cur, guestproto.ChunkSize)
			cur += int64(len(chunk))
		}
		more := cur < sv.out.total
		ended := sv.removed || sv.run == nil
		ch := sv.changed
		sv.mu.Unlock()
		if len(chunk) > 0 {
			if err := st.WriteFrame(guestproto.FrameStdout, chunk); err != nil {
				return nil, err
			}
		}
		if more {
			continue
		}
		if !r.Follow || ended {
			break
		}
		select {
		case <-ch:
		case <-hostGone:
			return &guestproto.Response{Service: sv.info()}, nil
		}
	}
	return &guestproto.Response{Service: sv.info()}, nil
}
