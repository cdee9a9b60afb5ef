package qemu

// Memory snapshots on QEMU 7.2 (measured on the microvm machine): the
// guest's RAM lives in a shared memory-backend-file (vmm.Spec.MemoryFile),
// and with the x-ignore-shared migration capability a `migrate` to an
// `exec:` URI writes only the device state (tens of KB). A save is
// stop → migrate "exec:cat > STATE" → (the caller copies the RAM file and
// the disks while the guest stands still) → cont. A restore starts QEMU
// with `-incoming defer` on a copy of the RAM file, then
// migrate-incoming "exec:cat STATE" → cont. QEMU 7.2 has neither the
// file: URI nor mapped-ram.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/qmp"
	"github.com/hearthvm/hearth/internal/sparse"
	"github.com/hearthvm/hearth/internal/vmm"
)

var _ vmm.Saver = (*machine)(nil)

// monitor returns the machine's QMP session, connecting on first use.
// QEMU listens as soon as it has parsed its command line; until then the
// socket is missing or refuses, so connecting retries while QEMU runs.
func (m *machine) monitor(ctx context.Context) (*qmp.Client, error) {
	m.qmpMu.Lock()
	defer m.qmpMu.Unlock()
	if m.qmp != nil {
		return m.qmp, nil
	}
	delay := 5 * time.Millisecond
	for {
		c, err := qmp.Dial(ctx, m.qmpPath)
		if err == nil {
			m.qmp = c
			return c, nil
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("QEMU exited (%s): %w", m.reason, vmm.ErrVMExited)
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to QEMU's monitor: %w (last error: %v)", context.Cause(ctx), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// quote makes a path safe inside an exec: URI (run by /bin/sh -c).
func quote(p string) string { return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'" }

// Pause implements vmm.Saver: QMP stop (which drains and flushes every
// disk).
func (m *machine) Pause(ctx context.Context) error {
	c, err := m.monitor(ctx)
	if err != nil {
		return err
	}
	if err := c.Execute(ctx, "stop", nil, nil); err != nil {
		return fmt.Errorf("pause the VM: %w", err)
	}
	return nil
}

// Resume implements vmm.Saver.
func (m *machine) Resume(ctx context.Context) error {
	c, err := m.monitor(ctx)
	if err != nil {
		return err
	}
	if err := c.Execute(ctx, "cont", nil, nil); err != nil {
		return fmt.Errorf("resume the VM: %w", err)
	}
	return nil
}

// SaveState implements vmm.Saver: the device state through migrate, the
// RAM as a sparse copy of the shared memory file (moved with final).
func (m *machine) SaveState(ctx context.Context, path, mem string, final bool) error {
	if m.spec.MemoryFile == "" {
		return fmt.Errorf("this VM keeps its RAM in QEMU's own memory, not a shared file (it was booted by an older hearth): restart it to take memory snapshots: %w", errdefs.ErrFailedPrecondition)
	}
	c, err := m.monitor(ctx)
	if err != nil {
		return err
	}
	if err := c.SetCapabilities(ctx, "x-ignore-shared"); err != nil {
		return fmt.Errorf("save the VM: %w", err)
	}
	if err := c.SetMaxBandwidth(ctx, 1<<40); err != nil {
		return fmt.Errorf("save the VM: %w", err)
	}
	if _, err := c.Migrate(ctx, "exec:cat > "+quote(path)); err != nil {
		return fmt.Errorf("save the VM's device state: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("save the VM's device state: %w", err)
	}
	if fi.Size() == 0 {
		return fmt.Errorf("save the VM's device state: QEMU wrote nothing to %s", path)
	}
	if final {
		// The guest never runs again in this QEMU: keep its RAM file as
		// it is (the caller ends the VM).
		err := os.Rename(m.spec.MemoryFile, mem)
		if errors.Is(err, syscall.EXDEV) { // RAM on /dev/shm, the save on disk
			if _, err = sparse.CopyFile(ctx, m.spec.MemoryFile, mem, sparse.Options{Mode: 0o400}); err == nil {
				os.Remove(m.spec.MemoryFile)
			}
		}
		if err != nil {
			return fmt.Errorf("keep the guest's memory: %w", err)
		}
		return os.Chmod(mem, 0o400)
	}
	if _, err := sparse.CopyFile(ctx, m.spec.MemoryFile, mem, sparse.Options{Mode: 0o400}); err != nil {
		return fmt.Errorf("copy the guest's memory: %w", err)
	}
	return nil
}

// incoming loads a saved device state into a QEMU started with
// -incoming defer, and runs the guest.
func (m *machine) incoming(ctx context.Context, state string) error {
	c, err := m.monitor(ctx)
	if err != nil {
		return err
	}
	if err := c.SetCapabilities(ctx, "x-ignore-shared"); err != nil {
		return fmt.Errorf("restore the VM: %w", err)
	}
	if _, err := c.MigrateIncoming(ctx, "exec:cat "+quote(state)); err != nil {
		return fmt.Errorf("restore the VM's device state from %s: %w", state, err)
	}
	if err := c.Execute(ctx, "cont", nil, nil); err != nil {
		return fmt.Errorf("resume the restored VM: %w", err)
	}
	return nil
}

// Compat implements vmm.Saver.
func (m *machine) Compat(ctx context.Context) (vmm.Compat, error) {
	c, err := m.monitor(ctx)
	if err != nil {
		return vmm.Compat{}, err
	}
	return vmm.Compat{Backend: "qemu", Version: c.Greeting.Version(), Accel: string(m.accel), CPUModel: CPUModel(m.accel),
		MemoryMiB: m.spec.MemoryMiB, CPUs: m.spec.CPUs}, nil
}

// CPUModel is the guest CPU model hearth gives QEMU under accel: "max"
// under TCG (what it emulates is fixed by the QEMU version), the host's
// CPU under KVM.
func CPUModel(accel Accel) string {
	if accel != AccelKVM {
		return "max"
	}
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			_, v, _ := strings.Cut(line, ":")
			return "host:" + strings.TrimSpace(v)
		}
	}
	return "host"
}

// HostCompat is what a VM of this backend started now would be (for a
// restore's check, before anything starts).
func (b *Backend) HostCompat(ctx context.Context, kernel string, cpus, memMiB int) (vmm.Compat, error) {
	line, err := b.Version(ctx)
	if err != nil {
		return vmm.Compat{}, err
	}
	accel := b.opts.Accel
	if accel == "" {
		accel = b.Probe(ctx, kernel)
	}
	return vmm.Compat{Backend: "qemu", Version: ParseVersion(line), Accel: string(accel), CPUModel: CPUModel(accel), MemoryMiB: memMiB, CPUs: cpus}, nil
}

// ParseVersion takes "X.Y.Z" out of QEMU's --version line ("QEMU emulator
// version 7.2.22 (Debian ...)").
func ParseVersion(line string) string {
	f := strings.Fields(line)
	for i, w := range f {
		if w == "version" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return line
}
