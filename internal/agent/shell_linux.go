package agent

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// startPTY starts cmd in a new session with a new PTY as its controlling
// terminal and stdio, and returns the PTY's master. The process is
// registered with the reaper (see reaper_linux.go); wait for it with
// waitTracked.
func startPTY(cmd *exec.Cmd, cols, rows int) (*os.File, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	var ptmx *os.File
	err := children.start(func() (err error) {
		ptmx, err = pty.StartWithAttrs(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}, cmd.SysProcAttr)
		return err
	}, cmd)
	return ptmx, err
}

// setPTYSize sets the terminal size; the kernel sends SIGWINCH to the
// foreground process group.
func setPTYSize(ptmx *os.File, cols, rows int) error {
	return pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
}

// shellProcessCwd is the current directory of a process.
func shellProcessCwd(pid int) (string, error) {
	return os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
}

// shellExitStatus is a shell's exit code: its status, or 128+N when signal
// N killed it, or 255 when it cannot be known.
func shellExitStatus(ps *os.ProcessState, err error) int {
	if ps == nil {
		return 255
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if code := ps.ExitCode(); code >= 0 {
		return code
	}
	return 255
}

// shellSignals are the signals shell_signal delivers.
var shellSignals = map[string]unix.Signal{
	"HUP":  unix.SIGHUP,
	"INT":  unix.SIGINT,
	"QUIT": unix.SIGQUIT,
	"KILL": unix.SIGKILL,
	"TERM": unix.SIGTERM,
	"TSTP": unix.SIGTSTP,
	"CONT": unix.SIGCONT,
	"USR1": unix.SIGUSR1,
	"USR2": unix.SIGUSR2,
}

// shellSignalByName accepts "INT", "int" and "SIGINT".
func shellSignalByName(name string) (unix.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	if sig, ok := shellSignals[n]; ok {
		return sig, nil
	}
	names := make([]string, 0, len(shellSignals))
	for k := range shellSignals {
		names = append(names, k)
	}
	slices.Sort(names)
	return 0, errorf(guestproto.CodeInvalid, "unknown signal %q: use one of %s", name, strings.Join(names, ", "))
}

// foregroundPgrp is the process group in the foreground of the PTY.
func foregroundPgrp(ptmx *os.File) (int, error) {
	rc, err := ptmx.SyscallConn()
	if err != nil {
		return 0, err
	}
	var pgrp int
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		pgrp, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPGRP)
	}); err != nil {
		return 0, err
	}
	return pgrp, ierr
}

// signal delivers a signal to the PTY's foreground process group, so INT
// interrupts the running command and leaves the shell at its prompt.
func (sh *shellSession) signal(name string) error {
	sig, err := shellSignalByName(name)
	if err != nil {
		return err
	}
	sh.mu.Lock()
	exited := sh.exited
	sh.mu.Unlock()
	if exited {
		return errorf(guestproto.CodePrecondition, "shell session %s has exited", sh.id)
	}
	pgrp, err := foregroundPgrp(sh.ptmx)
	if err != nil || pgrp <= 0 {
		pgrp = sh.cmd.Process.Pid // the shell leads its own group
	}
	if err := unix.Kill(-pgrp, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return errorf(guestproto.CodeInternal, "signal %s to process group %d of shell %s: %v", name, pgrp, sh.id, err)
	}
	return nil
}

// hangup sends SIGHUP (and SIGCONT, so stopped jobs see it) to the shell's
// process group and the terminal's foreground group.
func (sh *shellSession) hangup() { sh.killGroups(unix.SIGHUP, unix.SIGCONT) }

// kill sends SIGKILL to the shell's process group and the foreground group.
func (sh *shellSession) kill() { sh.killGroups(unix.SIGKILL) }

func (sh *shellSession) killGroups(sigs ...unix.Signal) {
	groups := []int{sh.cmd.Process.Pid}
	if pg, err := foregroundPgrp(sh.ptmx); err == nil && pg > 0 && pg != groups[0] {
		groups = append(groups, pg)
	}
	for _, g := range groups {
		for _, sig := range sigs {
			unix.Kill(-g, sig)
		}
	}
}
