package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Report is everything one run of the gate measured (report.json).
type Report struct {
	Config   config       `json:"config"`
	Host     HostInfo     `json:"host"`
	Started  time.Time    `json:"started"`
	Duration string       `json:"duration"`
	Goals    []Goal       `json:"goals"`
	Load     *LoadReport  `json:"load,omitempty"`
	Faults   *FaultReport `json:"faults,omitempty"`
	Input    *InputReport `json:"bad_input,omitempty"`
	Network  *NetReport   `json:"network,omitempty"`
	Notes    []string     `json:"notes,omitempty"`
	Errors   []string     `json:"errors,omitempty"`
	parts    []string     // order the parts ran in
	times    map[string]time.Duration
}

// HostInfo describes the machine the figures come from.
type HostInfo struct {
	CPUs       int    `json:"cpus"`
	MemTotalMB int64  `json:"mem_total_mib"`
	Kernel     string `json:"kernel"`
	Backend    string `json:"backend"`
	Commit     string `json:"hearth_version"`
}

// Goal is one figure the gate holds to a bound.
type Goal struct {
	Figure string `json:"figure"`
	Value  int    `json:"value"`
	Goal   int    `json:"goal"`
	OK     bool   `json:"ok"`
}

func (r *Report) goal(figure string, value int) {
	r.Goals = append(r.Goals, Goal{Figure: figure, Value: value, Goal: 0, OK: value == 0})
}

// Failed lists the goals missed.
func (r *Report) Failed() []string {
	var out []string
	for _, g := range r.Goals {
		if !g.OK {
			out = append(out, fmt.Sprintf("%s = %d (goal %d)", g.Figure, g.Value, g.Goal))
		}
	}
	return out
}

// Write stores report.json and report.md in dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644)
}

func cell(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", " ⏎ ")
	s = strings.ReplaceAll(s, "|", `\|`)
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// Markdown is the human report.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	c := r.Config
	p("# hearth reliability report\n\n")
	p("Mode **%s**, started %s, took %s. Host: %d CPUs, %d MiB RAM, kernel %s, backend %s, hearth %s.\n\n",
		c.Mode, r.Started.UTC().Format(time.RFC3339), r.Duration, r.Host.CPUs, r.Host.MemTotalMB, r.Host.Kernel, r.Host.Backend, r.Host.Commit)
	p("Sizes: exec load %d workspaces × %d concurrent execs; shell load %d workspaces × %d shells × %d writes; %d kill -9 runs per operation; many-entries archive %d entries (entry limit %s); bombs expand to %d MiB against %d MiB disks; VMs of %d MiB.\n\n",
		c.ExecWS, c.Execs, c.ShellWS, c.Shells, c.Writes, c.FaultRuns, c.Entries, limitStr(c.EntryLimit), c.BombMiB, c.diskMiB(), c.MemoryMiB)
	p("## Goals\n\n| figure | value | goal | |\n|---|---:|---:|---|\n")
	for _, g := range r.Goals {
		mark := "ok"
		if !g.OK {
			mark = "**MISSED**"
		}
		p("| %s | %d | %d | %s |\n", g.Figure, g.Value, g.Goal, mark)
	}
	p("\n")
	if len(r.Errors) > 0 {
		p("## Harness errors\n\n")
		for _, e := range r.Errors {
			p("- %s\n", cell(e))
		}
		p("\n")
	}
	if l := r.Load; l != nil {
		p("## Load\n\n| scenario | calls | failures | p50 | p99 | max | wall |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range []*LatencySet{l.Exec, l.ShellWrite} {
			if s == nil {
				continue
			}
			p("| %s | %d | %d | %s | %s | %s | %s |\n", s.Name, s.Calls, s.Failures, ms(s.P50MS), ms(s.P99MS), ms(s.MaxMS), s.Wall)
		}
		if l.ShellLinesLost > 0 || l.ShellWrites > 0 {
			p("\nShell writes: %d sent, %d lines missing or out of order in the files they wrote.\n", l.ShellWrites, l.ShellLinesLost)
		}
		m := l.Memory
		p("\nHost memory (RSS of this run's hearth and QEMU processes; MemAvailable against before any workspace):\n\n")
		p("| moment | hearth+QEMU RSS | QEMU | hearth | harness (SDK) | MemAvailable | Δ MemAvailable |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range m {
			p("| %s | %s | %s | %s | %s | %s | %s |\n", s.Moment, mib(s.RSS), mib(s.QEMURSS), mib(s.HearthRSS), mib(s.HarnessRSS), mib(s.MemAvailable), mib(s.AvailDelta))
		}
		for k, n := range l.FailureKinds {
			p("- %d × %s\n", n, cell(k))
		}
		for _, f := range l.FailureSamples {
			p("- failure: %s\n", cell(f))
		}
		p("\n")
	}
	if f := r.Faults; f != nil {
		p("## Faults (kill -9 of the CLI at a random point)\n\n| operation | runs | killed mid-way | op time (measured) | orphan VMMs | files lost | unrecoverable | half-written exports | staging left after a retry | outcomes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, o := range f.Ops {
			p("| %s | %d | %d | %s | %d | %d | %d | %d | %d | %s |\n", o.Op, o.Runs, o.Killed, o.Measured, o.Orphans, o.FilesLost, o.Unrecoverable, o.HalfExports, o.StagingLeft, cell(outcomes(o.Outcomes)))
		}
		p("\n<details><summary>every run</summary>\n\n| # | operation | delay | killed | orphans | files lost | recovered | note |\n|---:|---|---:|---|---:|---:|---|---|\n")
		for i, x := range f.Runs {
			p("| %d | %s | %s | %v | %d | %d | %v | %s |\n", i+1, x.Op, x.Delay, x.Killed, x.Orphans, x.FilesLost, x.Recovered, cell(x.Note))
		}
		p("\n</details>\n\n")
	}
	if in := r.Input; in != nil {
		p("## Bad input\n\nHost canaries: %s. Every input below, with what hearth said.\n\n", in.Canary)
		p("| target | input | outcome | exit | escapes | special files made | peak RSS | time | message |\n|---|---|---|---:|---:|---:|---:|---:|---|\n")
		for _, x := range in.Items {
			p("| %s | %s | %s | %d | %d | %d | %s | %s | %s |\n", x.Target, x.Input, x.Outcome, x.Exit, x.Escapes, x.Special, mib(x.MaxRSS), x.Time, cell(x.Message))
		}
		p("\n")
	}
	if n := r.Network; n != nil {
		p("## Network boundary\n\nDNS answered by a resolver the test runs on 127.0.0.1; every address the guest is pointed at is host loopback.\n\n")
		p("| mode | check | want | got | ok |\n|---|---|---|---|---|\n")
		for _, m := range n.Modes {
			for _, ch := range m.Checks {
				p("| %s | %s | %s | %s | %v |\n", m.Mode, cell(ch.Name), cell(ch.Want), cell(ch.Got), ch.OK)
			}
		}
		p("\n")
	}
	if len(r.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	if len(r.times) > 0 {
		p("Part times:")
		for _, k := range r.parts {
			p(" %s %s;", k, r.times[k].Round(time.Second))
		}
		p("\n")
	}
	return b.String()
}

func limitStr(n int) string {
	if n == 0 {
		return "hearth's default"
	}
	return fmt.Sprint(n)
}

func ms(v float64) string { return fmt.Sprintf("%.0f ms", v) }

func outcomes(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, "; ")
}
