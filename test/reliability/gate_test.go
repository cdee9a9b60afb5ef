package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
)

// run is the state of one gate run shared by its parts.
type run struct {
	t      *testing.T
	cfg    config
	c      *hearth.Client
	tag    string // prefix of every workspace and disk name of this run
	rep    *Report
	mu     sync.Mutex
	pool   map[string]*hearth.Workspace
	rng    *rand.Rand
	avail0 int64 // MemAvailable before any workspace of this run
}

// TestReliability is the gate. It fails when a goal figure is not 0; the
// report is written either way.
func TestReliability(t *testing.T) {
	if env == nil {
		t.Skip("-short: the real-VM gate does not run")
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := hearth.New(hearth.WithHome(env.Home), hearth.WithExecutable(env.Bin))
	if err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, cfg: cfg, c: c, tag: fmt.Sprintf("rel%04x", rand.IntN(1<<16)), pool: map[string]*hearth.Workspace{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16)),
		rep: &Report{Config: cfg, Started: time.Now(), times: map[string]time.Duration{}}}
	r.rep.Host = hostInfo()
	r.avail0 = memAvailable()
	t.Cleanup(r.cleanup)
	parts := []struct {
		name string
		fn   func(context.Context)
	}{
		{"load", r.load}, {"input", r.badInput}, {"network", r.network}, {"faults", r.faults},
	}
	ctx := context.Background()
	for _, p := range parts {
		if !cfg.Parts[p.name] {
			continue
		}
		start := time.Now()
		t.Logf("part %s: starting", p.name)
		func() {
			defer func() {
				if v := recover(); v != nil {
					r.errorf("part %s panicked: %v", p.name, v)
				}
			}()
			p.fn(ctx)
		}()
		r.rep.parts = append(r.rep.parts, p.name)
		r.rep.times[p.name] = time.Since(start)
		t.Logf("part %s: done in %s", p.name, time.Since(start).Round(time.Second))
		// Written after every part, so that a run cut short keeps what it measured.
		r.rep.Duration = time.Since(r.rep.Started).Round(time.Second).String() + " (so far)"
		if err := r.rep.Write(cfg.Out); err != nil {
			t.Errorf("write the report: %v", err)
		}
	}
	r.rep.Duration = time.Since(r.rep.Started).Round(time.Second).String()
	if err := r.rep.Write(cfg.Out); err != nil {
		t.Errorf("write the report: %v", err)
	}
	fmt.Printf("reliability report: %s/report.md (and report.json)\n", cfg.Out)
	t.Logf("reliability report: %s/report.md (and report.json)", cfg.Out)
	for _, e := range r.rep.Errors {
		t.Errorf("harness: %s", e)
	}
	for _, f := range r.rep.Failed() {
		t.Errorf("goal missed: %s", f)
	}
}

func (r *run) errorf(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Errors = append(r.rep.Errors, fmt.Sprintf(format, a...))
}

func (r *run) note(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, a...))
}

// workspace returns the pool's workspace called name (this run's tag is
// prepended), creating it on first use.
func (r *run) workspace(ctx context.Context, name string, o hearth.CreateOptions) (*hearth.Workspace, error) {
	r.mu.Lock()
	ws := r.pool[name]
	r.mu.Unlock()
	if ws != nil {
		return ws, nil
	}
	o.Name = r.tag + "-" + name
	if o.MemoryMiB == 0 {
		o.MemoryMiB = r.cfg.MemoryMiB
	}
	if o.CPUs == 0 {
		o.CPUs = 1
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	ws, err := r.c.CreateWorkspace(cctx, o)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", o.Name, err)
	}
	r.mu.Lock()
	r.pool[name] = ws
	r.mu.Unlock()
	return ws, nil
}

// cleanup deletes every workspace and disk of this run.
func (r *run) cleanup() {
	ctx := context.Background()
	list, _ := r.c.ListWorkspaces(ctx)
	for _, w := range list {
		if strings.HasPrefix(w.Name, r.tag+"-") {
			if _, err := r.c.Workspace(w.ID).Delete(ctx, true); err != nil && !errors.Is(err, hearth.ErrNotFound) {
				r.t.Logf("cleanup: delete %s: %v", w.Name, err)
			}
		}
	}
	disks, _ := r.c.ListDisks(ctx)
	for _, d := range disks {
		if strings.HasPrefix(d.Name, r.tag+"-") {
			r.c.DeleteDisk(ctx, d.Name)
		}
	}
	if o := orphanVMMs(); len(o) > 0 {
		r.t.Errorf("VMM processes left after cleanup: %v", o)
	}
}

func hostInfo() HostInfo {
	h := HostInfo{CPUs: runtime.NumCPU(), MemTotalMB: memTotal() >> 20}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		h.Kernel = utsString(u.Release[:])
	}
	if res := cli(context.Background(), nil, "version"); res.Code == 0 {
		h.Commit = strings.TrimSpace(string(res.Stdout))
	}
	h.Backend = os.Getenv("HEARTH_BACKEND")
	if h.Backend == "" {
		h.Backend = "auto"
	}
	if res := cli(context.Background(), nil, "doctor", "--json"); len(res.Stdout) > 0 {
		var d struct {
			Backend struct{ Name, Reason string }
		}
		if json.Unmarshal(res.Stdout, &d) == nil && d.Backend.Name != "" {
			h.Backend = d.Backend.Name
			if strings.Contains(d.Backend.Reason, "emulation") || strings.Contains(d.Backend.Reason, "TCG") || !kvmUsable() {
				h.Backend += " (software emulation, TCG)"
			}
		}
	}
	return h
}

func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
