package reliability

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hearthvm/hearth"
)

// InputReport holds the hostile-input figures.
type InputReport struct {
	Canary string       `json:"canary"`
	Items  []*InputItem `json:"items"`
}

// InputItem is one input given to one target.
type InputItem struct {
	Target  string `json:"target"`
	Input   string `json:"input"`
	Outcome string `json:"outcome"` // refused, accepted
	Exit    int    `json:"exit"`
	Escapes int    `json:"escapes"`
	Special int    `json:"special_files_made"`
	MaxRSS  int64  `json:"peak_rss_bytes"`
	Time    string `json:"time"`
	Message string `json:"message"`
	Detail  string `json:"detail,omitempty"`
}

// guestEscapes counts names carrying the escape mark outside /workspace in
// a running workspace, and special files (devices, fifos, sockets) under
// /workspace.
func guestEscapes(ctx context.Context, ref string) (escapes, special int, detail string, err error) {
	script := `find / \( -path /proc -o -path /sys -o -path /dev -o -path /workspace \) -prune -o -name '*` + escapeMark + `*' -print 2>/dev/null; echo ==; find /workspace \( -type c -o -type b -o -type p -o -type s \) -print 2>/dev/null; true`
	res := cli(ctx, nil, "workspace", "exec", ref, "--", "sh", "-c", script)
	if res.Code != 0 {
		return 0, 0, "", fmt.Errorf("guest check: %s", res.msg())
	}
	esc, spec, _ := strings.Cut(string(res.Stdout), "==\n")
	for _, l := range strings.Split(strings.TrimSpace(esc), "\n") {
		if l != "" {
			escapes++
			detail += "guest escape: " + l + "; "
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(spec), "\n") {
		if l != "" {
			special++
			detail += "special file: " + l + "; "
		}
	}
	return escapes, special, detail, nil
}

// hostEscapes counts names carrying the escape mark anywhere under the
// given host roots, plus 1 when the canary changed.
func hostEscapes(c *canary, roots ...string) (int, string) {
	n, detail := 0, ""
	if ch := c.changed(); ch != "" {
		n++
		detail = ch + "; "
		c.state = c.snapshot()
	}
	for _, root := range roots {
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && strings.Contains(fi.Name(), escapeMark) {
				n++
				detail += "host escape: " + p + "; "
				os.RemoveAll(p)
			}
			return nil
		})
	}
	return n, detail
}

// badInput gives every hostile input to seed, sync push and disk import.
func (r *run) badInput(ctx context.Context) {
	ir := &InputReport{}
	r.rep.Input = ir
	root := r.t.TempDir()
	cdir := filepath.Join(root, "canary")
	can, err := newCanary(cdir)
	if err != nil {
		r.errorf("input: %v", err)
		return
	}
	ir.Canary = cdir + " (canary.txt, sub/secret.txt: bytes, modes and times checked after every input)"
	t0 := time.Now()
	if err := os.MkdirAll(filepath.Join(root, "corpus"), 0o755); err != nil {
		r.errorf("input: %v", err)
		return
	}
	items, err := corpus(filepath.Join(root, "corpus"), cdir, r.cfg)
	if err != nil {
		r.errorf("input: generate the corpus: %v", err)
		return
	}
	r.t.Logf("input: corpus of %d inputs generated in %s", len(items), time.Since(t0).Round(time.Millisecond))
	debug.FreeOSMemory() // what the corpus took
	r.note("bad input: peak RSS is the CLI process's VmHWM, polled every 20 ms (0 for a run shorter than that)")
	var extra []string
	if r.cfg.EntryLimit > 0 {
		extra = append(extra, fmt.Sprintf("HEARTH_MAX_ARCHIVE_ENTRIES=%d", r.cfg.EntryLimit))
	}
	disk := fmt.Sprintf("%dM", r.cfg.diskMiB())
	hostRoots := []string{env.Home, root}
	escapes, special := 0, 0
	add := func(it *InputItem, res cliResult, detail string) {
		it.Exit, it.MaxRSS, it.Time = res.Code, res.MaxRSS, res.Took.Round(time.Millisecond).String()
		it.Outcome = "refused"
		if res.Code == 0 {
			it.Outcome = "accepted"
		}
		it.Message = res.msg()
		if res.Code == 0 && len(res.Stderr) == 0 {
			it.Message, _, _ = strings.Cut(strings.TrimSpace(string(res.Stdout)), "\n")
		}
		he, hd := hostEscapes(can, hostRoots...)
		it.Escapes += he
		it.Detail = strings.TrimSpace(detail + hd)
		escapes += it.Escapes
		special += it.Special
		ir.Items = append(ir.Items, it)
		r.t.Logf("input %s %s: %s exit %d escapes %d special %d in %s: %.200s", it.Target, it.Input, it.Outcome, it.Exit, it.Escapes, it.Special, it.Time, it.Message)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()

	// Seed: each input as --seed of a new workspace (the short gate leaves
	// the directories to sync push and disk import: each accepted seed is
	// a boot).
	for i, x := range items {
		src := x.archive
		if src == "" {
			if r.cfg.Mode == "short" {
				continue
			}
			src = x.dir
		}
		name := fmt.Sprintf("%s-seed%02d", r.tag, i)
		res := cli(cctx, extra, "workspace", "create", "--name", name, "--seed", src, "--memory", fmt.Sprint(r.cfg.MemoryMiB), "--cpus", "1", "--disk-size", disk)
		it := &InputItem{Target: "seed", Input: x.name}
		detail := ""
		if w, _ := show(cctx, name); w != nil {
			if res.Code != 0 {
				detail = fmt.Sprintf("left a workspace in state %s (%s); ", w.State, w.Error)
			}
			if w.State == "running" {
				e, s, d, err := guestEscapes(cctx, name)
				if err != nil {
					detail += err.Error() + "; "
				}
				it.Escapes, it.Special, detail = e, s, detail+d
			}
			if d := cli(cctx, nil, "workspace", "delete", "--force", name); d.Code != 0 {
				detail += "delete --force: " + d.msg() + "; "
			}
		}
		add(it, res, detail)
	}

	// Sync push: every directory, and one archive (not a directory).
	// The sync target's disk is at most 1 GiB: the huge file below is
	// pushed until the guest's disk is full, at the guest's write speed.
	syncMiB := min(r.cfg.diskMiB(), 1024)
	ws, err := r.workspace(ctx, "sync", hearth.CreateOptions{DiskSize: int64(syncMiB) << 20})
	if err != nil {
		r.errorf("input: %v", err)
	} else {
		pushed := 0
		for i, x := range items {
			if x.dir == "" && pushed > 0 {
				continue
			}
			src := x.dir
			if src == "" {
				src = x.archive
				pushed++
			}
			res := cli(cctx, extra, "workspace", "sync", "push", ws.Info.Name, src, "--dest", fmt.Sprintf("/workspace/in%02d", i))
			it := &InputItem{Target: "sync push", Input: x.name}
			e, s, d, err := guestEscapes(cctx, ws.Info.Name)
			if err != nil {
				d += err.Error()
			}
			it.Escapes, it.Special = e, s
			add(it, res, d)
		}
		// A huge sparse file, bigger than the workspace's disk.
		d := filepath.Join(root, "dir-huge-sparse")
		os.MkdirAll(d, 0o755)
		if f, err := os.Create(filepath.Join(d, "huge")); err == nil {
			f.Truncate(int64(2*syncMiB) << 20)
			f.Close()
		}
		res := cli(cctx, extra, "workspace", "sync", "push", ws.Info.Name, d, "--dest", "/workspace/huge")
		it := &InputItem{Target: "sync push", Input: fmt.Sprintf("dir huge-sparse-file (%d MiB, disk %d MiB)", 2*syncMiB, syncMiB)}
		add(it, res, "")
		if x := cli(cctx, nil, "workspace", "exec", ws.Info.Name, "--", "sh", "-c", "rm -rf /workspace/huge; echo ok > /workspace/after-huge && cat /workspace/after-huge"); x.Code != 0 {
			r.note("sync push: the workspace does not work after the huge push: %s", x.msg())
		}
	}

	// Disk import: every input into a detached disk.
	dname := r.tag + "-imp"
	if res := cli(cctx, nil, "disk", "create", dname, "--size", disk); res.Code != 0 {
		r.errorf("input: disk create: %s", res.msg())
	} else {
		for _, x := range items {
			src := x.archive
			if src == "" {
				src = x.dir
			}
			res := cli(cctx, extra, "disk", "import", dname, src)
			it := &InputItem{Target: "disk import", Input: x.name}
			detail := ""
			if res.Code == 0 {
				// What landed on the disk (its root listing).
				if l := cli(cctx, nil, "disk", "files", "ls", dname, "/"); l.Code == 0 {
					detail = "disk root: " + strings.Join(strings.Fields(string(l.Stdout)), " ")
				}
			}
			add(it, res, detail)
		}
		// Staging left next to the disk?
		ents, _ := filepath.Glob(filepath.Join(env.Home, "disks", dname, "*"))
		for _, e := range ents {
			if strings.Contains(e, ".import-") || strings.Contains(e, ".staging") {
				r.note("disk import left %s behind", e)
			}
		}
	}
	r.rep.goal("bad input: escapes", escapes)
	r.rep.goal("bad input: special files created", special)
}
