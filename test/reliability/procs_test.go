package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/supervisor"
)

// hostProc is one process of this run (its command line names Home).
type hostProc struct {
	pid, ppid int
	qemu      bool
	rss       int64
}

// ourProcs lists the QEMU and hearth processes whose command line names
// the test's state directory: this run's VMMs and supervisors (the
// machine is shared; other users' VMs are not counted).
func ourProcs() []hostProc {
	ents, _ := os.ReadDir("/proc")
	var out []hostProc
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(env.Home)) {
			continue
		}
		arg0, _, _ := bytes.Cut(b, []byte{0})
		base := filepath.Base(string(arg0))
		q := strings.HasPrefix(base, "qemu-system")
		if !q && base != filepath.Base(env.Bin) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out = append(out, hostProc{pid: pid, ppid: ppid, qemu: q, rss: rssOf(pid)})
	}
	return out
}

// rssOf is a process's resident set in bytes (0 when it is gone).
func rssOf(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return statusKB(b, "VmRSS:") << 10
}

func statusKB(b []byte, key string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// memAvailable is /proc/meminfo's MemAvailable in bytes.
func memAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	return statusKB(b, "MemAvailable:") << 10
}

func memTotal() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	return statusKB(b, "MemTotal:") << 10
}

// MemSample is host memory at one moment.
type MemSample struct {
	Moment       string `json:"moment"`
	RSS          int64  `json:"rss_bytes"`
	QEMURSS      int64  `json:"qemu_rss_bytes"`
	HearthRSS    int64  `json:"hearth_rss_bytes"`
	HarnessRSS   int64  `json:"harness_rss_bytes"`
	MemAvailable int64  `json:"mem_available_bytes"`
	AvailDelta   int64  `json:"mem_available_delta_bytes"`
	Processes    int    `json:"processes"`
}

func sampleMem(moment string, availBase int64) MemSample {
	s := MemSample{Moment: moment, MemAvailable: memAvailable(), HarnessRSS: rssOf(os.Getpid())}
	for _, p := range ourProcs() {
		if p.qemu {
			s.QEMURSS += p.rss
		} else {
			s.HearthRSS += p.rss
		}
		s.Processes++
	}
	s.RSS = s.QEMURSS + s.HearthRSS
	s.AvailDelta = availBase - s.MemAvailable
	return s
}

// orphanVMMs returns the QEMU processes of this run that no workspace
// records as its running (or booting) VM under a live supervisor.
func orphanVMMs() []int {
	owned := map[int]bool{}
	ents, _ := os.ReadDir(filepath.Join(env.Home, "workspaces"))
	for _, e := range ents {
		st, err := supervisor.ReadStatus(filepath.Join(env.Home, "workspaces", e.Name(), "run"))
		if err != nil || (st.State != "running" && st.State != "booting") {
			continue
		}
		if st.Supervisor().Alive() && st.VMMPID > 0 {
			owned[st.VMMPID] = true
		}
	}
	var out []int
	for _, p := range ourProcs() {
		if p.qemu && !owned[p.pid] {
			out = append(out, p.pid)
		}
	}
	return out
}

// settledOrphans waits (up to d) for VMMs whose supervisor was just killed
// to follow it (their parent-death signal), then counts what is left.
func settledOrphans(d time.Duration) []int {
	end := time.Now().Add(d)
	for {
		o := orphanVMMs()
		if len(o) == 0 || time.Now().After(end) {
			return o
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cliResult is one run of the hearth binary.
type cliResult struct {
	Code   int
	Stdout []byte
	Stderr []byte
	Took   time.Duration
	MaxRSS int64
	Killed bool
}

// msg is what the CLI said, without its progress lines ("hearth:
// booting the VM…").
func (r cliResult) msg() string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(string(r.Stderr)), "\n") {
		if !strings.HasSuffix(l, "…") && strings.TrimSpace(l) != "" {
			keep = append(keep, l)
		}
	}
	s := strings.Join(keep, "\n")
	if s == "" {
		s = strings.TrimSpace(string(r.Stdout))
	}
	return s
}

// hearthCmd is the hearth binary with args, against the test home.
func hearthCmd(extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.Command(env.Bin, args...)
	cmd.Env = append(env.Environ(), extraEnv...)
	return cmd
}

// cli runs hearth with args to its end (or until ctx ends).
func cli(ctx context.Context, extraEnv []string, args ...string) cliResult {
	cmd := hearthCmd(extraEnv, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		return cliResult{Code: -1, Stderr: []byte(err.Error())}
	}
	done := make(chan struct{})
	hwm := make(chan int64, 1)
	go func() {
		// The process's own high-water mark (VmHWM), polled: wait4's
		// ru_maxrss would start at the harness's (a child shares its
		// parent's pages until it executes hearth). A run shorter than
		// a poll reads 0.
		var peak int64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				cmd.Process.Signal(syscall.SIGKILL)
			case <-done:
				hwm <- peak
				return
			case <-tick.C:
				if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)); err == nil {
					peak = max(peak, statusKB(b, "VmHWM:")<<10)
				}
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	r := finish(cmd, err, &o, &e, time.Since(start))
	r.MaxRSS = <-hwm
	return r
}

func finish(cmd *exec.Cmd, err error, o, e *bytes.Buffer, took time.Duration) cliResult {
	r := cliResult{Stdout: o.Bytes(), Stderr: e.Bytes(), Took: took}
	if cmd.ProcessState != nil {
		r.Code = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.MaxRSS = ru.Maxrss << 10
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.Killed = ws.Signal() == syscall.SIGKILL
		}
	}
	if err != nil && cmd.ProcessState == nil {
		r.Code = -1
	}
	return r
}

// killAfter starts hearth with args and sends it SIGKILL after delay
// unless it ended first.
func killAfter(delay time.Duration, args ...string) cliResult {
	cmd := hearthCmd(nil, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return cliResult{Code: -1, Stderr: []byte(err.Error())}
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(delay):
		cmd.Process.Signal(syscall.SIGKILL)
		err = <-exited
	}
	return finish(cmd, err, &o, &e, time.Since(start))
}

// show returns a workspace's record (nil with exit 3 when it is gone).
func show(ctx context.Context, ref string) (*api.Workspace, cliResult) {
	r := cli(ctx, nil, "workspace", "show", ref, "--json")
	if r.Code != 0 {
		return nil, r
	}
	var w api.Workspace
	if err := json.Unmarshal(r.Stdout, &w); err != nil {
		r.Code, r.Stderr = -1, []byte(err.Error())
		return nil, r
	}
	return &w, r
}
