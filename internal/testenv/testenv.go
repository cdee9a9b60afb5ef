// Package testenv prepares real-VM integration tests: the hearth and
// hearth-agent binaries and a state directory holding the debian-12 image,
// built once and cached between runs (the first build takes minutes).
//
// Environment: HEARTH_TEST_HOME (default <repo>/.cache/hearth-test),
// HEARTH_BIN and HEARTH_AGENT (default: built into a temporary directory).
package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Env is a prepared test environment.
type Env struct {
	// Home is the state directory holding the image.
	Home string
	// Bin and Agent are the built binaries.
	Bin, Agent string
}

var (
	once sync.Once
	env  *Env
	err  error
)

// RepoRoot returns the module root.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Get prepares (once per process) and returns the environment. It builds
// missing binaries and the image; failures are returned, never skipped:
// a machine that cannot boot VMs fails the integration tests.
func Get() (*Env, error) {
	once.Do(func() { env, err = prepare() })
	return env, err
}

func prepare() (*Env, error) {
	root := RepoRoot()
	e := &Env{Home: os.Getenv("HEARTH_TEST_HOME"), Bin: os.Getenv("HEARTH_BIN"), Agent: os.Getenv("HEARTH_AGENT")}
	if e.Home == "" {
		e.Home = filepath.Join(root, ".cache", "hearth-test")
	}
	if e.Bin == "" || e.Agent == "" {
		out := filepath.Join(root, ".cache", "testbin")
		if err := os.MkdirAll(out, 0o755); err != nil {
			return nil, err
		}
		e.Bin, e.Agent = filepath.Join(out, "hearth"), filepath.Join(out, "hearth-agent")
		build := exec.Command("go", "build", "-o", e.Bin, "./cmd/hearth")
		build.Dir = root
		if b, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build hearth: %v\n%s", err, b)
		}
		build = exec.Command("go", "build", "-o", e.Agent, "./cmd/hearth-agent")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build hearth-agent: %v\n%s", err, b)
		}
	}
	os.Setenv("HEARTH_AGENT", e.Agent)
	os.Setenv("HEARTH_BIN", e.Bin)
	if err := os.MkdirAll(e.Home, 0o700); err != nil {
		return nil, err
	}
	insp := exec.Command(e.Bin, "image", "inspect", "debian-12")
	insp.Env = e.Environ()
	if insp.Run() != nil {
		fmt.Fprintf(os.Stderr, "testenv: building the debian-12 image into %s (first run only; several minutes)\n", e.Home)
		b := exec.Command(e.Bin, "image", "build", "debian-12")
		b.Env = e.Environ()
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return nil, fmt.Errorf("build the test image: %w", err)
		}
	}
	return e, nil
}

// Environ is the environment for running the hearth binary against Home.
func (e *Env) Environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HEARTH_HOME=") {
			out = append(out, kv)
		}
	}
	return append(out, "HEARTH_HOME="+e.Home, "HEARTH_AGENT="+e.Agent, "HEARTH_BIN="+e.Bin)
}

// Result is the outcome of running the hearth binary.
type Result struct {
	Stdout, Stderr []byte
	Code           int
}

// Hearth runs the hearth binary with args and optional stdin.
func (e *Env) Hearth(stdin []byte, args ...string) Result {
	cmd := exec.Command(e.Bin, args...)
	cmd.Env = e.Environ()
	var o, er bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &er
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return Result{Stdout: o.Bytes(), Stderr: er.Bytes(), Code: code}
}

// VMMCount counts running VMM processes (qemu-system or firecracker).
func VMMCount() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, d := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		arg0, _, _ := bytes.Cut(b, []byte{0})
		base := filepath.Base(string(arg0))
		if strings.HasPrefix(base, "qemu-system") || base == "firecracker" {
			n++
		}
	}
	return n
}
