package agent

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
	"golang.org/x/sys/unix"
)

// shutdownGrace is how long processes get between SIGTERM and SIGKILL.
const shutdownGrace = 2 * time.Second

func init() {
	register(guestproto.OpShutdown, handleShutdown)
}

// handleShutdown only acknowledges: ServeConn sends the response and then
// calls Server.Shutdown, which main sets to powerOff.
func handleShutdown(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	s.Log.Info("shutdown requested by the host")
	return &guestproto.Response{}, nil
}

var powerOffOnce sync.Once

// powerOff stops every process, flushes and unmounts the file systems and
// reboots, which ends the VMM (QEMU runs with -no-reboot, Firecracker
// exits on reboot). It does not return. Concurrent callers block.
func powerOff(log *slog.Logger) {
	powerOffOnce.Do(func() {
		log.Info("shutting down")
		shuttingDown.Store(true) // services are not restarted any more
		stopAllProcesses(log)
		unix.Sync()
		unmountAll(log)
		unix.Sync()
		log.Info("power off")
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
			log.Error("reboot failed", "err", err)
		}
	})
	select {} // the kernel ends us
}

// stopAllProcesses sends SIGTERM to every process but this one, waits up
// to shutdownGrace for them to exit, then SIGKILLs the rest.
func stopAllProcesses(log *slog.Logger) {
	unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(shutdownGrace)
	for time.Now().Before(deadline) {
		if n := liveProcesses(); n == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Info("processes still running after SIGTERM; sending SIGKILL", "count", liveProcesses())
	unix.Kill(-1, unix.SIGKILL)
	deadline = time.Now().Add(time.Second)
	for time.Now().Before(deadline) && liveProcesses() > 0 {
		time.Sleep(20 * time.Millisecond)
	}
}

// liveProcesses counts user processes other than the agent that have not
// exited (kernel threads and zombies excluded).
func liveProcesses() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == 2 {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		state, ppid, ok := parseStat(b)
		if !ok || ppid == 2 || state == 'Z' || state == 'X' {
			continue
		}
		n++
	}
	return n
}

// unmountAll unmounts what init mounted, innermost first; what cannot be
// unmounted is remounted read-only.
func unmountAll(log *slog.Logger) {
	for _, m := range []string{"/workspace", "/sys/fs/cgroup", "/dev/shm", "/dev/pts"} {
		unix.Unmount(m, 0)
	}
	// The overlay root cannot be unmounted while we run from it.
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		log.Warn("remount / read-only", "err", err)
	}
	for _, m := range []string{dataMount, baseMount} {
		if err := unix.Mount("", m, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil && err != unix.ENOENT && err != unix.EINVAL {
			log.Warn("remount read-only", "path", m, "err", err)
		}
	}
}
