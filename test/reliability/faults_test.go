package reliability

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
)

// FaultReport holds the kill -9 figures.
type FaultReport struct {
	Ops   []*FaultOp `json:"operations"`
	Runs  []FaultRun `json:"runs"`
	Base  string     `json:"base_workspace"`
	Known int        `json:"known_files"`
}

// FaultOp sums the runs of one operation.
type FaultOp struct {
	Op            string         `json:"operation"`
	Measured      string         `json:"measured_duration"`
	Runs          int            `json:"runs"`
	Killed        int            `json:"killed_mid_way"`
	Orphans       int            `json:"orphan_vmms"`
	FilesLost     int            `json:"files_lost"`
	Unrecoverable int            `json:"unrecoverable"`
	HalfExports   int            `json:"half_written_exports"`
	Outcomes      map[string]int `json:"outcomes"`
	// StagingLeft counts, for export, the staging files and directories
	// still beside the destinations after one more export into the same
	// directory (a retry).
	StagingLeft int `json:"staging_left_after_retry,omitempty"`
}

// FaultRun is one kill.
type FaultRun struct {
	Op        string `json:"operation"`
	Delay     string `json:"delay"`
	Killed    bool   `json:"killed"`
	Orphans   int    `json:"orphan_vmms"`
	FilesLost int    `json:"files_lost"`
	Recovered bool   `json:"recovered"`
	Note      string `json:"note,omitempty"`
}

// faultOp is an operation the gate kills: args for run i, and what to
// check and clean after it.
type faultOp struct {
	name  string
	args  func(i int) []string
	after func(ctx context.Context, i int, res cliResult, fr *FaultRun, op *FaultOp) bool
}

// faults: kill -9 of the real CLI at a random point of each operation.
func (r *run) faults(ctx context.Context) {
	fr := &FaultReport{}
	r.rep.Faults = fr
	base, err := r.workspace(ctx, "fault-base", hearth.CreateOptions{MemoryMiB: 512})
	if err != nil {
		r.errorf("faults: %v", err)
		return
	}
	fr.Base = base.Info.Name
	// Known files: written through sync push, synced to the disk, kept in
	// a snapshot ("known") that resets go back to.
	known := map[string]string{}
	src := r.t.TempDir()
	for i := range 16 {
		b := make([]byte, 1<<(10+i%8))
		rand.Read(b)
		name := fmt.Sprintf("k%02d.bin", i)
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			r.errorf("faults: %v", err)
			return
		}
		sum := sha256.Sum256(b)
		known["/workspace/known/"+name] = hex.EncodeToString(sum[:])
	}
	fr.Known = len(known)
	if _, err := base.SyncPush(ctx, src, hearth.SyncOptions{Dest: "/workspace/known"}); err != nil {
		r.errorf("faults: push the known files: %v", err)
		return
	}
	bigMiB := 32
	if r.cfg.Mode == "full" {
		bigMiB = 64
	}
	if res, err := base.Exec(ctx, hearth.ExecOptions{Shell: fmt.Sprintf("head -c %dM /dev/urandom > /workspace/big && sync", bigMiB), Capture: true}); err != nil || res.ExitCode != 0 {
		r.errorf("faults: write /workspace/big: %v %+v", err, res)
		return
	}
	if _, err := base.SnapshotCreate(ctx, "known"); err != nil {
		r.errorf("faults: snapshot known: %v", err)
		return
	}
	name := base.Info.Name
	dests := r.t.TempDir()
	ops := []faultOp{
		{name: "create", args: func(i int) []string {
			return []string{"workspace", "create", "--name", fmt.Sprintf("%s-kc%02d", r.tag, i), "--memory", fmt.Sprint(r.cfg.MemoryMiB), "--cpus", "1"}
		}, after: r.afterCreate},
		{name: "exec", args: func(i int) []string {
			return []string{"workspace", "exec", name, "--", "sh", "-c", fmt.Sprintf("head -c 1M /dev/urandom > /workspace/exec-%d && sha256sum /workspace/exec-%d && sleep 1 && echo done", i, i)}
		}},
		{name: "export", args: func(i int) []string {
			return []string{"workspace", "export", name, "/workspace/big", filepath.Join(dests, fmt.Sprintf("x%02d", i))}
		}, after: func(ctx context.Context, i int, res cliResult, run *FaultRun, op *FaultOp) bool {
			// An export of a file makes a directory holding it.
			p := filepath.Join(dests, fmt.Sprintf("x%02d", i))
			fi, err := os.Stat(filepath.Join(p, "big"))
			if _, derr := os.Stat(p); os.IsNotExist(derr) {
				err = derr
			}
			switch {
			case os.IsNotExist(err):
				run.Note = "destination absent"
			case err == nil && fi.Size() == int64(bigMiB)<<20:
				run.Note = "destination complete"
			default:
				op.HalfExports++
				run.Note = fmt.Sprintf("destination half-written: %v size %d", err, sizeOf(fi))
			}
			// Staging this run left beside the destination (removed by the
			// next export into the directory, counted after the runs).
			ents, _ := os.ReadDir(dests)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), fmt.Sprintf(".x%02d.", i)) {
					run.Note += "; staging left until the next export: " + e.Name()
				}
			}
			os.RemoveAll(p)
			return true
		}},
		{name: "snapshot", args: func(i int) []string {
			return []string{"workspace", "snapshot", "create", name, fmt.Sprintf("s%02d", i)}
		}, after: snapshotAfter(name, "s")},
		{name: "reset", args: func(i int) []string {
			return []string{"workspace", "reset", name, "--to", "known", "--force"}
		}},
		{name: "service start", args: func(i int) []string {
			return []string{"workspace", "service", "start", name, fmt.Sprintf("svc%02d", i), "--ready", fmt.Sprintf("file:/tmp/svc%02d.ready", i), "--wait",
				"--", "sh", "-c", fmt.Sprintf("sleep 1; touch /tmp/svc%02d.ready; exec sleep 3600", i)}
		}, after: func(ctx context.Context, i int, res cliResult, run *FaultRun, op *FaultOp) bool {
			if l := cli(ctx, nil, "workspace", "service", "list", name, "--json"); l.Code != 0 {
				run.Note = "service list fails: " + l.msg()
				return false
			}
			rm := cli(ctx, nil, "workspace", "service", "remove", name, fmt.Sprintf("svc%02d", i))
			switch rm.Code {
			case 0:
				run.Note = "service defined"
			case 3:
				run.Note = "no service"
			default:
				run.Note = "service remove: " + rm.msg()
				return false
			}
			return true
		}},
		// Memory: a snapshot with the VM's RAM and device state, and a
		// suspend (the next start resumes it).
		{name: "memory snapshot", args: func(i int) []string {
			return []string{"workspace", "snapshot", "create", name, fmt.Sprintf("m%02d", i), "--memory"}
		}, after: snapshotAfter(name, "m")},
		{name: "suspend", args: func(i int) []string {
			return []string{"workspace", "stop", name, "--suspend"}
		}},
	}
	for _, o := range ops {
		op := &FaultOp{Op: o.name, Outcomes: map[string]int{}}
		fr.Ops = append(fr.Ops, op)
		// Measure: one run to its end gives the range of kill delays.
		m := cli(ctx, nil, o.args(99)...)
		if m.Code != 0 {
			r.errorf("faults: %s without a kill failed (exit %d): %s", o.name, m.Code, m.msg())
			continue
		}
		op.Measured = m.Took.Round(time.Millisecond).String()
		if o.after != nil {
			o.after(ctx, 99, m, &FaultRun{}, &FaultOp{Outcomes: map[string]int{}})
		}
		r.recoverBase(ctx, name, known) // a suspend leaves it suspended
		for i := range r.cfg.FaultRuns {
			delay := time.Duration(r.rng.Int64N(int64(m.Took)))
			res := killAfter(delay, o.args(i)...)
			run := FaultRun{Op: o.name, Delay: delay.Round(time.Millisecond).String(), Killed: res.Killed}
			if res.Killed {
				op.Killed++
			}
			run.Orphans = len(settledOrphans(10 * time.Second))
			ok := true
			if o.after != nil {
				ok = o.after(ctx, i, res, &run, op)
			}
			lost, rec, note := r.recoverBase(ctx, name, known)
			run.FilesLost = lost
			run.Recovered = ok && rec
			if note != "" {
				run.Note = strings.TrimPrefix(run.Note+"; "+note, "; ")
			}
			op.Runs++
			op.Orphans += run.Orphans
			op.FilesLost += lost
			if !run.Recovered {
				op.Unrecoverable++
			}
			key := "finished first"
			if res.Killed {
				key = "killed"
			}
			if run.Note != "" {
				key += ": " + strings.SplitN(run.Note, ";", 2)[0]
			}
			op.Outcomes[key]++
			fr.Runs = append(fr.Runs, run)
			r.t.Logf("fault %s #%d: delay %s killed %v orphans %d lost %d recovered %v %s", o.name, i, run.Delay, run.Killed, run.Orphans, run.FilesLost, run.Recovered, run.Note)
		}
		if o.name == "export" {
			// A retry: one more export into the same directory must work
			// and leave nothing of the killed ones behind.
			if x := cli(ctx, nil, o.args(98)...); x.Code != 0 {
				r.errorf("faults: export after the kills failed: %s", x.msg())
			}
			ents, _ := os.ReadDir(dests)
			for _, e := range ents {
				if strings.Contains(e.Name(), ".hearth-tmp-") {
					op.StagingLeft++
					r.note("export staging left after a retry: %s", e.Name())
				}
			}
			os.RemoveAll(filepath.Join(dests, "x98"))
		}
	}
	var orph, lost, unrec, half, staging int
	for _, op := range fr.Ops {
		orph += op.Orphans
		lost += op.FilesLost
		unrec += op.Unrecoverable
		half += op.HalfExports
		staging += op.StagingLeft
	}
	orph += len(settledOrphans(10 * time.Second))
	r.rep.goal("faults: orphaned VMM processes", orph)
	r.rep.goal("faults: known files lost", lost)
	r.rep.goal("faults: workspaces not recoverable", unrec)
	r.rep.goal("faults: half-written export destinations", half)
	r.rep.goal("faults: export staging left after a retry", staging)
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return -1
	}
	return fi.Size()
}

// recoverBase brings the base workspace back (start if it is not
// running) and checks the known files' bytes: it returns how many are
// lost or changed, and whether exec works.
func (r *run) recoverBase(ctx context.Context, name string, known map[string]string) (lost int, ok bool, note string) {
	for attempt := 1; ; attempt++ {
		lost, ok, n, settling := r.tryBase(ctx, name, known)
		note = strings.TrimPrefix(note+"; "+n, "; ")
		if ok || !settling || attempt == 2 {
			return lost, ok, note
		}
		// The operation the kill cut short may still be finishing in the
		// supervisor (a suspend ends the VM after its save): the exec lost
		// the VM as it ended. Once more, from what it left.
		note += "; the VM ended under the exec (the killed operation finished in the supervisor), once more"
	}
}

// tryBase starts the base workspace if it is not running and reads the
// known files; settling says the exec lost a VM that had been running.
func (r *run) tryBase(ctx context.Context, name string, known map[string]string) (lost int, ok bool, note string, settling bool) {
	w, res := show(ctx, name)
	if w == nil {
		return len(known), false, "base workspace: show fails: " + res.msg(), false
	}
	if w.State != api.StateRunning {
		note = "base was " + string(w.State)
		if st := cli(ctx, nil, "workspace", "start", name); st.Code != 0 {
			return len(known), false, note + "; start fails: " + st.msg(), false
		}
		note += ", started"
	}
	var paths []string
	for p := range known {
		paths = append(paths, p)
	}
	x := cli(ctx, nil, append([]string{"workspace", "exec", name, "--", "sha256sum"}, paths...)...)
	got := map[string]string{}
	for _, l := range strings.Split(string(x.Stdout), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			got[f[1]] = f[0]
		}
	}
	for p, sum := range known {
		if got[p] != sum {
			lost++
		}
	}
	if x.Code != 0 && len(got) == 0 {
		return lost, false, strings.TrimPrefix(note+"; exec fails: "+x.msg(), "; "), w.State == api.StateRunning
	}
	if lost > 0 {
		note = strings.TrimPrefix(fmt.Sprintf("%s; %d known files lost or changed", note, lost), "; ")
	}
	return lost, true, note, false
}

// afterCreate: the killed create left no workspace, a usable one, or an
// interrupted one that delete --force removes whole.
func (r *run) afterCreate(ctx context.Context, i int, res cliResult, run *FaultRun, op *FaultOp) bool {
	name := fmt.Sprintf("%s-kc%02d", r.tag, i)
	defer cli(ctx, nil, "workspace", "delete", "--force", name)
	w, s := show(ctx, name)
	if w == nil {
		if s.Code == 3 {
			run.Note = "no workspace"
			return true
		}
		run.Note = "show fails: " + s.msg()
		return false
	}
	switch {
	case w.State == api.StateError && strings.Contains(w.Error, "interrupted"):
		d := cli(ctx, nil, "workspace", "delete", "--force", name)
		if _, s2 := show(ctx, name); d.Code != 0 || s2.Code != 3 {
			run.Note = "interrupted; delete --force: " + d.msg()
			return false
		}
		run.Note = "interrupted; delete --force removed it"
		return true
	case w.State != api.StateRunning:
		if st := cli(ctx, nil, "workspace", "start", name); st.Code != 0 {
			run.Note = fmt.Sprintf("%s (%s %s); start fails: %s", w.State, w.Error, w.LastExit, st.msg())
			return false
		}
		run.Note = string(w.State) + "; started"
	default:
		run.Note = "running"
	}
	if x := cli(ctx, nil, "workspace", "exec", name, "--", "true"); x.Code != 0 {
		run.Note += "; exec fails: " + x.msg()
		return false
	}
	return true
}

// snapshotAfter: the killed snapshot create left a whole snapshot (which is
// then removed) or none, and the list still reads.
func snapshotAfter(name, prefix string) func(ctx context.Context, i int, res cliResult, run *FaultRun, op *FaultOp) bool {
	return func(ctx context.Context, i int, res cliResult, run *FaultRun, op *FaultOp) bool {
		snap := fmt.Sprintf("%s%02d", prefix, i)
		l := cli(ctx, nil, "workspace", "snapshot", "list", name, "--json")
		if l.Code != 0 {
			run.Note = "snapshot list fails: " + l.msg()
			return false
		}
		s := cli(ctx, nil, "workspace", "snapshot", "show", name, snap, "--json")
		switch s.Code {
		case 0:
			run.Note = "snapshot made"
			if rm := cli(ctx, nil, "workspace", "snapshot", "remove", name, snap); rm.Code != 0 {
				run.Note += "; remove fails: " + rm.msg()
				return false
			}
		case 3:
			run.Note = "no snapshot"
		default:
			run.Note = "snapshot show: " + s.msg()
			return false
		}
		return true
	}
}
