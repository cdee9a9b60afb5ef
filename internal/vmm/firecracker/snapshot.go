package firecracker

// Memory snapshots through Firecracker's snapshot API (see
// notes/firecracker.md §1.4): pause and resume are PATCH /vm
// {"state":"Paused"|"Resumed"}; PUT /snapshot/create (VM paused) writes
// the device state and the guest memory to two files; a fresh process
// (before any boot resource) takes PUT /snapshot/load with the memory
// file as a File backend (mapped private, copy on write: the file must
// stay untouched while the VM lives, so a restore gets its own copy) and
// resume_vm. Firecracker resets the guest's vsock connections when it
// saves, and the vsock socket path is overridden on load, so the agent
// is reached afresh; a restore is refused unless the snapshot format's
// version matches (the same Firecracker version, recorded in Compat).

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hearthvm/hearth/internal/vmm"
)

var _ vmm.Saver = (*Machine)(nil)

// Pause implements vmm.Saver.
func (m *Machine) Pause(ctx context.Context) error {
	if err := m.client.SetVMState(ctx, VMPaused); err != nil {
		return m.withExit(fmt.Errorf("pause the VM: %w", err))
	}
	return nil
}

// Resume implements vmm.Saver.
func (m *Machine) Resume(ctx context.Context) error {
	if err := m.client.SetVMState(ctx, VMResumed); err != nil {
		return m.withExit(fmt.Errorf("resume the VM: %w", err))
	}
	return nil
}

// SaveState implements vmm.Saver: a full snapshot (device state and
// memory); final changes nothing here.
func (m *Machine) SaveState(ctx context.Context, state, mem string, final bool) error {
	if err := m.client.CreateSnapshot(ctx, SnapshotCreate{SnapshotType: SnapshotFull, SnapshotPath: state, MemFilePath: mem}); err != nil {
		return m.withExit(fmt.Errorf("save the VM: %w", err))
	}
	for _, p := range []string{state, mem} {
		os.Chmod(p, 0o400)
	}
	return nil
}

// Compat implements vmm.Saver.
func (m *Machine) Compat(ctx context.Context) (vmm.Compat, error) {
	return vmm.Compat{Backend: Name, Version: m.version, Accel: "kvm", CPUModel: "host:" + hostCPUModel(),
		MemoryMiB: m.spec.MemoryMiB, CPUs: m.spec.CPUs}, nil
}

// SnapshotFull is the snapshot_type of a full snapshot.
const SnapshotFull = "Full"

// LoadFor is the /snapshot/load request that resumes spec.Restore with
// its memory in spec.MemoryFile and the agent's vsock at vsockPath.
func LoadFor(spec vmm.Spec, vsockPath string) SnapshotLoad {
	return SnapshotLoad{
		SnapshotPath:  spec.Restore.StateFile,
		MemBackend:    &MemoryBackend{BackendType: "File", BackendPath: spec.MemoryFile},
		ResumeVM:      true,
		VsockOverride: &VsockOverride{UDSPath: vsockPath},
	}
}

// hostCPUModel is /proc/cpuinfo's first "model name".
func hostCPUModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			_, v, _ := strings.Cut(line, ":")
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// HostCompat is what a VM of this backend started now would be (for a
// restore's check).
func (b *Backend) HostCompat(ctx context.Context, kernel string, cpus, memMiB int) (vmm.Compat, error) {
	v, err := b.Version(ctx)
	if err != nil {
		return vmm.Compat{}, err
	}
	return vmm.Compat{Backend: Name, Version: v, Accel: "kvm", CPUModel: "host:" + hostCPUModel(), MemoryMiB: memMiB, CPUs: cpus}, nil
}
