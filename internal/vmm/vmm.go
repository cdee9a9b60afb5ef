// Package vmm is the boundary between hearth and a virtual machine monitor.
//
// A Backend boots a Spec into a Machine. Every Machine offers the guest agent
// through a hybrid-vsock Unix socket (Machine.AgentSocket): Firecracker's own
// vsock socket, or for QEMU a socket served by package serialmux over a
// virtio-serial port. Host code above this package never knows which.
package vmm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Spec is what to boot.
type Spec struct {
	// ID names the VM in logs and socket names.
	ID string
	// Dir is a private directory for this VM's sockets and logs; it must exist.
	Dir string
	// Kernel is an uncompressed ELF vmlinux with PVH entry.
	Kernel string
	// Initrd is a newc cpio holding the agent as /init.
	Initrd string
	// RootFS is the image's root file system, attached read-only as the
	// first disk (/dev/vda). It is shared by every VM of the image.
	RootFS string
	// DataDisk, if set, is attached writable as the second disk (/dev/vdb).
	DataDisk string
	// ExtraDisks are attached after the data disk, in order (named data
	// disks; the guest finds each by its file system's UUID).
	ExtraDisks []Disk
	CPUs       int
	MemoryMiB  int
	// KernelArgs are appended to the backend's own command line.
	KernelArgs []string
	// ConsoleLog receives the serial console.
	ConsoleLog string
	// NetSocket, if set, gives the guest a virtio-net NIC whose Ethernet
	// frames go to this Unix socket (package netstack listens there);
	// empty means no NIC at all.
	NetSocket string
	// NetTap, if set, gives the guest a virtio-net NIC on a TAP device of
	// this name, in a network namespace of the VMM's own (package tapns);
	// the backend hands the packet socket on it to NetAttach once the VMM
	// has started. Firecracker's only way; QEMU's when HEARTH_NET_LINK=tap.
	NetTap string `json:",omitempty"`
	// NetAttach receives the packet socket of NetTap's device.
	NetAttach func(*os.File) `json:"-"`
	// MemoryFile, if set, backs the guest's RAM with this file, mapped
	// shared (QEMU: memory-backend-file,share=on), so that a memory
	// snapshot copies the file instead of streaming the RAM through the
	// VMM. The caller creates it (mode 0600) with the RAM's size.
	MemoryFile string `json:",omitempty"`
	// Restore, if set, resumes a saved VM instead of booting one: its RAM
	// is MemoryFile (a copy of the saved one), its devices come from
	// Restore.StateFile.
	Restore *Restore `json:",omitempty"`
}

// Restore is a saved VM to resume (see Spec.Restore).
type Restore struct {
	// StateFile is the device state a Saver wrote.
	StateFile string
}

// Compat is what a saved VM needs of the VMM that resumes it: a memory
// snapshot restores only where all of it matches.
type Compat struct {
	Backend string `json:"backend"`
	// Version is the VMM's version (QEMU "7.2.22").
	Version string `json:"version"`
	// Accel is the accelerator ("kvm", "tcg").
	Accel string `json:"accel"`
	// CPUModel is the guest CPU model ("max" under TCG; "host:<host CPU
	// model name>" under KVM).
	CPUModel  string `json:"cpu_model"`
	MemoryMiB int    `json:"memory_mib"`
	CPUs      int    `json:"cpus"`
}

// Saver is a Machine whose guest can be paused and saved: the base of
// memory snapshots. Pause stops the vCPUs and flushes the disks, so that
// the disk files, the memory file and the saved state all show one
// instant; Resume goes on.
type Saver interface {
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	// SaveState writes the paused VM's device state to state and its RAM
	// to mem (sparse: what the guest never touched costs nothing). With
	// final the VM will not resume, so its RAM may be moved, not copied.
	SaveState(ctx context.Context, state, mem string, final bool) error
	// Compat describes this VM for a later restore.
	Compat(ctx context.Context) (Compat, error)
}

// Disk is an extra virtio-blk disk.
type Disk struct {
	Path     string
	ReadOnly bool
}

// Validate checks the fields every backend needs.
func (s *Spec) Validate() error {
	var errs []string
	if s.ID == "" {
		errs = append(errs, "ID is empty")
	}
	for _, f := range []struct{ name, path string }{{"kernel", s.Kernel}, {"initrd", s.Initrd}, {"root file system", s.RootFS}, {"VM directory", s.Dir}} {
		if f.path == "" {
			errs = append(errs, f.name+" path is empty")
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Sprintf("%s %s: %v", f.name, f.path, err))
		}
	}
	if s.CPUs < 1 || s.CPUs > 32 {
		errs = append(errs, fmt.Sprintf("cpus %d: want 1..32", s.CPUs))
	}
	if s.Restore != nil && s.MemoryFile == "" {
		errs = append(errs, "a restore needs the saved memory file")
	}
	if s.MemoryMiB < MinMemoryMiB {
		errs = append(errs, fmt.Sprintf("memory %d MiB: want at least %d MiB", s.MemoryMiB, MinMemoryMiB))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid VM spec: %s", strings.Join(errs, "; "))
	}
	return nil
}

// MinMemoryMiB is the least memory the guest kernel and agent boot in.
const MinMemoryMiB = 128

// Machine is a booted VM.
type Machine interface {
	// PID is the VMM process's pid.
	PID() int
	// AgentSocket is a Unix socket speaking the hybrid-vsock CONNECT
	// handshake to the guest.
	AgentSocket() string
	// Done is closed when the VMM process has exited.
	Done() <-chan struct{}
	// ExitReason describes how the VMM ended; valid after Done.
	ExitReason() string
	// Kill stops the VMM at once (no guest shutdown) and waits for it.
	Kill() error
	// Describe returns backend details for status output (e.g. accel=tcg).
	Describe() map[string]string
}

// Backend boots machines.
type Backend interface {
	Name() string
	// Check reports whether this backend can run here; the error says why not
	// and what to do.
	Check(ctx context.Context) error
	// Start boots spec. The VMM is a child of the calling process; it is
	// killed if ctx is cancelled before Start returns, never after.
	Start(ctx context.Context, spec Spec) (Machine, error)
}

// ErrVMExited is returned when the VMM exits while something waits on it.
var ErrVMExited = errors.New("VMM exited")

// ConsoleTail returns the last n lines of a console log, for error messages.
func ConsoleTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DefaultBootTimeout bounds how long a guest may take to answer after the
// VMM starts. Software emulation on a loaded host is slow; 60 s is far above
// the ~2 s a healthy boot takes.
const DefaultBootTimeout = 60 * time.Second
