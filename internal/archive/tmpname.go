package archive

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Host output is built under a temporary name beside its destination,
// ".NAME.hearth-tmp-PID-RANDOM", and renamed into place when complete. A
// process killed mid-write leaves its temporary behind; the next write to
// the same destination removes the ones whose writer is gone.

// TempPattern is the os.CreateTemp/MkdirTemp pattern for a temporary
// beside dest, naming this process.
func TempPattern(dest string) string {
	return tempPrefix(dest) + strconv.Itoa(os.Getpid()) + "-"
}

func tempPrefix(dest string) string { return "." + filepath.Base(dest) + ".hearth-tmp-" }

// SweepStale removes temporaries beside dest left by processes that no
// longer exist. A temporary whose writer is alive, or whose name does not
// say which process wrote it, is kept. It returns how many it removed.
func SweepStale(dest string) int {
	parent, prefix := filepath.Dir(dest), tempPrefix(dest)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		if e.IsDir() {
			removeTree(p)
		} else {
			os.Remove(p)
		}
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			n++
		}
	}
	return n
}

// processAlive reports whether pid exists (a process of another user
// counts as alive).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
