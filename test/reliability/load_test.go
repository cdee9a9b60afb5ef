package reliability

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hearthvm/hearth"
)

// LoadReport holds the load figures.
type LoadReport struct {
	Exec           *LatencySet `json:"exec"`
	ShellWrite     *LatencySet `json:"shell_write"`
	ShellWrites    int         `json:"shell_writes"`
	ShellLinesLost int         `json:"shell_lines_lost"`
	Memory         []MemSample `json:"memory"`
	FailureSamples []string    `json:"failure_samples,omitempty"`
	// FailureKinds counts failures by their message with numbers, ids
	// and paths blanked.
	FailureKinds map[string]int `json:"failure_kinds,omitempty"`
}

var blank = regexp.MustCompile(`ws-[0-9a-f]+|cmd-[0-9a-z]+|/[^ :]*|[0-9]+`)

// kind is a failure message with what varies between calls blanked.
func kind(msg string) string {
	if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "exec ok-") {
		msg = rest
	}
	return blank.ReplaceAllString(msg, "#")
}

// LatencySet summarises the latencies of one kind of call.
type LatencySet struct {
	Name     string  `json:"name"`
	Calls    int     `json:"calls"`
	Failures int     `json:"failures"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
	MaxMS    float64 `json:"max_ms"`
	Wall     string  `json:"wall"`
}

func latencies(name string, d []time.Duration, failures int, wall time.Duration) *LatencySet {
	s := &LatencySet{Name: name, Calls: len(d), Failures: failures, Wall: wall.Round(time.Millisecond).String()}
	if len(d) == 0 {
		return s
	}
	slices.Sort(d)
	q := func(p float64) float64 {
		i := int(p*float64(len(d))+0.5) - 1
		i = max(0, min(i, len(d)-1))
		return float64(d[i]) / float64(time.Millisecond)
	}
	s.P50MS, s.P99MS, s.MaxMS = q(0.50), q(0.99), float64(d[len(d)-1])/float64(time.Millisecond)
	return s
}

// peakSampler samples memory until stopped and keeps the highest RSS.
type peakSampler struct {
	stop chan struct{}
	done chan MemSample
}

func startPeak(moment string, base int64) *peakSampler {
	p := &peakSampler{stop: make(chan struct{}), done: make(chan MemSample, 1)}
	go func() {
		peak := sampleMem(moment, base)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				p.done <- peak
				return
			case <-tick.C:
				if s := sampleMem(moment, base); s.RSS > peak.RSS {
					lowest := min(peak.MemAvailable, s.MemAvailable)
					peak = s
					peak.MemAvailable, peak.AvailDelta = lowest, base-lowest
				} else if s.MemAvailable < peak.MemAvailable {
					peak.MemAvailable, peak.AvailDelta = s.MemAvailable, base-s.MemAvailable
				}
			}
		}
	}()
	return p
}

func (p *peakSampler) Stop() MemSample { close(p.stop); return <-p.done }

// load: N workspaces × M concurrent execs, then W × S shells × K writes.
func (r *run) load(ctx context.Context) {
	cfg := r.cfg
	lr := &LoadReport{}
	r.rep.Load = lr
	lr.Memory = append(lr.Memory, sampleMem("before any workspace", r.avail0))
	// Boot the workspaces, two at a time (the host has few cores).
	wss := make([]*hearth.Workspace, cfg.ExecWS)
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	var bootErr error
	var mu sync.Mutex
	for i := range cfg.ExecWS {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ws, err := r.workspace(ctx, fmt.Sprintf("load-%02d", i), hearth.CreateOptions{DiskSize: 1 << 30})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && bootErr == nil {
				bootErr = err
			}
			wss[i] = ws
		}()
	}
	wg.Wait()
	if bootErr != nil {
		r.errorf("load: %v", bootErr)
		return
	}
	lr.Memory = append(lr.Memory, sampleMem(fmt.Sprintf("idle, %d workspaces booted", len(wss)), r.avail0))

	// Execs: every workspace's M execs at once.
	type res struct {
		d   time.Duration
		err string
	}
	results := make(chan res, cfg.ExecWS*cfg.Execs)
	peak := startPeak(fmt.Sprintf("peak during %d×%d execs", cfg.ExecWS, cfg.Execs), r.avail0)
	start := time.Now()
	for i, ws := range wss {
		for j := range cfg.Execs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				token := fmt.Sprintf("ok-%d-%d", i, j)
				cctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
				defer cancel()
				t0 := time.Now()
				out, err := ws.Exec(cctx, hearth.ExecOptions{Argv: []string{"sh", "-c", `echo "$0"`, token}, Capture: true})
				d := time.Since(t0)
				switch {
				case err != nil:
					results <- res{d, fmt.Sprintf("exec %s: %v", token, err)}
				case out.ExitCode != 0 || out.Stdout != token+"\n":
					results <- res{d, fmt.Sprintf("exec %s: exit %d stdout %q stderr %q", token, out.ExitCode, out.Stdout, out.Stderr)}
				default:
					results <- res{d, ""}
				}
			}()
		}
	}
	wg.Wait()
	wall := time.Since(start)
	lr.Memory = append(lr.Memory, peak.Stop())
	close(results)
	var ds []time.Duration
	fails := 0
	for x := range results {
		ds = append(ds, x.d)
		if x.err != "" {
			fails++
			if lr.FailureKinds == nil {
				lr.FailureKinds = map[string]int{}
			}
			lr.FailureKinds[kind(x.err)]++
			if len(lr.FailureSamples) < 10 {
				lr.FailureSamples = append(lr.FailureSamples, x.err)
			}
		}
	}
	lr.Exec = latencies(fmt.Sprintf("exec (%d workspaces × %d concurrent)", cfg.ExecWS, cfg.Execs), ds, fails, wall)
	r.rep.goal("load: failed execs", fails)

	if cfg.ShellWS > 0 && cfg.Shells > 0 && cfg.Writes > 0 {
		r.shellLoad(ctx, wss[:cfg.ShellWS], lr)
	}
	lr.Memory = append(lr.Memory, sampleMem("after the load", r.avail0))
}

// shellLoad opens S shells in each workspace and sends each K lines that
// append to a file of its own, all shells at once; every line must land,
// in order.
func (r *run) shellLoad(ctx context.Context, wss []*hearth.Workspace, lr *LoadReport) {
	cfg := r.cfg
	var mu sync.Mutex
	var ds []time.Duration
	fails, lost := 0, 0
	fail := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fails++
		if len(lr.FailureSamples) < 20 {
			lr.FailureSamples = append(lr.FailureSamples, fmt.Sprintf(format, a...))
		}
	}
	peak := startPeak(fmt.Sprintf("peak during %d×%d×%d shell writes", cfg.ShellWS, cfg.Shells, cfg.Writes), r.avail0)
	start := time.Now()
	var wg sync.WaitGroup
	for i, ws := range wss {
		for s := range cfg.Shells {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
				defer cancel()
				sh, err := ws.ShellOpen(cctx, hearth.ShellOpenOptions{})
				if err != nil {
					fail("shell open in workspace %d: %v", i, err)
					mu.Lock()
					lost += cfg.Writes
					mu.Unlock()
					return
				}
				file := fmt.Sprintf("/workspace/shell-%02d.txt", s)
				var want []string
				for k := range cfg.Writes {
					line := fmt.Sprintf("w%d-%d-%03d", i, s, k)
					want = append(want, line)
					t0 := time.Now()
					_, err := ws.ShellWrite(cctx, sh.ID, []byte(fmt.Sprintf("echo %s >> %s\n", line, file)))
					d := time.Since(t0)
					mu.Lock()
					ds = append(ds, d)
					mu.Unlock()
					if err != nil {
						fail("shell write %s: %v", line, err)
					}
				}
				// The shell runs its lines in order: once it printed the
				// marker (computed, so the echo of the input does not
				// match), every line before it has run.
				marker := fmt.Sprintf("END-%d", 100000+s)
				if _, err := ws.ShellWrite(cctx, sh.ID, []byte(fmt.Sprintf("echo END-$((%d+%d))\n", 100000, s))); err != nil {
					fail("shell write marker: %v", err)
				}
				var out strings.Builder
				for !strings.Contains(out.String(), marker) {
					o, err := ws.ShellRead(cctx, sh.ID, hearth.ShellReadOptions{Wait: 10 * time.Second, Plain: true})
					if err != nil {
						fail("shell read in workspace %d shell %d: %v", i, s, err)
						break
					}
					out.WriteString(o.Output)
					if o.State != "" && o.State != "running" {
						fail("shell %d of workspace %d ended: %s", s, i, o.State)
						break
					}
				}
				got, err := ws.Exec(cctx, hearth.ExecOptions{Argv: []string{"cat", file}, Capture: true})
				if err != nil {
					fail("read %s: %v", file, err)
					mu.Lock()
					lost += cfg.Writes
					mu.Unlock()
					return
				}
				lines := strings.Split(strings.TrimSuffix(got.Stdout, "\n"), "\n")
				n := 0 // lines of want found, in order
				for _, l := range lines {
					if n < len(want) && l == want[n] {
						n++
					}
				}
				if n < len(want) {
					fail("%s in workspace %d: %d of %d lines in order", file, i, n, len(want))
				}
				mu.Lock()
				lost += len(want) - n
				mu.Unlock()
				ws.ShellClose(cctx, sh.ID)
			}()
		}
	}
	wg.Wait()
	lr.Memory = append(lr.Memory, peak.Stop())
	lr.ShellWrite = latencies(fmt.Sprintf("shell write (%d workspaces × %d shells × %d writes)", cfg.ShellWS, cfg.Shells, cfg.Writes), ds, fails, time.Since(start))
	lr.ShellWrites = len(ds)
	lr.ShellLinesLost = lost
	r.rep.goal("load: failed shell calls", fails)
	r.rep.goal("load: shell lines lost", lost)
}
