package workspace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/hearthvm/hearth/internal/image"
	"github.com/hearthvm/hearth/internal/initrd"
	"github.com/hearthvm/hearth/internal/proc"
	"github.com/hearthvm/hearth/internal/supervisor"
	"github.com/hearthvm/hearth/internal/vmm"
	"golang.org/x/sys/unix"
)

// Defaults for new workspaces.
const (
	DefaultCPUs      = 2
	DefaultMemoryMiB = 1024
	DefaultDiskSize  = 8 << 30
	MaxMemoryMiB     = 256 << 10
)

// CreateOptions configure a new workspace.
type CreateOptions struct {
	Name      string
	Image     string
	Backend   string
	CPUs      int
	MemoryMiB int
	// DiskSize is the writable disk's size in bytes.
	DiskSize int64
	// Seed is a host directory or archive copied into /workspace.
	Seed string
	// Progress receives human-readable steps of a long create.
	Progress func(string)
	// Publish lists ports to publish, [HOST_ADDR:]HOST_PORT:GUEST_PORT
	// (see PortPublish); they are checked before anything is made.
	Publish []string
	PublishOptions
	// Disks are named data disks to attach before the first boot.
	Disks []DiskAttachOptions
	// Secrets are stored secrets to expose, each NAME or NAME:MODE (file,
	// env or brokered; default env). SecretEnvAll puts the env ones in
	// every exec's and shell's environment.
	Secrets      []string
	SecretEnvAll bool
	// Network is the guest network policy; nil means mode none (no NIC).
	Network *api.NetworkPolicy
}

// ValidateMachine checks cpus and memory.
func ValidateMachine(cpus, memMiB int) error {
	if cpus < 1 || cpus > 32 {
		return errdefs.Arg("cpus", "%d: want 1 to 32", cpus)
	}
	if memMiB < vmm.MinMemoryMiB {
		return errdefs.Arg("memory_mib", "%d MiB is too small: the guest needs at least %d MiB", memMiB, vmm.MinMemoryMiB)
	}
	if memMiB > MaxMemoryMiB {
		return errdefs.Arg("memory_mib", "%d MiB is more than %d MiB", memMiB, MaxMemoryMiB)
	}
	return nil
}

// vmState is the reconciled state of a workspace's VM.
type vmState struct {
	state    api.State
	lastExit string
	err      string
	status   *supervisor.Status
}

// pidAlive reports whether pid is a live (non-zombie) process whose command
// line contains want. It is the weak check of records that carry no
// process identity (see recordedAlive).
func pidAlive(pid int, want string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	if want == "" {
		return true
	}
	cl, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.Contains(string(cl), want)
}

// recordedAlive reports whether a recorded process is alive as recorded
// (same pid, start time and host boot). State files written before
// identities were recorded carry only a pid: then the process must at
// least be live and have want (a path of the workspace) in its command
// line.
func recordedAlive(id proc.Identity, want string) bool {
	if id.Recorded() {
		return id.Alive()
	}
	return want != "" && pidAlive(id.PID, want)
}

// killRecorded sends SIGKILL to a recorded process only if it is still
// that process (see recordedAlive); it reports whether it sent one.
func killRecorded(id proc.Identity, want string) bool {
	if id.Recorded() {
		sent, _ := proc.Kill(id, syscall.SIGKILL)
		return sent
	}
	if want != "" && pidAlive(id.PID, want) {
		return syscall.Kill(id.PID, syscall.SIGKILL) == nil
	}
	return false
}

// waitRecorded waits until a recorded process exits (at once if it is not
// alive as recorded) or ctx ends.
func waitRecorded(ctx context.Context, id proc.Identity, want string) error {
	if id.Recorded() {
		return proc.WaitExit(ctx, id)
	}
	if want == "" || !pidAlive(id.PID, want) {
		return nil
	}
	return waitPidExit(ctx, id.PID)
}

// hostRebooted reports whether st was written during an earlier boot of
// the host: its pids mean nothing now.
func hostRebooted(st *supervisor.Status) bool {
	if st.HostBootID == "" {
		return false
	}
	boot, err := proc.BootID()
	return err == nil && boot != st.HostBootID
}

// Reasons reconcile gives in last_exit.
const (
	exitHostRebooted   = "host rebooted while the VM was running"
	exitSupervisorDied = "supervisor died; VMM killed"
)

// vmState reconciles DIR/run/vm.json with the processes it names. It
// signals nothing.
func (m *Manager) vmState(id string) vmState {
	run := m.runDir(id)
	st, err := supervisor.ReadStatus(run)
	if err != nil {
		return vmState{state: api.StateStopped}
	}
	if hostRebooted(st) {
		if st.State == "exited" && st.ExitReason != "" {
			return vmState{state: api.StateStopped, lastExit: st.ExitReason}
		}
		return vmState{state: api.StateStopped, lastExit: exitHostRebooted}
	}
	supAlive := recordedAlive(st.Supervisor(), run)
	vmmAlive := st.VMMPID > 0 && recordedAlive(st.VMM(), m.dir(id))
	switch {
	case st.State == "running" && supAlive && vmmAlive:
		return vmState{state: api.StateRunning, status: st}
	case st.State == "booting" && supAlive:
		return vmState{state: api.StateStopped, lastExit: "booting", status: st}
	case st.State == "exited":
		if st.Error != "" {
			return vmState{state: api.StateError, lastExit: st.ExitReason, err: st.Error, status: st}
		}
		return vmState{state: api.StateStopped, lastExit: st.ExitReason, status: st}
	case vmmAlive && !supAlive:
		// Only a VMM started before VMMs died with their supervisor.
		return vmState{state: api.StateError, status: st, lastExit: "supervisor died",
			err: fmt.Sprintf("the VM's supervisor (pid %d) died while the VMM (pid %d) runs: stopping the workspace cleans up", st.SupervisorPID, st.VMMPID)}
	case !supAlive:
		// The supervisor went without recording an exit (kill -9, OOM):
		// its VMM died with it (parent-death signal).
		return vmState{state: api.StateStopped, status: st,
			lastExit: fmt.Sprintf("%s (supervisor pid %d went without recording an exit: killed, or out of memory)", exitSupervisorDied, st.SupervisorPID)}
	default:
		return vmState{state: api.StateStopped, status: st, lastExit: "VMM gone without a recorded exit (killed)"}
	}
}

// List returns every workspace.
func (m *Manager) List(ctx context.Context) ([]api.Workspace, error) {
	rs, err := m.records()
	if err != nil {
		return nil, err
	}
	out := make([]api.Workspace, 0, len(rs))
	for _, r := range rs {
		out = append(out, *m.info(r))
	}
	return out, nil
}

// Get returns one workspace by id or name.
func (m *Manager) Get(ctx context.Context, ref string) (*api.Workspace, error) {
	r, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	return m.info(r), nil
}

// Create makes a workspace and boots it; it returns once the guest agent
// answers (and the seed is in place and the baseline recorded).
func (m *Manager) Create(ctx context.Context, opts CreateOptions) (_ *api.Workspace, err error) {
	progress := opts.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if opts.Image == "" {
		opts.Image = image.DefaultImage
	}
	if opts.CPUs == 0 {
		opts.CPUs = DefaultCPUs
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = DefaultMemoryMiB
	}
	if opts.DiskSize == 0 {
		opts.DiskSize = DefaultDiskSize
	}
	if err := ValidateMachine(opts.CPUs, opts.MemoryMiB); err != nil {
		return nil, err
	}
	if opts.DiskSize < 64<<20 {
		return nil, errdefs.Arg("disk_size", "%d bytes is too small: use at least 64M", opts.DiskSize)
	}
	netLink, err := netLinkFromEnv()
	if err != nil {
		return nil, err
	}
	if opts.Name != "" {
		if err := ValidateName(opts.Name); err != nil {
			return nil, err
		}
	}
	if opts.Seed != "" {
		if err := checkSeed(ctx, opts.Seed, opts.DiskSize); err != nil {
			return nil, err
		}
	}
	for _, d := range opts.Disks {
		if _, err := m.readDisk(d.Disk); err != nil {
			return nil, err
		}
	}
	exposed, err := m.createSecrets(opts.Secrets)
	if err != nil {
		return nil, err
	}
	netPolicy, err := policyOf(opts.Network)
	if err != nil {
		return nil, err
	}
	img, err := (&image.Store{Root: m.root}).Get(opts.Image)
	if err != nil {
		return nil, err
	}
	backend, err := m.backends(ctx, opts.Backend, false)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.wsRoot(), 0o700); err != nil {
		return nil, err
	}
	// The global lock makes the name check and the directory creation
	// atomic. The workspace's own lifecycle lock is taken before its first
	// record is written and held until it is ready, so a start, stop or
	// delete of the new name waits for the create (or fails naming it).
	unlock, err := lock(ctx, filepath.Join(m.wsRoot(), ".lock"))
	if err != nil {
		return nil, err
	}
	id := newID()
	if opts.Name == "" {
		opts.Name = id
	} else {
		rs, err := m.records()
		if err != nil {
			unlock()
			return nil, err
		}
		for _, r := range rs {
			if r.Name != opts.Name {
				continue
			}
			// A create that was interrupted (its process killed) left a
			// workspace that never became ready: the same name replaces it.
			if !r.Ready {
				gone, err := m.reclaimAbandoned(r)
				if err != nil {
					unlock()
					return nil, err
				}
				if gone {
					continue
				}
			}
			unlock()
			return nil, fmt.Errorf("a workspace named %q already exists (%s): pick another name or delete it: %w", opts.Name, r.ID, errdefs.ErrAlreadyExists)
		}
	}
	dir := m.dir(id)
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o700); err != nil {
		unlock()
		return nil, err
	}
	os.MkdirAll(m.logDir(id), 0o700)
	rec := &record{ID: id, Name: opts.Name, Image: img.Name, Backend: backend.Name(), CreatedAt: time.Now().UTC(),
		CPUs: opts.CPUs, MemoryMiB: opts.MemoryMiB, DiskSizeBytes: opts.DiskSize, Seed: opts.Seed, KernelVersion: img.KernelVersion,
		Secrets: exposed, SecretEnvAll: opts.SecretEnvAll, NetLink: netLink}
	held, err := m.lockNew(rec, "create")
	if err != nil {
		unlock()
		os.RemoveAll(dir)
		return nil, err
	}
	err = m.writeRecord(rec)
	unlock()
	if err != nil {
		os.RemoveAll(dir)
		held.release()
		return nil, err
	}
	defer func() {
		if err != nil {
			m.forceStop(id)
			m.releaseDisks(rec)
			os.RemoveAll(dir)
		}
		held.release()
	}()
	if err := m.createPorts(id, opts.Publish, opts.PublishOptions); err != nil {
		return nil, err
	}
	// The image's files are hard-linked (never copied): the workspace pins
	// the exact lower layer its overlay was made on, and create costs the
	// same whatever the image's size.
	for _, l := range []struct{ src, dst string }{{img.RootFS, "base.ext4"}, {img.Kernel, "vmlinux"}} {
		if err := linkOrRef(l.src, filepath.Join(dir, l.dst)); err != nil {
			return nil, fmt.Errorf("pin image file: %w", err)
		}
	}
	progress("making the workspace disk")
	if err := makeDisk(ctx, filepath.Join(dir, "disk.ext4"), opts.DiskSize); err != nil {
		return nil, err
	}
	for _, d := range opts.Disks {
		if err := m.attachLocked(ctx, rec, d); err != nil {
			return nil, err
		}
	}
	if err := m.saveNetwork(id, netPolicy); err != nil {
		return nil, err
	}
	progress("booting the VM")
	if _, err := m.start(ctx, rec, backend.Name()); err != nil {
		return nil, err
	}
	if opts.Seed != "" {
		progress("copying the seed into /workspace")
		if err := m.seed(ctx, rec, opts.Seed); err != nil {
			return nil, err
		}
	}
	progress("recording the baseline")
	if err := m.recordBaseline(ctx, rec); err != nil {
		return nil, fmt.Errorf("record baseline: %w", err)
	}
	// The disk as it is now is what a reset to "baseline" goes back to.
	if _, err := m.takeSnapshot(ctx, rec, api.BaselineSnapshot); err != nil {
		return nil, fmt.Errorf("record the baseline snapshot: %w", err)
	}
	rec.Ready = true
	if err := m.writeRecord(rec); err != nil {
		return nil, err
	}
	return m.info(rec), nil
}

// linkOrRef hard-links src to dst, or symlinks when they are on different
// file systems.
func linkOrRef(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	return os.Symlink(abs, dst)
}

// makeDisk makes a sparse ext4 file of size bytes.
func makeDisk(ctx context.Context, path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return fmt.Errorf("size workspace disk: %w", err)
	}
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "hearth-data",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,discard", "-m", "0", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 workspace disk: %v: %s (install e2fsprogs)", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// spec builds the VM spec of a workspace.
func (m *Manager) spec(rec *record) (vmm.Spec, error) {
	agent, err := initrd.FindAgent()
	if err != nil {
		return vmm.Spec{}, err
	}
	rd, err := initrd.Ensure(home.Cache(m.root), agent)
	if err != nil {
		return vmm.Spec{}, err
	}
	dir := m.dir(rec.ID)
	spec := vmm.Spec{
		ID: rec.ID, Dir: m.runDir(rec.ID),
		Kernel: filepath.Join(dir, "vmlinux"), Initrd: rd,
		RootFS: filepath.Join(dir, "base.ext4"), DataDisk: filepath.Join(dir, "disk.ext4"),
		CPUs: rec.CPUs, MemoryMiB: rec.MemoryMiB,
		KernelArgs: []string{"hearth.root=/dev/vda", "hearth.data=/dev/vdb", "hearth.id=" + rec.ID, "hearth.hostname=" + hostname(rec.Name)},
		ConsoleLog: filepath.Join(m.runDir(rec.ID), "console.log"),
	}
	return spec, m.diskSpec(rec, &spec)
}

func hostname(name string) string {
	h := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, name)
	if len(h) > 63 {
		h = h[:63]
	}
	return strings.Trim(h, "-")
}

// start boots a stopped workspace (lock held by the caller or not needed).
func (m *Manager) start(ctx context.Context, rec *record, backendName string) (*supervisor.Status, error) {
	return m.boot(ctx, rec, backendName, nil)
}

// boot boots rec, or with restore set resumes a saved VM whose RAM file
// is already in place (see memsnap.go).
func (m *Manager) boot(ctx context.Context, rec *record, backendName string, restore *vmm.Restore) (*supervisor.Status, error) {
	spec, err := m.spec(rec)
	if err != nil {
		return nil, err
	}
	switch {
	case restore != nil:
		spec.MemoryFile = m.memoryFile(rec.ID) // placed by the caller
	case backendName == "qemu":
		// Guest RAM in a shared file, so the VM can be saved (memory
		// snapshots, suspend).
		if spec.MemoryFile, err = m.prepareMemoryFile(rec); err != nil {
			return nil, err
		}
	}
	spec.Restore = restore
	run := m.runDir(rec.ID)
	os.MkdirAll(run, 0o700)
	if err := m.writeBroker(rec); err != nil {
		return nil, fmt.Errorf("start workspace %s: %w", rec.ID, err)
	}
	// Keep the previous boot's console as console.log.1.
	if _, err := os.Stat(spec.ConsoleLog); err == nil {
		os.Rename(spec.ConsoleLog, spec.ConsoleLog+".1")
	}
	st, err := supervisor.Launch(ctx, m.exe, run, supervisor.Config{
		Backend: backendName, Spec: spec, BootTimeout: m.bootTimeout, CacheDir: home.Cache(m.root),
		Network: m.networkConfig(rec),
	})
	if err != nil {
		return nil, fmt.Errorf("start workspace %s: %w", rec.ID, err)
	}
	// Secret files live on a tmpfs: every boot gets them from the store,
	// before services start.
	if err := m.applySecrets(ctx, rec, false); err != nil {
		m.forceStop(rec.ID)
		return nil, fmt.Errorf("start workspace %s: %w", rec.ID, err)
	}
	m.afterBoot(ctx, rec, st) // published ports and services (services.go)
	return st, nil
}

// Start boots a stopped workspace; starting a running one is a no-op. It
// waits for a lifecycle operation in progress (a create of the same
// workspace, say) rather than touching its VM.
func (m *Manager) Start(ctx context.Context, ref string) (*api.Workspace, error) {
	l, err := m.beginLifecycle(ctx, ref, "start")
	if err != nil {
		return nil, err
	}
	defer l.release()
	rec := l.rec
	if !rec.Ready {
		return nil, fmt.Errorf("workspace %s: its create did not finish, so it has no baseline: delete it (with force) and create it again: %w", rec.Name, errdefs.ErrFailedPrecondition)
	}
	vs := m.vmState(rec.ID)
	if vs.state == api.StateRunning && agentSocketExists(vs) {
		return m.info(rec), nil
	}
	// Not running, or recorded running while its agent's socket is gone (a
	// boot given up after its starter was killed): boot it afresh.
	if err := l.drain(ctx, nil); err != nil {
		return nil, err
	}
	m.forceStop(rec.ID) // clear any half-dead remains (a VMM of an old supervisor, stale sockets)
	// A suspend whose caller was killed before it finished leaves a
	// temporary directory: whole (the supervisor finished the save), it
	// is resumed; otherwise the disk (flushed as the VM paused) boots.
	m.adoptSuspend(rec)
	if sm := m.suspended(rec.ID); sm != nil {
		// Suspended: resume its processes instead of booting.
		if err := m.resume(ctx, rec, sm); err != nil {
			return nil, err
		}
		return m.info(rec), nil
	}
	if _, err := m.start(ctx, rec, rec.Backend); err != nil {
		return nil, err
	}
	return m.info(rec), nil
}

// agentSocketExists reports whether a running VM's agent socket is there.
func agentSocketExists(vs vmState) bool {
	if vs.status == nil || vs.status.AgentSocket == "" {
		return true // nothing recorded to check against
	}
	_, err := os.Stat(vs.status.AgentSocket)
	return err == nil
}

// StopOptions configure Stop.
type StopOptions struct {
	// Force stops the VM even while calls (exec, export, ...) are in
	// flight; they fail. Without it a stop waits for them at most
	// Options.BusyWait and then refuses, naming them.
	Force bool
	// Suspend saves the guest's memory as it stops: the next start
	// resumes its processes instead of booting (QEMU).
	Suspend bool
}

// Stop shuts the guest down cleanly and waits for the VMM to exit; it kills
// the VM if the guest does not power off in time. Stopping a stopped
// workspace is a no-op.
func (m *Manager) Stop(ctx context.Context, ref string) (*api.Workspace, error) {
	return m.StopWith(ctx, ref, StopOptions{})
}

// StopWith is Stop with options.
func (m *Manager) StopWith(ctx context.Context, ref string, o StopOptions) (*api.Workspace, error) {
	l, err := m.beginLifecycle(ctx, ref, "stop")
	if err != nil {
		return nil, err
	}
	defer l.release()
	var preempt func()
	if o.Force {
		preempt = func() { m.stop(ctx, l.rec.ID) }
	}
	if err := l.drain(ctx, preempt); err != nil {
		return nil, err
	}
	if o.Suspend {
		if err := m.suspend(ctx, l.rec); err != nil {
			return nil, err
		}
		return m.info(l.rec), nil
	}
	if err := m.stop(ctx, l.rec.ID); err != nil {
		return nil, err
	}
	return m.info(l.rec), nil
}

func (m *Manager) stop(ctx context.Context, id string) error {
	vs := m.vmState(id)
	if vs.state != api.StateRunning {
		m.forceStop(id)
		return nil
	}
	run := m.runDir(id)
	supervisor.MarkClean(run)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := &guest.Client{Socket: vs.status.AgentSocket}
	if _, err := c.Call(sctx, &guestproto.Request{Op: guestproto.OpShutdown}); err != nil {
		m.log.Warn("guest shutdown request failed; killing the VM", "id", id, "err", err)
		m.forceStop(id)
		return nil
	}
	if err := waitRecorded(sctx, vs.status.Supervisor(), run); err != nil {
		m.forceStop(id)
	}
	return nil
}

// forceStop kills whatever is left of a workspace's VM and supervisor. It
// signals only the processes DIR/run/vm.json records, and only while they
// are still those processes: a pid that now names another process, or a
// record from before a host reboot, is left alone.
func (m *Manager) forceStop(id string) {
	run := m.runDir(id)
	st, err := supervisor.ReadStatus(run)
	if err != nil || hostRebooted(st) {
		return
	}
	if st.VMMPID > 0 && (st.State == "running" || st.State == "booting") {
		killRecorded(st.VMM(), m.dir(id))
	}
	sup := st.Supervisor()
	if recordedAlive(sup, run) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if waitRecorded(ctx, sup, run) != nil {
			killRecorded(sup, run)
		}
		cancel()
	}
}

// waitPidExit waits for a process that is not our child to exit, using a
// pidfd (no polling).
func waitPidExit(ctx context.Context, pid int) error {
	if pid <= 0 {
		return nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return err
	}
	defer unix.Close(fd)
	done := make(chan error, 1)
	go func() {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			dl, ok := ctx.Deadline()
			ms := -1
			if ok {
				ms = max(int(time.Until(dl).Milliseconds()), 0)
			}
			n, err := unix.Poll(fds, ms)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				done <- err
				return
			}
			if n == 0 {
				done <- context.DeadlineExceeded
				return
			}
			done <- nil
			return
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Delete removes a workspace and every file it had. A running workspace is
// refused unless force, which kills it first. With force, calls in flight
// (an exec, an export) are ended by killing the VM, and the files go only
// once those calls have unwound (an export rolls its destination back):
// delete never removes a disk under a running call.
func (m *Manager) Delete(ctx context.Context, ref string, force bool) (*api.Workspace, error) {
	l, err := m.beginLifecycle(ctx, ref, "delete")
	if err != nil {
		return nil, err
	}
	defer l.release()
	rec := l.rec
	info := m.info(rec)
	if info.State == api.StateRunning && !force {
		return nil, fmt.Errorf("workspace %s is running: stop it first, or delete it with force (the VM is killed): %w", rec.Name, errdefs.ErrFailedPrecondition)
	}
	var preempt func()
	if force {
		preempt = func() { m.forceStop(rec.ID) }
	}
	if err := l.drain(ctx, preempt); err != nil {
		return nil, err
	}
	m.forceStop(rec.ID)
	m.releaseDisks(rec)
	os.Remove(m.shmMemoryFile(rec.ID)) // left by a supervisor that was killed
	if err := os.RemoveAll(m.dir(rec.ID)); err != nil {
		return nil, fmt.Errorf("remove workspace files: %w", err)
	}
	info.State = api.StateStopped
	info.PID, info.SupervisorPID = 0, 0
	return info, nil
}

// client returns the agent client of a running workspace, or a clear error.
func (m *Manager) client(rec *record) (*guest.Client, error) {
	vs := m.vmState(rec.ID)
	if vs.state != api.StateRunning {
		return nil, fmt.Errorf("workspace %s is %s: start it first: %w", rec.Name, vs.state, errdefs.ErrFailedPrecondition)
	}
	return &guest.Client{Socket: vs.status.AgentSocket}, nil
}
