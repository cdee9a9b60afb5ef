// Package proc identifies host processes so that hearth signals only the
// processes it started. A pid alone is not an identity: after the process
// exits the kernel hands the number to another process, and after a host
// reboot every recorded pid means something else. An Identity adds the
// process's start time (field 22 of /proc/PID/stat, in clock ticks after
// boot) and the host's boot id; a process matches only if all three do.
//
// Signals go through a pidfd opened before the identity is checked, so the
// process that is checked is the process that is signalled: if the pid
// were reused between the two steps, the check would see the newcomer's
// start time and refuse.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Identity names one process for the life of one host boot.
type Identity struct {
	PID int `json:"pid"`
	// StartTicks is the process's start time in clock ticks after boot
	// (field 22 of /proc/PID/stat).
	StartTicks uint64 `json:"start_ticks"`
	// BootID is the host's boot id when the identity was taken.
	BootID string `json:"boot_id"`
}

// Recorded reports whether id has the start time and boot id a check
// needs (identities from older state files only carry a pid).
func (id Identity) Recorded() bool { return id.PID > 0 && id.StartTicks > 0 && id.BootID != "" }

func (id Identity) String() string {
	return fmt.Sprintf("pid %d (start %d, boot %.8s)", id.PID, id.StartTicks, id.BootID)
}

// State is what became of a recorded process.
type State int

// States of a recorded process.
const (
	// Unknown: the identity was not fully recorded, so nothing can be said
	// and nothing may be signalled.
	Unknown State = iota
	// Alive: the very process that was recorded is running.
	Alive
	// Exited: no process has the pid any more, or only its zombie is left.
	Exited
	// Reused: the pid now belongs to a different process.
	Reused
	// Rebooted: the host rebooted since the identity was taken; the pid
	// means nothing now.
	Rebooted
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Exited:
		return "exited"
	case Reused:
		return "pid reused by another process"
	case Rebooted:
		return "host rebooted"
	}
	return "unknown"
}

// Files read; tests point them elsewhere.
var (
	procRoot   = "/proc"
	bootIDFile = "/proc/sys/kernel/random/boot_id"
)

var bootID struct {
	once sync.Once
	id   string
	err  error
}

// BootID returns the host's boot id (read once per process).
func BootID() (string, error) {
	bootID.once.Do(func() {
		b, err := os.ReadFile(bootIDFile)
		if err != nil {
			bootID.err = fmt.Errorf("read host boot id: %w", err)
			return
		}
		bootID.id = strings.TrimSpace(string(b))
		if bootID.id == "" {
			bootID.err = fmt.Errorf("read host boot id: %s is empty", bootIDFile)
		}
	})
	return bootID.id, bootID.err
}

// Stat is what hearth needs from /proc/PID/stat.
type Stat struct {
	// State is the one-letter process state (R, S, D, Z, ...).
	State byte
	// StartTicks is field 22, the start time in clock ticks after boot.
	StartTicks uint64
}

// ParseStat parses the content of /proc/PID/stat. The second field (comm)
// is the executable's name in parentheses and may itself hold spaces and
// parentheses, so the fields after it are found after the last ')'.
func ParseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || bytes.IndexByte(b, '(') < 0 {
		return Stat{}, errors.New("no command name in parentheses")
	}
	// Fields 3 onward: state is field 3, starttime field 22.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("%d fields after the command name, want at least 20", len(f))
	}
	if len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("bad state field %q", f[0])
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("bad start time field %q: %w", f[19], err)
	}
	return Stat{State: f[0][0], StartTicks: start}, nil
}

// ReadStat reads and parses /proc/PID/stat. A missing process is an error
// satisfying errors.Is(err, os.ErrNotExist).
func ReadStat(pid int) (Stat, error) {
	if pid <= 0 {
		return Stat{}, fmt.Errorf("pid %d: %w", pid, os.ErrNotExist)
	}
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	st, err := ParseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("%s/%d/stat: %w", procRoot, pid, err)
	}
	return st, nil
}

// Of returns the identity of the live process pid. Only take it for a
// process whose pid cannot have been reused yet: oneself, or one's own
// child before it is reaped.
func Of(pid int) (Identity, error) {
	boot, err := BootID()
	if err != nil {
		return Identity{}, err
	}
	st, err := ReadStat(pid)
	if err != nil {
		return Identity{}, fmt.Errorf("identify process %d: %w", pid, err)
	}
	return Identity{PID: pid, StartTicks: st.StartTicks, BootID: boot}, nil
}

// Self returns the calling process's identity.
func Self() (Identity, error) { return Of(os.Getpid()) }

// Check says what became of the recorded process.
func (id Identity) Check() State {
	if !id.Recorded() {
		return Unknown
	}
	boot, err := BootID()
	if err != nil {
		return Unknown
	}
	if boot != id.BootID {
		return Rebooted
	}
	st, err := ReadStat(id.PID)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Exited
		}
		return Unknown
	}
	if st.StartTicks != id.StartTicks {
		return Reused
	}
	if st.State == 'Z' || st.State == 'X' {
		return Exited
	}
	return Alive
}

// Alive reports whether the recorded process itself is running.
func (id Identity) Alive() bool { return id.Check() == Alive }

// NotOursError says a recorded process was not signalled, and why.
type NotOursError struct {
	ID    Identity
	State State
}

func (e *NotOursError) Error() string {
	return fmt.Sprintf("process %s not signalled: %s", e.ID, e.State)
}

// Handle is a pidfd on a process whose identity was checked after the
// pidfd was opened: signals sent through it reach that process or none.
type Handle struct {
	ID Identity
	fd int
}

// Open opens a handle on the recorded process. It fails with a
// *NotOursError when the process is not alive as recorded (exited, pid
// reused, host rebooted, or the identity incomplete).
func Open(id Identity) (*Handle, error) {
	if s := id.Check(); s != Alive {
		return nil, &NotOursError{ID: id, State: s}
	}
	fd, err := unix.PidfdOpen(id.PID, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, &NotOursError{ID: id, State: Exited}
		}
		return nil, fmt.Errorf("pidfd_open %d: %w", id.PID, err)
	}
	// The pidfd now pins whatever process had the pid at open time; check
	// again that it is still the recorded one.
	if s := id.Check(); s != Alive {
		unix.Close(fd)
		return nil, &NotOursError{ID: id, State: s}
	}
	return &Handle{ID: id, fd: fd}, nil
}

// Signal sends sig to the process. A process that already exited is not
// an error.
func (h *Handle) Signal(sig syscall.Signal) error {
	err := unix.PidfdSendSignal(h.fd, sig, nil, 0)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal %s to %s: %w", sig, h.ID, err)
	}
	return nil
}

// Wait waits until the process exits or ctx ends; it returns ctx's error
// in the second case.
func (h *Handle) Wait(ctx context.Context) error {
	// A pipe wakes the poll when ctx ends.
	// (os.File, not raw fds: a late write to a closed *os.File fails
	// safely, where a raw fd number may have been reused).
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("wait for %s: %w", h.ID, err)
	}
	defer r.Close()
	defer w.Close()
	stop := context.AfterFunc(ctx, func() { w.Write([]byte{0}) })
	defer stop()
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}, {Fd: int32(r.Fd()), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for %s: %w", h.ID, err)
		}
		if fds[0].Revents != 0 {
			return nil
		}
		if fds[1].Revents != 0 {
			return ctx.Err()
		}
	}
}

// Close releases the pidfd.
func (h *Handle) Close() error { return unix.Close(h.fd) }

// Kill sends sig to the recorded process if, and only if, it is still
// that process. It reports whether a signal was sent; a process that is
// not ours any more is not an error.
func Kill(id Identity, sig syscall.Signal) (bool, error) {
	h, err := Open(id)
	if err != nil {
		var no *NotOursError
		if errors.As(err, &no) {
			return false, nil
		}
		return false, err
	}
	defer h.Close()
	return true, h.Signal(sig)
}

// WaitExit waits until the recorded process exits (at once when it is not
// alive as recorded) or ctx ends.
func WaitExit(ctx context.Context, id Identity) error {
	h, err := Open(id)
	if err != nil {
		var no *NotOursError
		if errors.As(err, &no) {
			return nil
		}
		return err
	}
	defer h.Close()
	return h.Wait(ctx)
}

// StartedAt returns the wall-clock time the live process pid started (to
// the precision of clock ticks), for comparisons with recorded times.
func StartedAt(pid int) (time.Time, error) {
	st, err := ReadStat(pid)
	if err != nil {
		return time.Time{}, err
	}
	bt, err := bootTime()
	if err != nil {
		return time.Time{}, err
	}
	return bt.Add(time.Duration(st.StartTicks) * time.Second / clockTicks), nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

func bootTime() (time.Time, error) {
	b, err := os.ReadFile(procRoot + "/stat")
	if err != nil {
		return time.Time{}, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("%s/stat btime %q: %w", procRoot, v, err)
			}
			return time.Unix(s, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s/stat has no btime line", procRoot)
}
