// Package reliability is hearth's reliability gate: load (concurrent
// execs and shell writes), faults (kill -9 of the CLI at random points of
// lifecycle and call operations), hostile input (archives and directories
// given to seed, sync push and disk import) and the network boundary (the
// self-test in every mode). It boots real VMs through the built hearth
// binary and writes a report as Markdown and JSON.
//
// `go test ./test/reliability/` runs the short version (part of `make
// test`); `make reliability` runs the full one. Sizes and parts are set
// by environment variables (see docs/reliability.md, "Reliability gate"):
//
//	HEARTH_RELIABILITY         short (default) or full: the preset sizes
//	HEARTH_REL_EXEC_WS         workspaces for the exec load
//	HEARTH_REL_EXECS           concurrent execs per workspace
//	HEARTH_REL_SHELL_WS        workspaces for the shell load
//	HEARTH_REL_SHELLS          shells per workspace
//	HEARTH_REL_WRITES          writes per shell
//	HEARTH_REL_FAULT_RUNS      kill -9 runs per operation
//	HEARTH_REL_ENTRIES         entries of the many-entries archive
//	HEARTH_REL_ENTRY_LIMIT     archive entry limit given to hearth (0: its default)
//	HEARTH_REL_BOMB_MIB        what the zip and gzip bombs expand to (MiB)
//	HEARTH_REL_PARTS           comma-separated subset of load,faults,input,network
//	HEARTH_REL_REPORT          report directory (default <repo>/reliability-report)
package reliability

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Only the corpus test runs: it needs no VM.
		os.Exit(m.Run())
	}
	var err error
	env, err = testenv.Get()
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability: cannot prepare real-VM tests:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// config is the size of one run of the gate.
type config struct {
	Mode       string          `json:"mode"`
	ExecWS     int             `json:"exec_workspaces"`
	Execs      int             `json:"execs_per_workspace"`
	ShellWS    int             `json:"shell_workspaces"`
	Shells     int             `json:"shells_per_workspace"`
	Writes     int             `json:"writes_per_shell"`
	FaultRuns  int             `json:"fault_runs_per_operation"`
	Entries    int             `json:"many_entries"`
	EntryLimit int             `json:"entry_limit"`
	BombMiB    int             `json:"bomb_mib"`
	MemoryMiB  int             `json:"vm_memory_mib"`
	Parts      map[string]bool `json:"parts"`
	Out        string          `json:"-"`
}

func (c config) diskMiB() int { return c.BombMiB / 2 }

func loadConfig() (config, error) {
	c := config{Mode: os.Getenv("HEARTH_RELIABILITY"), MemoryMiB: 256}
	switch c.Mode {
	case "", "short":
		c.Mode = "short"
		c.ExecWS, c.Execs, c.ShellWS, c.Shells, c.Writes, c.FaultRuns = 2, 10, 1, 2, 10, 2
		c.Entries, c.EntryLimit, c.BombMiB = 20_001, 20_000, 512
	case "full":
		c.ExecWS, c.Execs, c.ShellWS, c.Shells, c.Writes, c.FaultRuns = 20, 100, 4, 8, 50, 20
		c.Entries, c.EntryLimit, c.BombMiB = 1_000_000, 0, 16<<10
	default:
		return c, fmt.Errorf("HEARTH_RELIABILITY=%q: want short or full", c.Mode)
	}
	knobs := []struct {
		name string
		p    *int
	}{
		{"HEARTH_REL_EXEC_WS", &c.ExecWS}, {"HEARTH_REL_EXECS", &c.Execs},
		{"HEARTH_REL_SHELL_WS", &c.ShellWS}, {"HEARTH_REL_SHELLS", &c.Shells}, {"HEARTH_REL_WRITES", &c.Writes},
		{"HEARTH_REL_FAULT_RUNS", &c.FaultRuns}, {"HEARTH_REL_ENTRIES", &c.Entries},
		{"HEARTH_REL_ENTRY_LIMIT", &c.EntryLimit}, {"HEARTH_REL_BOMB_MIB", &c.BombMiB},
	}
	custom := false
	for _, k := range knobs {
		v := os.Getenv(k.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("%s=%q: want a number >= 0", k.name, v)
		}
		*k.p, custom = n, true
	}
	if custom {
		c.Mode += "+knobs"
	}
	if c.BombMiB < 64 {
		return c, fmt.Errorf("HEARTH_REL_BOMB_MIB=%d: want at least 64", c.BombMiB)
	}
	if c.ShellWS > c.ExecWS {
		c.ExecWS = c.ShellWS // the shell load reuses the exec load's workspaces
	}
	c.Parts = map[string]bool{}
	parts := os.Getenv("HEARTH_REL_PARTS")
	if parts == "" {
		parts = "load,input,network,faults"
	}
	for _, p := range strings.Split(parts, ",") {
		switch p = strings.TrimSpace(p); p {
		case "load", "faults", "input", "network":
			c.Parts[p] = true
		case "":
		default:
			return c, fmt.Errorf("HEARTH_REL_PARTS: unknown part %q (want load, faults, input, network)", p)
		}
	}
	c.Out = os.Getenv("HEARTH_REL_REPORT")
	if c.Out == "" {
		c.Out = testenv.RepoRoot() + "/reliability-report"
	}
	return c, nil
}
