package cmdlog

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Runner identifies the host process that runs a command: the caller of a
// foreground exec, or the workspace's supervisor for a detached one. A pid
// alone can name another process after the runner died (pid reuse, a host
// reboot), so the process's start time and the host's boot id go with it.
type Runner struct {
	PID int
	// Start is the process's start time in clock ticks after boot (field
	// 22 of /proc/PID/stat); 0 when unknown.
	Start uint64
	// BootID is the host's /proc/sys/kernel/random/boot_id; "" when unknown.
	BootID string
}

// AliveFunc reports whether a runner process still lives.
type AliveFunc func(Runner) bool

// Self identifies the calling process.
func Self() Runner { return Identify(os.Getpid()) }

// Identify returns pid's identity as /proc shows it now (PID only when
// /proc cannot be read).
func Identify(pid int) Runner {
	r := Runner{PID: pid, BootID: bootID()}
	if st, ok := procStat(pid); ok {
		r.Start = st.start
	}
	return r
}

// ProcessAlive is the default AliveFunc: the pid is a live process that is
// not a zombie, started at the recorded time, during this boot.
func ProcessAlive(r Runner) bool {
	if r.PID <= 0 {
		return false
	}
	if r.BootID != "" {
		if b := bootID(); b != "" && b != r.BootID {
			return false
		}
	}
	st, ok := procStat(r.PID)
	if !ok || st.state == 'Z' || st.state == 'X' {
		return false
	}
	return r.Start == 0 || st.start == r.Start
}

type stat struct {
	state byte
	start uint64
}

// procStat reads the state and start time of pid from /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func procStat(pid int) (stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, false
	}
	// After ")": field 3 (state) is the first, field 22 (starttime) the 20th.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, false
	}
	return stat{state: f[0][0], start: start}, true
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
