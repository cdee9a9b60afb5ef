package archive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hearthvm/hearth/internal/proc"
)

// Staging names. Extract, WriteArchive and other writers of a host
// destination build it beside the destination under
// ".NAME.hearth-tmp-PID.TICKS-RANDOM" (PID and TICKS, the start time from
// /proc/PID/stat, identify the writing process) and rename it into place
// at the end. A process killed outright (kill -9, the OOM killer) leaves
// its staging behind; the next writer of a destination in the same
// directory removes every staging whose process is gone (SweepStaging),
// so a retry leaves nothing behind.
const stagingMark = ".hearth-tmp-"

// StagingPattern is the os.MkdirTemp / os.CreateTemp pattern for staging
// dest: it names the calling process.
func StagingPattern(dest string) string {
	self, err := proc.Self()
	if err != nil {
		return "." + filepath.Base(dest) + stagingMark
	}
	return fmt.Sprintf(".%s%s%d.%d-", filepath.Base(dest), stagingMark, self.PID, self.StartTicks)
}

// SweepStaging removes the stagings in dest's directory left by processes
// that no longer run (any destination's: the directory is the unit). A
// staging whose process still runs, or whose name does not say which
// process made it, is left alone. Errors are ignored: sweeping is
// housekeeping, never a reason to fail the write that does it.
func SweepStaging(dest string) (removed []string) {
	parent := filepath.Dir(dest)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		pid, ticks, ok := stagingOwner(e.Name())
		if !ok || ownerRuns(pid, ticks) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		if e.IsDir() {
			removeTree(p)
		} else {
			os.Remove(p)
		}
		removed = append(removed, p)
	}
	return removed
}

// stagingOwner parses ".NAME.hearth-tmp-PID.TICKS-RANDOM".
func stagingOwner(name string) (pid int, ticks uint64, ok bool) {
	if !strings.HasPrefix(name, ".") {
		return 0, 0, false
	}
	i := strings.LastIndex(name, stagingMark)
	if i < 0 {
		return 0, 0, false
	}
	rest := name[i+len(stagingMark):]
	id, _, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	p, t, found := strings.Cut(id, ".")
	if !found {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(p)
	ticks, err2 := strconv.ParseUint(t, 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return 0, 0, false
	}
	return pid, ticks, true
}

// ownerRuns reports whether the process pid that started at ticks is
// still running (a reused pid has another start time).
func ownerRuns(pid int, ticks uint64) bool {
	st, err := proc.ReadStat(pid)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		return true // cannot tell: leave it
	}
	return st.StartTicks == ticks && st.State != 'Z'
}
