package workspace

// Workspace locks.
//
// Two flock(2) files in a workspace's directory say what may run at once,
// across every hearth process (CLI calls, servers, SDK users):
//
//	lock        the lifecycle lock. create (from its first record until the
//	            workspace is ready: boot, seed, baseline), start, stop and
//	            delete hold it exclusively, so they never overlap.
//	calls.lock  held shared by each call that uses the running VM (exec,
//	            sync push, export, diff, shell calls) for the whole call,
//	            and exclusively by a lifecycle operation before it changes
//	            the VM, so no call loses its VM or disk half-way.
//
// A call takes lock shared, then calls.lock shared, then lets lock go:
// while a lifecycle operation holds or waits for lock, new calls wait
// behind it, so a stream of calls cannot starve it.
//
// Waits are bounded. A lifecycle operation or a call waits at most
// Options.LockWait (default 2 minutes) for a lifecycle operation that
// holds the workspace, then fails with errdefs.ErrConflict naming it
// ("create (pid 4242, for 1m10s)"). A lifecycle operation that finds calls
// in flight waits at most Options.BusyWait (default 30 s) for them to end:
//   - stop and start then refuse (ErrConflict naming the calls: a
//     foreground exec may run for hours, and a stop does not end someone
//     else's work unasked);
//   - stop and delete with force end them instead: they stop the
//     VM first (the calls fail, their guest processes gone), wait for the
//     calls to unwind, and only then go on, so an export that was running
//     fails and rolls its destination back before any file of the
//     workspace is removed.
//
// Every holder is recorded in DIR/holders/ (operation, pid, start) so that
// a conflict names who holds the workspace. Any wait ends when the
// caller's context ends; the error then wraps context.Canceled or
// context.DeadlineExceeded (with errdefs.ErrTimeout), never ErrConflict.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/proc"
)

// Default lock waits (see Options).
const (
	DefaultLockWait = 2 * time.Minute
	DefaultBusyWait = 30 * time.Second
)

// errBusy is flockWait's answer when its own bound elapsed.
var errBusy = errors.New("lock busy")

// flockWait takes a flock (syscall.LOCK_SH or LOCK_EX) on f. It retries
// until it gets it, wait has elapsed (errBusy) or ctx ends (ctx's error).
// flock has no wake-up to wait on that a context can cancel, so it polls,
// backing off to 100 ms.
func flockWait(ctx context.Context, f *os.File, how int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	delay := 5 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("flock %s: %w", f.Name(), err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return errBusy
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// waitErr wraps the error of a wait that the caller's context ended.
func waitErr(err error, what string) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", what, err, errdefs.ErrTimeout)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// openLock opens a lock file of workspace id; a workspace deleted
// meanwhile is ErrNotFound.
func (m *Manager) openLock(id, name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(m.dir(id), name), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("workspace %s: it was deleted: %w", id, errdefs.ErrNotFound)
	}
	return f, err
}

const (
	holdLifecycle = "lifecycle"
	holdCall      = "call"
)

// holder is DIR/holders/<pid>-<n>.json: who holds a workspace lock.
type holder struct {
	Op    string        `json:"op"`
	Kind  string        `json:"kind"`
	Proc  proc.Identity `json:"proc"`
	Since time.Time     `json:"since"`
}

var holderSeq atomic.Int64

// addHolder records that this process holds a lock of workspace id for
// op; the returned function removes the record. Recording is best effort:
// it only serves error messages.
func (m *Manager) addHolder(id, kind, op string) func() {
	self, _ := proc.Self()
	dir := filepath.Join(m.dir(id), "holders")
	os.MkdirAll(dir, 0o700)
	p := filepath.Join(dir, fmt.Sprintf("%d-%d.json", os.Getpid(), holderSeq.Add(1)))
	if atomicfile.WriteJSON(p, holder{Op: op, Kind: kind, Proc: self, Since: time.Now().UTC()}, 0o600) != nil {
		return func() {}
	}
	return func() { os.Remove(p) }
}

// holders describes the live holders of kind, e.g. "exec (pid 42, for
// 3m2s)"; records of processes that are gone are removed.
func (m *Manager) holders(id, kind string) []string {
	dir := filepath.Join(m.dir(id), "holders")
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var h holder
		if json.Unmarshal(b, &h) != nil {
			continue
		}
		if s := h.Proc.Check(); s != proc.Alive {
			if s != proc.Unknown {
				os.Remove(p)
			}
			continue
		}
		if h.Kind == kind {
			out = append(out, fmt.Sprintf("%s (pid %d, for %s)", h.Op, h.Proc.PID, time.Since(h.Since).Round(time.Second)))
		}
	}
	return out
}

func (m *Manager) holdersText(id, kind string) string {
	hs := m.holders(id, kind)
	if len(hs) == 0 {
		return "another hearth process"
	}
	return strings.Join(hs, ", ")
}

// useLock is a call's hold on a workspace (calls.lock shared).
type useLock struct {
	calls *os.File
	drop  func()
}

func (u *useLock) release() {
	u.drop()
	u.calls.Close()
}

// beginCall resolves ref and takes the shared lock of a call named op
// (see the package's lock notes). The workspace must be ready (its create
// finished). Release with the returned function.
func (m *Manager) beginCall(ctx context.Context, ref, op string) (*record, func(), error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	gate, err := m.openLock(rec.ID, "lock")
	if err != nil {
		return nil, nil, err
	}
	defer gate.Close() // the gate is only passed through
	if err := flockWait(ctx, gate, syscall.LOCK_SH, m.lockWait); err != nil {
		if errors.Is(err, errBusy) {
			return nil, nil, fmt.Errorf("%s in %s: the workspace is busy: %s holds it; try again when that is done: %w",
				op, rec.Name, m.holdersText(rec.ID, holdLifecycle), errdefs.ErrConflict)
		}
		return nil, nil, waitErr(err, fmt.Sprintf("%s in %s: waiting for %s", op, rec.Name, m.holdersText(rec.ID, holdLifecycle)))
	}
	calls, err := m.openLock(rec.ID, "calls.lock")
	if err != nil {
		return nil, nil, err
	}
	// With the gate held shared no lifecycle operation holds calls.lock.
	if err := flockWait(ctx, calls, syscall.LOCK_SH, m.lockWait); err != nil {
		calls.Close()
		if errors.Is(err, errBusy) {
			err = fmt.Errorf("%s in %s: the workspace is busy: %w", op, rec.Name, errdefs.ErrConflict)
		}
		return nil, nil, err
	}
	u := &useLock{calls: calls, drop: func() {}}
	if rec, err = m.readRecord(rec.ID); err != nil {
		u.release()
		return nil, nil, err
	}
	if !rec.Ready {
		u.release()
		return nil, nil, fmt.Errorf("workspace %s: its create did not finish: delete it (with force) and create it again: %w", rec.Name, errdefs.ErrFailedPrecondition)
	}
	u.drop = m.addHolder(rec.ID, holdCall, op)
	return rec, u.release, nil
}

// lifecycleLock is a lifecycle operation's hold on a workspace.
type lifecycleLock struct {
	m     *Manager
	rec   *record
	op    string
	gate  *os.File
	calls *os.File
	drop  func()
}

func (l *lifecycleLock) release() {
	l.drop()
	if l.calls != nil {
		l.calls.Close()
	}
	l.gate.Close()
}

// beginLifecycle resolves ref and takes its lifecycle lock exclusively for
// op, waiting at most LockWait for another lifecycle operation. The
// record is read again under the lock. Call drain before changing the VM.
func (m *Manager) beginLifecycle(ctx context.Context, ref, op string) (*lifecycleLock, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	gate, err := m.openLock(rec.ID, "lock")
	if err != nil {
		return nil, err
	}
	if err := flockWait(ctx, gate, syscall.LOCK_EX, m.lockWait); err != nil {
		gate.Close()
		if errors.Is(err, errBusy) {
			return nil, fmt.Errorf("%s %s: the workspace is busy: %s holds it; try again when that is done: %w",
				op, rec.Name, m.holdersText(rec.ID, holdLifecycle), errdefs.ErrConflict)
		}
		return nil, waitErr(err, fmt.Sprintf("%s %s: waiting for %s", op, rec.Name, m.holdersText(rec.ID, holdLifecycle)))
	}
	if rec, err = m.readRecord(rec.ID); err != nil {
		gate.Close()
		return nil, err
	}
	return &lifecycleLock{m: m, rec: rec, op: op, gate: gate, drop: m.addHolder(rec.ID, holdLifecycle, op)}, nil
}

// drain takes calls.lock exclusively: it waits at most BusyWait for the
// calls in flight to end, and keeps new ones out until release. With
// preempt, calls still in flight are ended first by preempt (which stops
// the VM); without, they make drain fail with ErrConflict naming them.
func (l *lifecycleLock) drain(ctx context.Context, preempt func()) error {
	if l.calls != nil {
		return nil
	}
	m, rec := l.m, l.rec
	calls, err := m.openLock(rec.ID, "calls.lock")
	if err != nil {
		return err
	}
	err = flockWait(ctx, calls, syscall.LOCK_EX, 0)
	if errors.Is(err, errBusy) {
		if preempt != nil {
			m.log.Info("ending calls in flight", "workspace", rec.ID, "op", l.op, "calls", m.holdersText(rec.ID, holdCall))
			preempt()
		}
		err = flockWait(ctx, calls, syscall.LOCK_EX, m.busyWait)
	}
	if err != nil {
		calls.Close()
		if errors.Is(err, errBusy) {
			if preempt != nil {
				return fmt.Errorf("%s %s: the VM is stopped but calls still hold the workspace after %s: %s: try again: %w",
					l.op, rec.Name, m.busyWait, m.holdersText(rec.ID, holdCall), errdefs.ErrConflict)
			}
			return fmt.Errorf("%s %s: calls are in flight: %s (waited %s): wait for them to finish, or use force, which ends them by stopping the VM: %w",
				l.op, rec.Name, m.holdersText(rec.ID, holdCall), m.busyWait, errdefs.ErrConflict)
		}
		return waitErr(err, fmt.Sprintf("%s %s: waiting for calls in flight (%s)", l.op, rec.Name, m.holdersText(rec.ID, holdCall)))
	}
	l.calls = calls
	return nil
}

// lockNew takes both locks of a workspace directory that nobody else knows
// yet (create, before its first record is written).
func (m *Manager) lockNew(rec *record, op string) (*lifecycleLock, error) {
	l := &lifecycleLock{m: m, rec: rec, op: op, drop: func() {}}
	var err error
	if l.gate, err = m.openLock(rec.ID, "lock"); err != nil {
		return nil, err
	}
	if l.calls, err = m.openLock(rec.ID, "calls.lock"); err != nil {
		l.gate.Close()
		return nil, err
	}
	for _, f := range []*os.File{l.gate, l.calls} {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			l.release()
			return nil, fmt.Errorf("lock the new workspace %s: %w", rec.ID, err)
		}
	}
	l.drop = m.addHolder(rec.ID, holdLifecycle, op)
	return l, nil
}

// reclaimAbandoned removes a workspace whose create never finished and
// whose creator is gone (it no longer holds the lifecycle lock): the VM of
// a create that was killed, and its files. It reports false, with the
// reason, when the create is still in progress.
func (m *Manager) reclaimAbandoned(rec *record) (bool, error) {
	gate, err := m.openLock(rec.ID, "lock")
	if err != nil {
		return errors.Is(err, errdefs.ErrNotFound), nil
	}
	defer gate.Close()
	if err := syscall.Flock(int(gate.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false, fmt.Errorf("a workspace named %q is being created (%s): wait for it, or pick another name: %w",
			rec.Name, m.holdersText(rec.ID, holdLifecycle), errdefs.ErrAlreadyExists)
	}
	cur, err := m.readRecord(rec.ID)
	if err != nil || cur.Ready {
		return false, nil
	}
	m.log.Info("removing a workspace whose create was interrupted", "id", rec.ID, "name", rec.Name)
	m.forceStop(rec.ID)
	if err := os.RemoveAll(m.dir(rec.ID)); err != nil {
		return false, fmt.Errorf("remove the interrupted create %s: %w", rec.ID, err)
	}
	return true, nil
}

// creating describes a create in progress on workspace id ("" if none).
func (m *Manager) creating(id string) string {
	for _, h := range m.holders(id, holdLifecycle) {
		if strings.HasPrefix(h, "create ") {
			return h
		}
	}
	return ""
}
