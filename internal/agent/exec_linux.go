package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
	"golang.org/x/sys/unix"
)

// Why the agent killed a process group (execRun.killReason).
const (
	killNone    int32 = iota
	killTimeout       // TimeoutMS elapsed
	killHost          // the host closed the stream
)

// execRun is one running exec operation.
type execRun struct {
	st         *Stream
	epoch      uint64 // sessionEpoch when it started
	cmd        *exec.Cmd
	pgid       int
	killReason atomic.Int32
	hostSignal atomic.Int32 // last signal the host asked for (0: none)
	exited     atomic.Bool  // the command has been waited for
	stdinMu    sync.Mutex
	stdinW     *os.File // nil once closed or when there is no stdin
	startUsec  int64    // monotonic start time, for the kernel log's OOM records
}

// runExec starts spec, streams its output on st and returns its result. It
// never returns an error: a command that cannot start is a result with
// ReasonStartFailed.
func runExec(ctx context.Context, s *Server, st *Stream, spec *execSpec) *guestproto.ExecResult {
	start := time.Now()
	result := func(r *guestproto.ExecResult) *guestproto.ExecResult {
		r.DurationMS = time.Since(start).Milliseconds()
		return r
	}
	startFailed := func(code int, msg string) *guestproto.ExecResult {
		st.WriteFrame(guestproto.FrameStderr, []byte("hearth: "+msg+"\n"))
		return result(&guestproto.ExecResult{ExitCode: code, Reason: guestproto.ReasonStartFailed, Message: msg})
	}
	if spec.startErr != "" {
		return startFailed(spec.startCode, spec.startErr)
	}

	outR, outW, err := os.Pipe()
	if err != nil {
		return startFailed(126, fmt.Sprintf("%s: create pipe: %v", spec.argv[0], err))
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return startFailed(126, fmt.Sprintf("%s: create pipe: %v", spec.argv[0], err))
	}
	run := &execRun{st: st, epoch: sessionEpoch.Load()}
	cmd := &exec.Cmd{
		Path:        spec.path,
		Args:        spec.argv,
		Env:         spec.env,
		Dir:         spec.cwd,
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	var stdinR *os.File
	if spec.stdin {
		stdinR, run.stdinW, err = os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			errR.Close()
			errW.Close()
			return startFailed(126, fmt.Sprintf("%s: create pipe: %v", spec.argv[0], err))
		}
		cmd.Stdin = stdinR
	}
	run.cmd = cmd
	oomBefore := oomKills()
	run.startUsec = monotonicUsec()
	err = startTracked(cmd)
	// The child holds its own copies now.
	outW.Close()
	errW.Close()
	if stdinR != nil {
		stdinR.Close()
	}
	if err != nil {
		outR.Close()
		errR.Close()
		run.closeStdin()
		code := 126
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		return startFailed(code, fmt.Sprintf("%s: %v", spec.argv[0], unwrapExecErr(err)))
	}
	run.pgid = cmd.Process.Pid
	s.Log.Debug("exec started", "argv", spec.argv, "pid", run.pgid)

	if spec.timeout > 0 {
		t := time.AfterFunc(spec.timeout, func() { run.kill(killTimeout) })
		defer t.Stop()
	}
	go run.readHost()

	var pumps sync.WaitGroup
	pumps.Add(2)
	go run.pump(&pumps, outR, guestproto.FrameStdout)
	go run.pump(&pumps, errR, guestproto.FrameStderr)

	werr := waitTracked(cmd)
	run.exited.Store(true)
	run.closeStdin()
	// Drain what the command left in the pipes, without waiting for a
	// background child that inherited them.
	deadline := time.Now().Add(execDrainIdle)
	outR.SetReadDeadline(deadline)
	errR.SetReadDeadline(deadline)
	pumps.Wait()
	outR.Close()
	errR.Close()

	res := run.classify(cmd.ProcessState, werr, oomBefore)
	s.Log.Debug("exec done", "pid", run.pgid, "reason", res.Reason, "exit_code", res.ExitCode)
	return result(res)
}

// unwrapExecErr drops os/exec's "fork/exec PATH:" prefix.
func unwrapExecErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// pump streams one output pipe to the host in frames of at most ChunkSize
// bytes. After the command exited it stops at EOF, after execDrainIdle
// without data, or after execDrainMax bytes.
func (r *execRun) pump(wg *sync.WaitGroup, f *os.File, t guestproto.FrameType) {
	defer wg.Done()
	buf := make([]byte, guestproto.ChunkSize)
	hostGone := false
	var afterExit int
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if !hostGone {
				if werr := r.st.WriteFrame(t, buf[:n]); werr != nil {
					// Keep reading so the process does not block on a
					// full pipe; readHost kills it as the stream is gone.
					hostGone = true
				}
			}
			if r.exited.Load() {
				afterExit += n
				if afterExit > execDrainMax {
					return
				}
				f.SetReadDeadline(time.Now().Add(execDrainIdle))
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !hostGone {
				r.drainNow(f, t, buf, afterExit)
			}
			return // EOF, deadline after exit, or closed
		}
	}
}

// drainNow sends what the pipe holds right now, without waiting. A read
// whose deadline has passed fails before it looks at the pipe, so a pump
// that was not scheduled within execDrainIdle of the command's exit (a
// guest busy with a hundred commands under emulation) would drop output
// the command wrote before it exited: measured as exit 0 with empty
// stdout in 2 of 300 concurrent execs.
func (r *execRun) drainNow(f *os.File, t guestproto.FrameType, buf []byte, afterExit int) {
	f.SetReadDeadline(time.Time{})
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	for afterExit <= execDrainMax {
		var n int
		var rerr error
		// One non-blocking read (the pipe is in non-blocking mode):
		// EAGAIN when empty ends the drain, as does EOF.
		if err := rc.Read(func(fd uintptr) bool { n, rerr = syscall.Read(int(fd), buf); return true }); err != nil || rerr != nil || n <= 0 {
			return
		}
		if r.st.WriteFrame(t, buf[:n]) != nil {
			return
		}
		afterExit += n
	}
}

// readHost reads the host's frames while the command runs: stdin data,
// stdin EOF and Control messages. The host closing the stream kills the
// process group; a stream lost to a resync (the VM was restored from a
// memory snapshot, and the host that held it is gone) leaves the process
// running, its output discarded.
func (r *execRun) readHost() {
	for {
		t, p, err := r.st.ReadFrame()
		if err != nil {
			if !r.exited.Load() && sessionEpoch.Load() == r.epoch {
				r.kill(killHost)
			}
			r.closeStdin()
			return
		}
		switch t {
		case guestproto.FrameStdin:
			r.writeStdin(p)
		case guestproto.FrameStdinEOF:
			r.closeStdin()
		case guestproto.FrameJSON:
			var c guestproto.Control
			if err := json.Unmarshal(p, &c); err != nil || c.Signal == "" {
				continue
			}
			sig, err := protoSignal(c.Signal)
			if err != nil || r.exited.Load() {
				continue
			}
			r.hostSignal.Store(int32(sig))
			unix.Kill(-r.pgid, sig)
		}
	}
}

func (r *execRun) writeStdin(p []byte) {
	r.stdinMu.Lock()
	w := r.stdinW
	r.stdinMu.Unlock()
	if w == nil {
		return
	}
	// A write error (the process closed its stdin, or exited and
	// closeStdin closed the pipe) drops the data, as a shell pipe would.
	if _, err := w.Write(p); err != nil {
		r.closeStdin()
	}
}

func (r *execRun) closeStdin() {
	r.stdinMu.Lock()
	w := r.stdinW
	r.stdinW = nil
	r.stdinMu.Unlock()
	if w != nil {
		w.Close()
	}
}

// kill SIGKILLs the process group, recording why (the first reason wins).
func (r *execRun) kill(reason int32) {
	if r.exited.Load() {
		return
	}
	r.killReason.CompareAndSwap(killNone, reason)
	unix.Kill(-r.pgid, unix.SIGKILL)
}

// classify turns the wait status into a result.
func (r *execRun) classify(ps *os.ProcessState, werr error, oomBefore int64) *guestproto.ExecResult {
	if ps == nil {
		return &guestproto.ExecResult{ExitCode: 126, Reason: guestproto.ReasonStartFailed, Message: fmt.Sprintf("wait: %v", werr)}
	}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		return &guestproto.ExecResult{ExitCode: ws.ExitStatus(), Reason: guestproto.ReasonExited}
	}
	sig := ws.Signal()
	res := &guestproto.ExecResult{ExitCode: 128 + int(sig), Reason: guestproto.ReasonSignaled, Signal: protoSignalName(sig)}
	switch {
	case r.killReason.Load() == killTimeout:
		res.Reason, res.ExitCode = guestproto.ReasonTimeout, 124
		res.Message = "killed after the timeout"
	case r.killReason.Load() == killHost:
		res.Reason = guestproto.ReasonKilled
		res.Message = "killed: the host closed the stream"
	case r.hostSignal.Load() == int32(sig):
		res.Reason = guestproto.ReasonKilled
		res.Message = "killed by SIG" + res.Signal + " on the host's request"
	case sig == unix.SIGKILL && (oomBefore >= 0 && oomKills() > oomBefore || oomBefore < 0 && kmsgOOMSince(r.startUsec)):
		res.Reason = guestproto.ReasonOOM
		res.Message = "killed by the kernel's out-of-memory killer"
	}
	return res
}

// monotonicUsec is the time since boot in microseconds, the clock of the
// kernel log's timestamps.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return ts.Nano() / 1000
}

// kmsgOOMSince reports whether the kernel log holds an OOM kill at or
// after sinceUsec (less a second's margin). It is the fallback when the
// kernel keeps no oom_kill counter (CONFIG_VM_EVENT_COUNTERS off).
func kmsgOOMSince(sinceUsec int64) bool {
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(int(f.Fd()), buf)
		if err != nil {
			if err == unix.EPIPE { // a record was overwritten while reading
				continue
			}
			return false // EAGAIN: the end of the log
		}
		rec := buf[:n]
		head, msg, ok := bytes.Cut(rec, []byte(";"))
		if !ok {
			continue
		}
		fields := bytes.Split(head, []byte(","))
		if len(fields) < 3 {
			continue
		}
		ts, _ := strconv.ParseInt(string(fields[2]), 10, 64)
		if ts < sinceUsec-1_000_000 {
			continue
		}
		if bytes.Contains(msg, []byte("Out of memory")) || bytes.Contains(msg, []byte("oom-kill")) || bytes.Contains(msg, []byte("Killed process")) {
			return true
		}
	}
}

// oomKills returns the kernel's count of OOM kills (-1 when unknown).
func oomKills() int64 {
	f, err := os.Open("/proc/vmstat")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("oom_kill ")); ok {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// protoSignal parses a signal name as the protocol spells it ("INT",
// "SIGINT", "int") or a number ("9").
func protoSignal(name string) (syscall.Signal, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if v, err := strconv.Atoi(n); err == nil && v > 0 && v < 65 {
		return syscall.Signal(v), nil
	}
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if sig := unix.SignalNum(n); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", name)
}

// protoSignalName is the protocol's name of sig ("INT").
func protoSignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return strings.TrimPrefix(n, "SIG")
	}
	return strconv.Itoa(int(sig))
}
