package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/testenv"
)

// TestRunSemantics checks `hearth run` end to end: each case boots its own
// throwaway VM.
func TestRunSemantics(t *testing.T) {
	var uname syscall.Utsname
	syscall.Uname(&uname)
	cases := []struct {
		name    string
		args    []string
		stdin   []byte
		code    int
		stdout  func([]byte) bool
		stderr  string
		maxSecs float64
	}{
		{name: "guest kernel", args: []string{"uname", "-r"}, stdout: func(b []byte) bool {
			return len(b) > 0 && !strings.Contains(string(b), "Debian") && strings.HasPrefix(string(b), "6.1")
		}},
		{name: "exit code", args: []string{"sh", "-c", "exit 7"}, code: 7},
		{name: "exact bytes", args: []string{"printf", "hello"}, stdout: func(b []byte) bool { return string(b) == "hello" }},
		{name: "stdin closed", args: []string{"cat"}, stdout: func(b []byte) bool { return len(b) == 0 }},
		{name: "stdin given", args: []string{"--stdin", "--", "sh", "-c", "cat; echo done"}, stdin: []byte("in\x00put"), stdout: func(b []byte) bool { return string(b) == "in\x00putdone\n" }},
		{name: "missing command", args: []string{"no-such-command-xyz"}, code: 127, stderr: "no-such-command-xyz"},
		{name: "background child", args: []string{"sh", "-c", "sleep 100 & echo started"}, stdout: func(b []byte) bool { return string(b) == "started\n" }, maxSecs: 30},
		{name: "both streams large", args: []string{"sh", "-c", "head -c 200000 /dev/zero >&2 & head -c 200000 /dev/zero; wait"}, stdout: func(b []byte) bool { return len(b) == 200000 }},
		{name: "stderr only", args: []string{"sh", "-c", "echo only-err >&2"}, stdout: func(b []byte) bool { return len(b) == 0 }, stderr: "only-err"},
		{name: "binary", args: []string{"sh", "-c", "printf '\\377\\000\\001'"}, stdout: func(b []byte) bool { return bytes.Equal(b, []byte{0xff, 0, 1}) }},
		{name: "pagers", args: []string{"sh", "-c", "echo $PAGER:$GIT_PAGER:$GIT_EDITOR"}, stdout: func(b []byte) bool { return string(b) == "cat:cat::\n" }},
		{name: "env and cwd", args: []string{"--env", "A=1", "--cwd", "/tmp", "--", "sh", "-c", "echo $A $(pwd)"}, stdout: func(b []byte) bool { return string(b) == "1 /tmp\n" }},
		{name: "python", args: []string{"python3", "-c", "print(6*7)"}, stdout: func(b []byte) bool { return string(b) == "42\n" }},
		{name: "signal", args: []string{"sh", "-c", "kill -9 $$"}, code: 137, stderr: "signal"},
		{name: "out of memory", args: []string{"--memory", "256", "--", "python3", "-c", "a = []\nwhile True: a.append(' ' * 10**6)"}, code: 137, stderr: "out-of-memory"},
		{name: "timeout is not oom", args: []string{"--timeout", "1s", "--", "sleep", "30"}, code: 124, stderr: "timed out"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run"}, tc.args...)
			if !contains(tc.args, "--") {
				args = append([]string{"run", "--"}, tc.args...)
			}
			start := time.Now()
			r := env.Hearth(tc.stdin, args...)
			if r.Code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", r.Code, tc.code, r.Stderr)
			}
			if tc.stdout != nil && !tc.stdout(r.Stdout) {
				t.Errorf("stdout %q (%d bytes) not as expected", trunc(r.Stdout), len(r.Stdout))
			}
			if tc.stderr != "" && !strings.Contains(string(r.Stderr), tc.stderr) {
				t.Errorf("stderr %q lacks %q", r.Stderr, tc.stderr)
			}
			if tc.maxSecs > 0 && time.Since(start).Seconds() > tc.maxSecs {
				t.Errorf("took %s", time.Since(start))
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// TestRunLargeOutputBoundedMemory passes 50 MB through and checks hearth's
// own peak RSS.
func TestRunLargeOutputBoundedMemory(t *testing.T) {
	cmd := exec.Command(env.Bin, "run", "--", "sh", "-c", "head -c 50000000 /dev/zero")
	cmd.Env = env.Environ()
	var n countWriter
	cmd.Stdout = &n
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var peak int
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			break loop
		case <-tick.C:
			if v := vmHWM(cmd.Process.Pid); v > peak {
				peak = v
			}
		}
	}
	if n != 50000000 {
		t.Fatalf("got %d bytes, want 50000000", n)
	}
	if peak == 0 || peak > 100<<10 {
		t.Fatalf("hearth peak RSS %d KiB passing 50 MB (want ≤ 100 MiB)", peak)
	}
	t.Logf("50 MB through, hearth peak RSS %d KiB", peak)
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func vmHWM(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			v, _ := strconv.Atoi(strings.Fields(l)[1])
			return v
		}
	}
	return 0
}

// TestRunTimeoutLeavesNothing checks --timeout and that no VMM or files are
// left by a timeout, SIGTERM or SIGINT.
func TestRunTimeoutLeavesNothing(t *testing.T) {
	before := testenv.VMMCount()
	start := time.Now()
	r := env.Hearth(nil, "run", "--timeout", "3s", "--", "sleep", "120")
	if r.Code != 124 || !strings.Contains(string(r.Stderr), "timed out") {
		t.Fatalf("timeout: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if el := time.Since(start); el > 60*time.Second {
		t.Fatalf("timeout took %s", el)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(env.Bin, "run", "--", "sh", "-c", "echo up; sleep 100")
		cmd.Env = env.Environ()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3)
		if _, err := out.Read(buf); err != nil || string(buf) != "up\n" {
			t.Fatalf("command did not start: %q %v", buf, err)
		}
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		if err == nil {
			t.Fatalf("%v: hearth run exited 0", sig)
		}
	}
	if after := testenv.VMMCount(); after > before {
		t.Fatalf("VMM processes left: %d before, %d after", before, after)
	}
	ents, _ := os.ReadDir(filepath.Join(env.Home, "run"))
	if len(ents) != 0 {
		t.Fatalf("files left under %s/run: %d entries", env.Home, len(ents))
	}
}

// TestRunBadInput checks the errors of bad arguments: clear, non-zero, and
// nothing left running.
func TestRunBadInput(t *testing.T) {
	before := testenv.VMMCount()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "no command"},
		{[]string{"run", "--memory", "1", "--", "true"}, "at least 128"},
		{[]string{"run", "--cpus", "0", "--", "true"}, "--cpus"},
		{[]string{"run", "--image", "nope", "--", "true"}, "hearth image build"},
		{[]string{"run", "--backend", "vmware", "--", "true"}, "unknown backend"},
	}
	for _, tc := range cases {
		r := env.Hearth(nil, tc.args...)
		if r.Code == 0 || !strings.Contains(string(r.Stderr), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to mention %q", tc.args, r.Code, r.Stderr, tc.want)
		}
	}
	if after := testenv.VMMCount(); after > before {
		t.Fatalf("VMM processes left: %d before, %d after", before, after)
	}
}

// TestRunBootFailures: a VMM that dies during boot and a guest that never
// answers both fail clearly with the console's or VMM log's tail.
func TestRunBootFailures(t *testing.T) {
	// A "kernel" that is an ELF but not a kernel: QEMU exits at once.
	r := env.Hearth(nil, "image", "import", "broken-kernel", "--kernel", "/bin/true", "--rootfs", filepath.Join(env.Home, "images", "debian-12", "rootfs.ext4"))
	if r.Code != 0 {
		t.Fatalf("import: %s", r.Stderr)
	}
	defer env.Hearth(nil, "image", "rm", "broken-kernel")
	r = env.Hearth(nil, "run", "--image", "broken-kernel", "--", "true")
	if r.Code == 0 || !strings.Contains(string(r.Stderr), "VMM") {
		t.Errorf("broken kernel: exit %d, stderr %q", r.Code, r.Stderr)
	}
	// An agent that never answers: the boot times out with the console tail.
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\nimport (\"fmt\";\"time\")\nfunc main(){fmt.Println(\"mute agent up\");time.Sleep(time.Hour)}\n"), 0o644)
	mute := filepath.Join(dir, "mute")
	b := exec.Command("go", "build", "-o", mute, src)
	b.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := b.CombinedOutput(); err != nil {
		t.Fatalf("build mute agent: %v %s", err, out)
	}
	cmd := exec.Command(env.Bin, "run", "--", "true")
	cmd.Env = append(env.Environ(), "HEARTH_AGENT="+mute, "HEARTH_BOOT_TIMEOUT=8s")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "did not answer") || !strings.Contains(string(out), "mute agent up") {
		t.Errorf("mute agent: err %v, output %q", err, out)
	}
}

// TestDoctor checks `hearth doctor --json` names a backend and its reason.
func TestDoctor(t *testing.T) {
	r := env.Hearth(nil, "doctor", "--json")
	var d struct {
		Backend struct{ Name, Reason string }
		Checks  []struct{ Name, Status string }
	}
	if err := json.Unmarshal(r.Stdout, &d); err != nil {
		t.Fatalf("doctor --json: %v: %s", err, r.Stdout)
	}
	if d.Backend.Name == "" || d.Backend.Reason == "" || len(d.Checks) < 5 {
		t.Fatalf("doctor: %+v", d)
	}
	if r.Code != 0 {
		t.Fatalf("doctor failed on a host that runs the tests: %s", r.Stdout)
	}
}
