package workspace

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/proc"
	"github.com/hearthvm/hearth/internal/supervisor"
	"github.com/hearthvm/hearth/internal/vmm"
)

// testManager is a Manager over a temporary home whose backends are never
// used (these tests boot nothing).
func testManager(t *testing.T, lockWait, busyWait time.Duration) *Manager {
	t.Helper()
	m, err := New(Options{
		Home: t.TempDir(), Exe: "/nonexistent/hearth",
		Backends: func(context.Context, string, bool) (vmm.Backend, error) {
			return nil, errors.New("no backend in unit tests")
		},
		LockWait: lockWait, BusyWait: busyWait,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// addRecord writes a workspace record (and its directories).
func addRecord(t *testing.T, m *Manager, name string, ready bool) *record {
	t.Helper()
	rec := &record{ID: newID(), Name: name, Image: "debian-12", Backend: "qemu", CreatedAt: time.Now().UTC(), CPUs: 1, MemoryMiB: 256, Ready: ready}
	if err := os.MkdirAll(m.runDir(rec.ID), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.writeRecord(rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestCallsShareLifecycleExcludes(t *testing.T) {
	m := testManager(t, 300*time.Millisecond, 300*time.Millisecond)
	rec := addRecord(t, m, "w", true)
	ctx := context.Background()

	// Calls share.
	_, rel1, err := m.beginCall(ctx, "w", "exec")
	if err != nil {
		t.Fatal(err)
	}
	_, rel2, err := m.beginCall(ctx, "w", "export")
	if err != nil {
		t.Fatalf("a second call while one is in flight: %v", err)
	}

	// A lifecycle operation gets the lifecycle lock (calls only pass
	// through it) but not past the calls in flight: it refuses, naming them.
	l, err := m.beginLifecycle(ctx, "w", "stop")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = l.drain(ctx, nil)
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("drain with calls in flight: %v, want conflict", err)
	}
	for _, want := range []string{"exec (pid ", "export (pid ", "use force"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("conflict %q does not name %q", err, want)
		}
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("drain refused after %s, want it to wait BusyWait first", d)
	}

	// While the lifecycle operation holds the workspace, a new call waits
	// behind it (no starvation) and then fails naming it.
	_, _, err = m.beginCall(ctx, "w", "diff")
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "stop (pid ") {
		t.Fatalf("call during a lifecycle operation: %v, want conflict naming stop", err)
	}

	// Once the calls end, the lifecycle operation drains.
	rel1()
	rel2()
	if err := l.drain(ctx, nil); err != nil {
		t.Fatalf("drain with no calls: %v", err)
	}
	// A second lifecycle operation waits for the first, then names it.
	_, err = m.beginLifecycle(ctx, rec.ID, "start")
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "stop (pid ") {
		t.Fatalf("lifecycle during lifecycle: %v, want conflict naming stop", err)
	}
	l.release()
	if len(m.holders(rec.ID, holdLifecycle))+len(m.holders(rec.ID, holdCall)) != 0 {
		t.Fatalf("holders left after release: %v %v", m.holders(rec.ID, holdLifecycle), m.holders(rec.ID, holdCall))
	}
	_, rel, err := m.beginCall(ctx, "w", "exec")
	if err != nil {
		t.Fatalf("call after release: %v", err)
	}
	rel()
}

func TestLockWaitsForRelease(t *testing.T) {
	m := testManager(t, 10*time.Second, 10*time.Second)
	addRecord(t, m, "w", true)
	ctx := context.Background()
	l, err := m.beginLifecycle(ctx, "w", "start")
	if err != nil {
		t.Fatal(err)
	}
	var released atomic.Bool
	go func() {
		time.Sleep(200 * time.Millisecond)
		released.Store(true)
		l.release()
	}()
	_, rel, err := m.beginCall(ctx, "w", "exec")
	if err != nil {
		t.Fatalf("call waiting for a lifecycle operation: %v", err)
	}
	if !released.Load() {
		t.Fatal("the call got the workspace while start held it")
	}
	rel()
}

func TestPreemptEndsCalls(t *testing.T) {
	m := testManager(t, time.Second, 5*time.Second)
	addRecord(t, m, "w", true)
	ctx := context.Background()
	_, rel, err := m.beginCall(ctx, "w", "exec")
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.beginLifecycle(ctx, "w", "delete")
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	called := false
	start := time.Now()
	// The preemption stands for killing the VM: the call fails and lets go.
	if err := l.drain(ctx, func() { called = true; go rel() }); err != nil {
		t.Fatalf("drain with preempt: %v", err)
	}
	if !called {
		t.Fatal("preempt not called with a call in flight")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("preempting drain took %s", d)
	}
}

// TestLockWaitCancelled: a caller whose context ends while it waits gets
// its cancellation back, not a conflict.
func TestLockWaitCancelled(t *testing.T) {
	m := testManager(t, time.Minute, time.Minute)
	addRecord(t, m, "w", true)
	l, err := m.beginLifecycle(context.Background(), "w", "create")
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	for name, f := range map[string]func(context.Context) error{
		"call":      func(ctx context.Context) error { _, _, err := m.beginCall(ctx, "w", "exec"); return err },
		"lifecycle": func(ctx context.Context) error { _, err := m.beginLifecycle(ctx, "w", "start"); return err },
	} {
		err := f(ctx)
		if !errors.Is(err, context.Canceled) || errors.Is(err, errdefs.ErrConflict) || errdefs.Classify(err) != errdefs.KindCanceled {
			t.Errorf("%s, cancelled: %v, want context.Canceled and no conflict", name, err)
		}
		if !strings.Contains(fmtErr(err), "create (pid ") {
			t.Errorf("%s, cancelled: %v does not say what it waited for", name, err)
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err = f(dctx)
		dcancel()
		if !errors.Is(err, context.DeadlineExceeded) || errdefs.Classify(err) != errdefs.KindTimeout || errors.Is(err, errdefs.ErrConflict) {
			t.Errorf("%s, deadline: %v, want deadline exceeded (timeout) and no conflict", name, err)
		}
	}
	// Draining honours ctx too.
	m2 := testManager(t, time.Minute, time.Minute)
	addRecord(t, m2, "v", true)
	_, rel, err := m2.beginCall(context.Background(), "v", "exec")
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	l2, err := m2.beginLifecycle(context.Background(), "v", "stop")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.release()
	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	if err := l2.drain(dctx, nil); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("drain, deadline: %v", err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestDeletedWhileWaiting: a call waiting for a delete finds the workspace
// gone, not a stale lock.
func TestDeletedWhileWaiting(t *testing.T) {
	m := testManager(t, 10*time.Second, time.Second)
	rec := addRecord(t, m, "w", true)
	l, err := m.beginLifecycle(context.Background(), "w", "delete")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.RemoveAll(m.dir(rec.ID))
		l.release()
	}()
	if _, _, err := m.beginCall(context.Background(), rec.ID, "exec"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("call on a workspace deleted while it waited: %v, want not found", err)
	}
}

func TestCallRefusesUnfinishedCreate(t *testing.T) {
	m := testManager(t, time.Second, time.Second)
	addRecord(t, m, "w", false)
	if _, _, err := m.beginCall(context.Background(), "w", "exec"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("call on an unfinished create: %v, want failed precondition", err)
	}
}

// TestReclaimAbandonedCreate: a create whose process died (no lock held)
// is replaced by a create of the same name; one in progress is not.
func TestReclaimAbandonedCreate(t *testing.T) {
	m := testManager(t, time.Second, time.Second)
	live := addRecord(t, m, "busy", false)
	held, err := m.lockNew(live, "create")
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()
	gone, err := m.reclaimAbandoned(live)
	if gone || !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "create (pid ") {
		t.Fatalf("reclaim of a create in progress: %v %v", gone, err)
	}
	if w := m.info(live); w.State == api.StateError || !strings.Contains(w.Error, "being created") {
		t.Fatalf("info of a create in progress: %+v", w)
	}

	dead := addRecord(t, m, "dead", false)
	if w := m.info(dead); w.State != api.StateError || !strings.Contains(w.Error, "interrupted") {
		t.Fatalf("info of an interrupted create: %+v", w)
	}
	gone, err = m.reclaimAbandoned(dead)
	if !gone || err != nil {
		t.Fatalf("reclaim of an interrupted create: %v %v", gone, err)
	}
	if _, err := os.Stat(m.dir(dead.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("interrupted create's files left: %v", err)
	}
	ready := addRecord(t, m, "ready", true)
	if gone, err := m.reclaimAbandoned(ready); gone || err != nil {
		t.Fatalf("reclaim of a ready workspace: %v %v", gone, err)
	}
}

// sleeper starts a process unrelated to hearth.
func sleeper(t *testing.T) (*exec.Cmd, proc.Identity) {
	t.Helper()
	cmd := exec.Command("sleep", "120")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	id, err := proc.Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, id
}

func plantStatus(t *testing.T, m *Manager, id string, st *supervisor.Status) {
	t.Helper()
	if err := atomicfile.WriteJSON(filepath.Join(m.runDir(id), "vm.json"), st, 0o600); err != nil {
		t.Fatal(err)
	}
}

func alive(cmd *exec.Cmd) bool {
	return cmd.Process.Signal(syscall.Signal(0)) == nil && cmd.ProcessState == nil
}

// TestReconcileAndKills: what vm.json says against what runs, and that
// only the recorded processes themselves are ever signalled.
func TestReconcileAndKills(t *testing.T) {
	boot, err := proc.BootID()
	if err != nil {
		t.Fatal(err)
	}
	m := testManager(t, 5*time.Second, time.Second)
	ctx := context.Background()

	t.Run("host rebooted", func(t *testing.T) {
		rec := addRecord(t, m, "rebooted", true)
		cmd, id := sleeper(t)
		// The record of an earlier boot names live pids with matching start
		// times: only the boot id tells them apart.
		plantStatus(t, m, rec.ID, &supervisor.Status{State: "running", SupervisorPID: id.PID, SupervisorStart: id.StartTicks,
			VMMPID: id.PID, VMMStart: id.StartTicks, HostBootID: "0000-earlier-boot"})
		w := m.info(rec)
		if w.State != api.StateStopped || w.LastExit != exitHostRebooted {
			t.Fatalf("after a reboot: state %s, last_exit %q", w.State, w.LastExit)
		}
		if _, err := m.Stop(ctx, rec.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Delete(ctx, rec.ID, true); err != nil {
			t.Fatal(err)
		}
		if !alive(cmd) {
			t.Fatal("stop/delete after a reboot killed a process")
		}
	})

	t.Run("pid reused", func(t *testing.T) {
		rec := addRecord(t, m, "reused", true)
		cmd, id := sleeper(t)
		plantStatus(t, m, rec.ID, &supervisor.Status{State: "running", SupervisorPID: id.PID, SupervisorStart: id.StartTicks - 1,
			VMMPID: id.PID, VMMStart: id.StartTicks - 1, HostBootID: boot})
		if w := m.info(rec); w.State == api.StateRunning {
			t.Fatalf("a reused pid reads as running: %+v", w)
		}
		m.forceStop(rec.ID)
		if _, err := m.Stop(ctx, rec.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Delete(ctx, rec.ID, true); err != nil {
			t.Fatal(err)
		}
		if !alive(cmd) {
			t.Fatal("a process that reused a recorded pid was killed")
		}
	})

	t.Run("old record with a bare pid", func(t *testing.T) {
		rec := addRecord(t, m, "legacy", true)
		cmd, id := sleeper(t)
		plantStatus(t, m, rec.ID, &supervisor.Status{State: "running", SupervisorPID: id.PID, VMMPID: id.PID})
		if w := m.info(rec); w.State == api.StateRunning {
			t.Fatalf("an unrelated process reads as the VM: %+v", w)
		}
		m.forceStop(rec.ID)
		if !alive(cmd) {
			t.Fatal("an unrelated process named by a bare pid was killed")
		}
	})

	t.Run("supervisor died", func(t *testing.T) {
		rec := addRecord(t, m, "orphaned", true)
		sup, sid := sleeper(t)
		sup.Process.Kill()
		sup.Wait()
		plantStatus(t, m, rec.ID, &supervisor.Status{State: "running", SupervisorPID: sid.PID, SupervisorStart: sid.StartTicks,
			VMMPID: sid.PID, VMMStart: sid.StartTicks, HostBootID: boot})
		w := m.info(rec)
		if w.State != api.StateStopped || !strings.HasPrefix(w.LastExit, exitSupervisorDied) {
			t.Fatalf("after the supervisor died: state %s, last_exit %q", w.State, w.LastExit)
		}
	})

	t.Run("running, then killed", func(t *testing.T) {
		rec := addRecord(t, m, "live", true)
		vm := exec.Command("sleep", "120")
		if err := vm.Start(); err != nil {
			t.Fatal(err)
		}
		reaped := make(chan struct{})
		go func() { vm.Wait(); close(reaped) }() // so that the "VMM" leaves no zombie
		defer func() { vm.Process.Kill(); <-reaped }()
		vid, err := proc.Of(vm.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		// A supervisor that exits by itself once its VMM is gone.
		sup := exec.Command("sh", "-c", "while kill -0 "+strconv.Itoa(vid.PID)+" 2>/dev/null; do sleep 0.05; done")
		if err := sup.Start(); err != nil {
			t.Fatal(err)
		}
		defer sup.Wait()
		sid, err := proc.Of(sup.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		plantStatus(t, m, rec.ID, &supervisor.Status{State: "running", SupervisorPID: sid.PID, SupervisorStart: sid.StartTicks,
			VMMPID: vid.PID, VMMStart: vid.StartTicks, HostBootID: boot})
		if w := m.info(rec); w.State != api.StateRunning || w.PID != vid.PID {
			t.Fatalf("live processes: %+v", w)
		}
		m.forceStop(rec.ID)
		if err := proc.WaitExit(ctx, vid); err != nil {
			t.Fatal(err)
		}
		if vid.Check() == proc.Alive {
			t.Fatal("forceStop did not kill the recorded VMM")
		}
	})
}
