package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/proc"
	"github.com/hearthvm/hearth/internal/supervisor"
)

// Hardening: kills reach only hearth's own processes, a dead supervisor
// leaves no VMM behind, and lifecycle operations never pull a VM from
// under a create or a call.

func wsDir(id string) string { return filepath.Join(env.Home, "workspaces", id) }

func vmStatus(t *testing.T, id string) *supervisor.Status {
	t.Helper()
	st, err := supervisor.ReadStatus(filepath.Join(wsDir(id), "run"))
	if err != nil {
		t.Fatalf("read vm.json of %s: %v", id, err)
	}
	return st
}

// showJSON runs `hearth workspace show REF --json`.
func showJSON(t *testing.T, ref string) (api.Workspace, testenvResult) {
	t.Helper()
	r := env.Hearth(nil, "workspace", "show", ref, "--json")
	var w api.Workspace
	if r.Code == 0 {
		if err := json.Unmarshal(r.Stdout, &w); err != nil {
			t.Fatalf("show %s: %v: %s", ref, err, r.Stdout)
		}
	}
	return w, testenvResult{r.Code, string(r.Stderr)}
}

type testenvResult struct {
	code   int
	stderr string
}

// uniq is a short name unique to this test run.
func uniq(prefix string) string { return fmt.Sprintf("%s-%04x", prefix, rand.IntN(1<<16)) }

// idByName finds the id of the workspace record named name (also one
// whose create is in progress), or "".
func idByName(name string) string {
	ents, _ := os.ReadDir(filepath.Join(env.Home, "workspaces"))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(env.Home, "workspaces", e.Name(), "workspace.json"))
		if err != nil {
			continue
		}
		var r struct {
			ID, Name string
			Ready    bool
		}
		if json.Unmarshal(b, &r) == nil && r.Name == name {
			return r.ID
		}
	}
	return ""
}

// waitFor polls cond (a state change on disk or in /proc, which has no
// notification) until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type vmmProc struct {
	pid, ppid int
	cmdline   string
}

// vmmsTagged lists the VMM processes whose kernel command line carries
// hearth.hostname=<tag...>: the VMs of workspaces whose names start with
// tag (other tests and other users of this machine run VMs too).
func vmmsTagged(tag string) []vmmProc {
	ents, _ := os.ReadDir("/proc")
	var out []vmmProc
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		arg0, _, _ := bytes.Cut(b, []byte{0})
		if !strings.HasPrefix(filepath.Base(string(arg0)), "qemu-system") || !bytes.Contains(b, []byte("hearth.hostname="+tag)) {
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
		out = append(out, vmmProc{pid: pid, ppid: ppid, cmdline: string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))})
	}
	return out
}

// orphans returns the VMMs tagged tag that are not the child of a live
// supervisor (checked by identity) recorded in a workspace's vm.json.
func orphans(tag string) (all, lost []vmmProc) {
	sups := map[int]bool{}
	ents, _ := os.ReadDir(filepath.Join(env.Home, "workspaces"))
	for _, e := range ents {
		st, err := supervisor.ReadStatus(filepath.Join(env.Home, "workspaces", e.Name(), "run"))
		if err == nil && st.Supervisor().Alive() {
			sups[st.SupervisorPID] = true
		}
	}
	all = vmmsTagged(tag)
	for _, v := range all {
		if !sups[v.ppid] {
			lost = append(lost, v)
		}
	}
	return all, lost
}

// startCLI starts bin/hearth with args; its stdout is piped.
func startCLI(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(env.Bin, args...)
	cmd.Env = env.Environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewReader(out), &stderr
}

// TestSupervisorKilled: kill -9 of a running workspace's supervisor takes
// its VMM along (no orphan); show says what happened; a detached command
// that was running is reported lost with its output so far; start
// recovers the workspace with its files.
func TestSupervisorKilled(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: uniq("supkill")})
	id := ws.Info.ID
	sh(t, ws, "echo keep > /workspace/k; sync")
	d, err := ws.Exec(ctx, hearth.ExecOptions{Shell: "echo partial; sync; exec sleep 600", Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool {
		o, err := ws.CommandRead(ctx, d.CommandID, "stdout", 0, 100)
		return err == nil && o.Data == "partial\n"
	}) {
		t.Fatal("the detached command printed nothing")
	}
	st := vmStatus(t, id)
	sup, vm := st.Supervisor(), st.VMM()
	if !sup.Recorded() || !vm.Recorded() || !sup.Alive() || !vm.Alive() {
		t.Fatalf("identities in vm.json: supervisor %+v (%s), VMM %+v (%s)", sup, sup.Check(), vm, vm.Check())
	}
	if pp := ppid(t, vm.PID); pp != sup.PID {
		t.Fatalf("VMM %d's parent is %d, not the supervisor %d", vm.PID, pp, sup.PID)
	}
	killed := time.Now()
	if sent, err := proc.Kill(sup, syscall.SIGKILL); !sent || err != nil {
		t.Fatalf("kill -9 the supervisor: %v %v", sent, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := proc.WaitExit(wctx, vm); err != nil || vm.Alive() {
		t.Fatalf("VMM %d still running 10 s after its supervisor was killed (orphan): %v", vm.PID, err)
	}
	t.Logf("VMM gone %s after its supervisor's kill -9", time.Since(killed).Round(time.Millisecond))
	if n := len(vmmsTagged(ws.Info.Name)); n != 0 {
		t.Fatalf("%d VMM processes of %s left", n, ws.Info.Name)
	}
	w, r := showJSON(t, id)
	if r.code != 0 || w.State == api.StateRunning || !strings.Contains(w.LastExit, "supervisor died") {
		t.Fatalf("show after the supervisor died: %+v %+v", w, r)
	}
	t.Logf("show: state %s, last_exit %q", w.State, w.LastExit)
	// The detached command: lost, with its output so far.
	res, err := ws.CommandWait(ctx, d.CommandID, 0)
	if err != nil || res.Status != api.StatusFinished || res.Reason != api.CommandLost || res.Stdout != "partial\n" {
		t.Fatalf("detached command after the supervisor died: %+v %v", res, err)
	}
	// start recovers: stale sockets and vm.json are replaced.
	if r := env.Hearth(nil, "workspace", "start", id); r.Code != 0 {
		t.Fatalf("start after the supervisor died: %s", r.Stderr)
	}
	if r := sh(t, ws, "cat /workspace/k"); r.Stdout != "keep\n" {
		t.Fatalf("file after recovery: %+v", r)
	}
	// The command of the dead supervisor stays lost under the new one.
	logs, err := ws.Logs(ctx, hearth.LogsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range logs {
		if l.ID == d.CommandID && l.Status != api.CommandLost {
			t.Fatalf("detached command of the dead supervisor after restart: %+v", l)
		}
	}
	if res, _ := ws.CommandWait(ctx, d.CommandID, 0); res == nil || res.Status != api.StatusFinished {
		t.Fatalf("detached command of the dead supervisor after restart: %+v", res)
	}
}

func ppid(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	n, _ := strconv.Atoi(f[1])
	return n
}

// plantPids rewrites the workspace's vm.json so that it claims a running
// VM whose supervisor and VMM pids are pid (the start times stay those of
// the real, gone processes: what a reused pid looks like).
func plantPids(t *testing.T, id string, pid int) {
	t.Helper()
	p := filepath.Join(wsDir(id), "run", "vm.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["state"], m["supervisor_pid"], m["vmm_pid"] = "running", pid, pid
	b, _ = json.Marshal(m)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStalePidSpared: a vm.json whose pids now belong to an unrelated live
// process: show, stop, start and delete signal nothing of it.
func TestStalePidSpared(t *testing.T) {
	c := sdk(t)
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: uniq("stale")})
	id := ws.Info.ID
	if r := env.Hearth(nil, "workspace", "stop", id); r.Code != 0 {
		t.Fatalf("stop: %s", r.Stderr)
	}
	dummy := exec.Command("sleep", "600")
	if err := dummy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { dummy.Process.Kill(); dummy.Wait() }()
	spared := func(step string) {
		t.Helper()
		if err := dummy.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("after %s: the unrelated process %d was killed", step, dummy.Process.Pid)
		}
	}
	plantPids(t, id, dummy.Process.Pid)
	if w, r := showJSON(t, id); r.code != 0 || w.State == api.StateRunning {
		t.Fatalf("show with a stale pid: %+v %+v", w, r)
	}
	spared("show")
	if r := env.Hearth(nil, "workspace", "stop", id); r.Code != 0 {
		t.Fatalf("stop with a stale pid: %s", r.Stderr)
	}
	spared("stop")
	plantPids(t, id, dummy.Process.Pid)
	if r := env.Hearth(nil, "workspace", "start", id); r.Code != 0 {
		t.Fatalf("start with a stale pid: %s", r.Stderr)
	}
	spared("start")
	if r := sh(t, ws, "echo up"); r.Stdout != "up\n" {
		t.Fatalf("exec after start: %+v", r)
	}
	if r := env.Hearth(nil, "workspace", "stop", id); r.Code != 0 {
		t.Fatalf("stop: %s", r.Stderr)
	}
	plantPids(t, id, dummy.Process.Pid)
	if r := env.Hearth(nil, "workspace", "delete", "--force", id); r.Code != 0 {
		t.Fatalf("delete with a stale pid: %s", r.Stderr)
	}
	spared("delete --force")
}

// TestKilledCreate: kill -9 of the CLI during a create leaves either no
// workspace or an interrupted one that says so, never a VM nobody can
// reach; a create of the same name then works.
func TestKilledCreate(t *testing.T) {
	seed := t.TempDir()
	// A seed that takes a while to copy and record, so that the second kill
	// lands between boot and ready.
	for i := range 400 {
		os.WriteFile(filepath.Join(seed, fmt.Sprintf("f%03d", i)), bytes.Repeat([]byte{byte(i)}, 64<<10), 0o644)
	}
	for _, phase := range []string{"boot", "seed"} {
		t.Run(phase, func(t *testing.T) {
			name := uniq("kc" + phase)
			cmd, _, stderr := startCLI(t, "workspace", "create", "--name", name, "--seed", seed, "--memory", "512")
			var id string
			ok := waitFor(3*time.Minute, func() bool {
				if id = idByName(name); id == "" {
					return false
				}
				if phase == "boot" {
					return true
				}
				st, err := supervisor.ReadStatus(filepath.Join(wsDir(id), "run"))
				return err == nil && st.State == "running"
			})
			if !ok {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("create never reached the %s phase: %s", phase, stderr)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			var oldVMM proc.Identity
			if st, err := supervisor.ReadStatus(filepath.Join(wsDir(id), "run")); err == nil {
				oldVMM = st.VMM()
			}
			if phase == "boot" {
				// The supervisor gives the boot up when its starter dies.
				if !waitFor(time.Minute, func() bool { return len(vmmsTagged(name)) == 0 }) {
					t.Fatalf("a VMM of the killed create still runs: %+v", vmmsTagged(name))
				}
			}
			if _, lost := orphans(name); len(lost) != 0 {
				t.Fatalf("orphan VMMs: %+v", lost)
			}
			w, r := showJSON(t, name)
			t.Logf("after kill -9 in %s: show exit %d, state %q, error %q, last_exit %q", phase, r.code, w.State, w.Error, w.LastExit)
			if r.code == 0 && (w.State != api.StateError || !strings.Contains(w.Error, "interrupted")) {
				t.Fatalf("an interrupted create does not say so: %+v", w)
			}
			// The same name again: replaces the interrupted one.
			if r := env.Hearth(nil, "workspace", "create", "--name", name, "--memory", "512"); r.Code != 0 {
				t.Fatalf("create again after the kill: %s", r.Stderr)
			}
			t.Cleanup(func() { env.Hearth(nil, "workspace", "delete", "--force", name) })
			if oldVMM.Recorded() && oldVMM.Alive() {
				t.Fatalf("the interrupted create's VMM %d still runs after the retry", oldVMM.PID)
			}
			if r := env.Hearth(nil, "workspace", "exec", name, "--", "true"); r.Code != 0 {
				t.Fatalf("exec in the retried create: %s", r.Stderr)
			}
			if n := len(vmmsTagged(name)); n != 1 {
				t.Fatalf("%d VMMs for %s, want 1", n, name)
			}
		})
	}
}

// TestDeleteDuringCalls: with an exec and an export in flight, delete
// without force refuses (running); stop without force waits BusyWait and
// refuses naming the exec; delete --force ends both calls by killing the
// VM, the export leaves nothing at its destination, and the workspace is
// gone.
func TestDeleteDuringCalls(t *testing.T) {
	c := sdk(t)
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: uniq("delcall")})
	name := ws.Info.Name
	sh(t, ws, "head -c 300M /dev/zero > /workspace/big")
	ex, out, exErr := startCLI(t, "workspace", "exec", name, "--", "sh", "-c", "echo started; exec sleep 600")
	defer func() { ex.Process.Kill(); ex.Wait() }()
	if line, err := out.ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("exec: %q %v %s", line, err, exErr)
	}
	if r := env.Hearth(nil, "workspace", "delete", name); r.Code != 4 || !strings.Contains(string(r.Stderr), "running") {
		t.Fatalf("delete without force during an exec: %d %s", r.Code, r.Stderr)
	}
	start := time.Now()
	r := env.Hearth(nil, "workspace", "stop", name)
	t.Logf("stop during an exec: exit %d after %s: %s", r.Code, time.Since(start).Round(time.Second), bytes.TrimSpace(r.Stderr))
	if r.Code != 4 || !strings.Contains(string(r.Stderr), fmt.Sprintf("exec (pid %d", ex.Process.Pid)) {
		t.Fatalf("stop without force during an exec: %d %s", r.Code, r.Stderr)
	}
	if w, _ := showJSON(t, name); w.State != api.StateRunning {
		t.Fatalf("the refused stop stopped the VM: %+v", w)
	}
	// An export in flight too.
	dest := filepath.Join(t.TempDir(), "out")
	exp, _, expErr := startCLI(t, "workspace", "export", name, "/workspace/big", dest)
	defer func() { exp.Process.Kill(); exp.Wait() }()
	holders := filepath.Join(wsDir(ws.Info.ID), "holders")
	if !waitFor(time.Minute, func() bool {
		ents, _ := os.ReadDir(holders)
		for _, e := range ents {
			var h struct{ Op string }
			if b, err := os.ReadFile(filepath.Join(holders, e.Name())); err == nil && json.Unmarshal(b, &h) == nil && h.Op == "export" {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the export never started: %s", expErr)
	}
	vm := vmStatus(t, ws.Info.ID).VMM()
	start = time.Now()
	if r := env.Hearth(nil, "workspace", "delete", "--force", name); r.Code != 0 {
		t.Fatalf("delete --force during an exec and an export: %s", r.Stderr)
	}
	t.Logf("delete --force with an exec and an export in flight took %s", time.Since(start).Round(time.Millisecond))
	done := make(chan error, 2)
	go func() { done <- ex.Wait() }()
	go func() { done <- exp.Wait() }()
	for range 2 {
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("a call in flight succeeded although its workspace was deleted")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a call in flight still runs 30 s after delete --force returned")
		}
	}
	t.Logf("exec: %s; export: %s", lastLine(exErr), lastLine(expErr))
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("the cut export left its destination: %v", err)
	}
	if vm.Alive() {
		t.Errorf("VMM %d survived delete --force", vm.PID)
	}
	if _, err := os.Stat(wsDir(ws.Info.ID)); !os.IsNotExist(err) {
		t.Errorf("workspace files left: %v", err)
	}
}

func lastLine(b *bytes.Buffer) string {
	s := strings.TrimSpace(b.String())
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// TestStartRacingCreate: `start NAME` while NAME is being created waits
// for the create instead of killing its VM: the create succeeds and the VM
// booted once.
func TestStartRacingCreate(t *testing.T) {
	name := uniq("race")
	cr, _, crErr := startCLI(t, "workspace", "create", "--name", name, "--memory", "512")
	t.Cleanup(func() { env.Hearth(nil, "workspace", "delete", "--force", name) })
	if !waitFor(2*time.Minute, func() bool { return idByName(name) != "" }) {
		cr.Process.Kill()
		cr.Wait()
		t.Fatalf("no record of the create: %s", crErr)
	}
	start := time.Now()
	r := env.Hearth(nil, "workspace", "start", name)
	t.Logf("start during create: exit %d after %s: %s", r.Code, time.Since(start).Round(time.Millisecond), bytes.TrimSpace(r.Stderr))
	if err := cr.Wait(); err != nil {
		t.Fatalf("the create failed with a start racing it: %v: %s", err, crErr)
	}
	// start either waited for the create and found it running, or gave up
	// naming the create; it never booted or killed anything.
	if r.Code != 0 && !(r.Code == 4 && strings.Contains(string(r.Stderr), "create (pid ")) {
		t.Fatalf("start during create: %d %s", r.Code, r.Stderr)
	}
	log, err := os.ReadFile(filepath.Join(wsDir(idByName(name)), "run", supervisor.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(log, []byte("VM ready")); n != 1 {
		t.Fatalf("the VM booted %d times:\n%s", n, log)
	}
	if r := env.Hearth(nil, "workspace", "exec", name, "--", "true"); r.Code != 0 {
		t.Fatalf("exec after the race: %s", r.Stderr)
	}
}

// TestKillNineOrphans: 20 kill -9 of CLI processes at random points of a
// create, an exec or an export; then count the VMM processes that no live
// supervisor of a known workspace owns. The goal is 0.
func TestKillNineOrphans(t *testing.T) {
	tag := uniq("orph")
	c := sdk(t)
	t0 := time.Now()
	base := newWorkspace(t, c, hearth.CreateOptions{Name: tag + "-base"})
	createTime := time.Since(t0)
	sh(t, base, "head -c 64M /dev/zero > /workspace/big")
	dests := t.TempDir()
	t0 = time.Now()
	if _, err := base.Export(context.Background(), "/workspace/big", filepath.Join(dests, "timing"), hearth.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	exportTime := time.Since(t0)
	type run struct {
		kind    string
		delay   time.Duration
		killed  bool
		orphans int
		left    string
	}
	var runs []run
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 10))
	began := time.Now()
	total, killed := 0, 0
	for i := range 20 {
		var args []string
		var maxDelay time.Duration
		kind := [...]string{"create", "exec", "export"}[i%3]
		name := fmt.Sprintf("%s-c%02d", tag, i)
		switch kind {
		case "create":
			args, maxDelay = []string{"workspace", "create", "--name", name, "--memory", "512"}, createTime
		case "exec":
			args, maxDelay = []string{"workspace", "exec", base.Info.ID, "--", "sh", "-c", "head -c 1M /dev/zero; sleep 5"}, 4*time.Second
		case "export":
			args, maxDelay = []string{"workspace", "export", base.Info.ID, "/workspace/big", filepath.Join(dests, name)}, exportTime/2
		}
		r := run{kind: kind, delay: time.Duration(rng.Int64N(int64(maxDelay)))}
		cmd := exec.Command(env.Bin, args...)
		cmd.Env = env.Environ()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(r.delay):
			cmd.Process.Signal(syscall.SIGKILL)
			// Every other create also loses its supervisor at that moment.
			if kind == "create" && i%2 == 1 {
				if id := idByName(name); id != "" {
					if st, err := supervisor.ReadStatus(filepath.Join(wsDir(id), "run")); err == nil {
						if sent, _ := proc.Kill(st.Supervisor(), syscall.SIGKILL); sent {
							r.kind = "create+supervisor"
						}
					}
				}
			}
			<-exited
			r.killed = true
			killed++
		}
		// A VMM whose supervisor was just killed is being killed too (its
		// parent-death signal): give it the moment it takes to exit.
		var lost []vmmProc
		waitFor(5*time.Second, func() bool { _, lost = orphans(tag); return len(lost) == 0 })
		r.orphans = len(lost)
		total += len(lost)
		if kind == "create" {
			if w, res := showJSON(t, name); res.code == 0 {
				r.left = fmt.Sprintf("left: %s %.40s", w.State, w.Error)
			} else {
				r.left = "left: no workspace"
			}
			if d := env.Hearth(nil, "workspace", "delete", "--force", name); d.Code != 0 && d.Code != 3 {
				t.Errorf("delete after a killed create: %s", d.Stderr)
			}
		}
		runs = append(runs, r)
	}
	all, lost := orphans(tag)
	total += len(lost)
	ents, _ := os.ReadDir(dests)
	var leftovers []string
	for _, e := range ents {
		leftovers = append(leftovers, e.Name())
	}
	t.Logf("export destinations after the runs: %v", leftovers)
	for i, r := range runs {
		how := "finished first"
		if r.killed {
			how = "killed"
		}
		t.Logf("run %2d: %-17s %-14s after %6s  orphans %d  %s", i+1, r.kind, how, r.delay.Round(time.Millisecond), r.orphans, r.left)
	}
	t.Logf("20 runs (%d killed mid-way) in %s; create %s, export of 64 MiB %s; orphan VMMs: %d after the runs, %d summed over runs; VMMs of this test left: %d (the base workspace's)",
		killed, time.Since(began).Round(time.Second), createTime.Round(100*time.Millisecond), exportTime.Round(100*time.Millisecond), len(lost), total, len(all))
	if total != 0 {
		t.Fatalf("orphan VMMs: %+v", lost)
	}
	if len(all) != 1 {
		t.Errorf("VMMs of this test: %d, want only the base workspace's: %+v", len(all), all)
	}
	if r := sh(t, base, "echo still"); r.Stdout != "still\n" {
		t.Fatalf("base workspace after the runs: %+v", r)
	}
	if killed < 14 {
		t.Errorf("only %d of 20 runs were killed mid-way (the others finished first): the delays do not fit the machine", killed)
	}
}
