package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// As PID 1 the agent inherits every orphaned process in the VM and must reap
// them, but it must not reap a child that os/exec is waiting for, or that
// Wait would fail and the exit status would be lost. Every process the agent
// starts is therefore started with startTracked, which registers its pid
// under the same lock the reaper holds while it reaps: the reaper only ever
// waits for zombies that are not registered.

// procTable is the set of pids whose exit status belongs to a waiter.
type procTable struct {
	mu      sync.Mutex
	tracked map[int]struct{}
}

// children is the agent's registry of the processes it started itself.
var children = &procTable{tracked: map[int]struct{}{}}

// startTracked starts cmd and registers its pid so the reaper leaves it to
// cmd.Wait. Every process the agent starts must go through here (or
// through children.start); wait for it with waitTracked.
func startTracked(cmd *exec.Cmd) error { return children.start(cmd.Start, cmd) }

// waitTracked waits for a process started by startTracked and unregisters it.
func waitTracked(cmd *exec.Cmd) error {
	err := cmd.Wait()
	if cmd.Process != nil {
		children.untrack(cmd.Process.Pid)
	}
	return err
}

// start runs startFn (which must fork cmd) with the table locked, so the
// reaper cannot see the child before it is registered.
func (t *procTable) start(startFn func() error, cmd *exec.Cmd) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := startFn(); err != nil {
		return err
	}
	if cmd.Process != nil {
		t.tracked[cmd.Process.Pid] = struct{}{}
	}
	return nil
}

func (t *procTable) untrack(pid int) {
	t.mu.Lock()
	delete(t.tracked, pid)
	t.mu.Unlock()
}

func (t *procTable) isTracked(pid int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.tracked[pid]
	return ok
}

// zombieSource finds and reaps exited children; procZombies is the real one.
type zombieSource interface {
	// zombies lists the pids of this process's children that have exited
	// and not been waited for.
	zombies() ([]int, error)
	// reap waits for one exited child.
	reap(pid int) error
}

// reapUntracked reaps every exited child that nobody else waits for and
// returns how many it reaped.
func (t *procTable) reapUntracked(src zombieSource) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pids, err := src.zombies()
	n := 0
	for _, pid := range pids {
		if _, ok := t.tracked[pid]; ok {
			continue
		}
		if rerr := src.reap(pid); rerr == nil {
			n++
		}
	}
	return n, err
}

// procZombies scans /proc for zombie children of this process.
type procZombies struct {
	proc string // "/proc"
	self int
}

func (p procZombies) zombies() ([]int, error) {
	ents, err := os.ReadDir(p.proc)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(p.proc + "/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		state, ppid, ok := parseStat(b)
		if ok && state == 'Z' && ppid == p.self {
			out = append(out, pid)
		}
	}
	return out, nil
}

func (procZombies) reap(pid int) error {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// parseStat returns the state and parent pid from a /proc/PID/stat line
// ("pid (comm) S ppid ..."; comm may itself hold spaces and parentheses).
func parseStat(b []byte) (state byte, ppid int, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], ppid, true
}

// startReaper reaps untracked zombie children on every SIGCHLD. It is run
// when the agent is PID 1 (or a child subreaper).
func startReaper(log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	src := procZombies{proc: "/proc", self: os.Getpid()}
	go func() {
		for range ch {
			if _, err := children.reapUntracked(src); err != nil && !errors.Is(err, os.ErrNotExist) {
				log.Warn("reap zombies", "err", err)
			}
		}
	}()
	// Orphans may already have exited before the handler was installed.
	select {
	case ch <- syscall.SIGCHLD:
	default:
	}
}
