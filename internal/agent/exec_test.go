package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"golang.org/x/sys/unix"
)

// TestMain makes the test binary a child subreaper and runs the real reaper,
// so every exec test also checks that reaping orphans never steals an exit
// status from exec.
func TestMain(m *testing.M) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err == nil {
		startReaper(nil)
	}
	os.Exit(m.Run())
}

// testClient returns a client whose every stream is served by one agent
// Server over an in-memory pipe.
func testClient(t *testing.T) *guest.Client {
	t.Helper()
	srv := newHostServer()
	return &guest.Client{Dial: func(ctx context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		go srv.ServeConn(context.Background(), a)
		return b, nil
	}}
}

func doExec(t *testing.T, c *guest.Client, req *guestproto.ExecRequest, stdin io.Reader) (res *guestproto.ExecResult, stdout, stderr []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	res, err := c.Exec(ctx, req, guest.ExecIO{Stdin: stdin, Stdout: &o, Stderr: &e})
	if err != nil {
		t.Fatalf("exec %+v: %v", req, err)
	}
	return res, o.Bytes(), e.Bytes()
}

func TestExec(t *testing.T) {
	c := testClient(t)
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec.sh")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := make([]byte, 100<<10)
	rand.Read(bin)
	binFile := filepath.Join(dir, "bin")
	if err := os.WriteFile(binFile, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	const big = 200_000

	tests := []struct {
		name       string
		req        guestproto.ExecRequest
		stdin      io.Reader
		wantCode   int
		wantReason string
		wantSignal string
		wantOut    []byte // exact stdout, when set
		wantOutLen int    // stdout length, when > 0
		wantErrLen int    // stderr length, when > 0
		errHas     string // stderr substring
		maxDur     time.Duration
	}{
		{name: "printf exact", req: guestproto.ExecRequest{Argv: []string{"printf", "hello"}}, wantOut: []byte("hello"), wantReason: guestproto.ReasonExited},
		{name: "binary exact", req: guestproto.ExecRequest{Argv: []string{"cat", binFile}}, wantOut: bin, wantReason: guestproto.ReasonExited},
		{name: "non-utf8 bytes", req: guestproto.ExecRequest{Argv: []string{"printf", `\377\000\001\200`}}, wantOut: []byte{0xff, 0, 1, 0x80}, wantReason: guestproto.ReasonExited},
		{name: "shell", req: guestproto.ExecRequest{Shell: "echo $((1+2))"}, wantOut: []byte("3\n"), wantReason: guestproto.ReasonExited},
		{name: "exit 7", req: guestproto.ExecRequest{Shell: "exit 7"}, wantCode: 7, wantReason: guestproto.ReasonExited},
		{name: "not found", req: guestproto.ExecRequest{Argv: []string{"hearth-no-such-command"}}, wantCode: 127, wantReason: guestproto.ReasonStartFailed, errHas: "hearth-no-such-command"},
		{name: "not found by path", req: guestproto.ExecRequest{Argv: []string{dir + "/missing"}}, wantCode: 127, wantReason: guestproto.ReasonStartFailed, errHas: "missing"},
		{name: "not executable", req: guestproto.ExecRequest{Argv: []string{noexec}}, wantCode: 126, wantReason: guestproto.ReasonStartFailed, errHas: "noexec.sh"},
		{name: "shell not found", req: guestproto.ExecRequest{Shell: "hearth-no-such-command"}, wantCode: 127, wantReason: guestproto.ReasonExited},
		{name: "stdin is empty", req: guestproto.ExecRequest{Argv: []string{"cat"}}, wantOut: []byte{}, wantReason: guestproto.ReasonExited, maxDur: 5 * time.Second},
		{name: "stdin given", req: guestproto.ExecRequest{Argv: []string{"cat"}}, stdin: strings.NewReader("one\ntwo\n"), wantOut: []byte("one\ntwo\n"), wantReason: guestproto.ReasonExited},
		{name: "stdin big", req: guestproto.ExecRequest{Argv: []string{"wc", "-c"}}, stdin: bytes.NewReader(make([]byte, big)), wantOut: []byte(strconv.Itoa(big) + "\n"), wantReason: guestproto.ReasonExited},
		{name: "background child holds pipes", req: guestproto.ExecRequest{Shell: "sleep 10 & echo started"}, wantOut: []byte("started\n"), wantReason: guestproto.ReasonExited, maxDur: 3 * time.Second},
		{name: "big stdout and stderr at once", req: guestproto.ExecRequest{Shell: "head -c 200000 /dev/zero >&2 & head -c 200000 /dev/zero; wait"}, wantOutLen: big, wantErrLen: big, wantReason: guestproto.ReasonExited},
		{name: "signaled", req: guestproto.ExecRequest{Shell: "kill -TERM $$"}, wantCode: 143, wantReason: guestproto.ReasonSignaled, wantSignal: "TERM"},
		{name: "env merged", req: guestproto.ExecRequest{Shell: `printf "%s %s %s" "$FOO" "$TERM" "$GIT_PAGER"`, Env: []string{"FOO=bar", "TERM=xterm"}}, wantOut: []byte("bar xterm cat"), wantReason: guestproto.ReasonExited},
		{name: "cwd", req: guestproto.ExecRequest{Argv: []string{"pwd"}, Cwd: dir}, wantOut: []byte(dir + "\n"), wantReason: guestproto.ReasonExited},
		{name: "timeout", req: guestproto.ExecRequest{Argv: []string{"sleep", "30"}, TimeoutMS: 200}, wantCode: 124, wantReason: guestproto.ReasonTimeout, wantSignal: "KILL", maxDur: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, out, errOut := doExec(t, c, &tt.req, tt.stdin)
			if res.ExitCode != tt.wantCode || res.Reason != tt.wantReason || res.Signal != tt.wantSignal {
				t.Errorf("result = %+v, want code %d reason %s signal %q (stderr %q)", res, tt.wantCode, tt.wantReason, tt.wantSignal, errOut)
			}
			if tt.wantOut != nil && !bytes.Equal(out, tt.wantOut) {
				t.Errorf("stdout = %q (%d bytes), want %q", trunc(out), len(out), trunc(tt.wantOut))
			}
			if tt.wantOutLen > 0 && len(out) != tt.wantOutLen {
				t.Errorf("stdout has %d bytes, want %d", len(out), tt.wantOutLen)
			}
			if tt.wantErrLen > 0 && len(errOut) != tt.wantErrLen {
				t.Errorf("stderr has %d bytes, want %d", len(errOut), tt.wantErrLen)
			}
			if tt.errHas != "" && !bytes.Contains(errOut, []byte(tt.errHas)) {
				t.Errorf("stderr = %q, want it to name %q", errOut, tt.errHas)
			}
			if tt.maxDur > 0 && time.Since(start) > tt.maxDur {
				t.Errorf("took %v, want under %v", time.Since(start), tt.maxDur)
			}
		})
	}
}

func trunc(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func TestExecInvalid(t *testing.T) {
	c := testClient(t)
	for name, req := range map[string]*guestproto.ExecRequest{
		"missing cwd":  {Argv: []string{"true"}, Cwd: "/hearth/no/such/dir"},
		"no command":   {},
		"argv + shell": {Argv: []string{"true"}, Shell: "true"},
		"bad env":      {Argv: []string{"true"}, Env: []string{"NOEQUALS"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.Exec(context.Background(), req, guest.ExecIO{})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want invalid argument", err)
			}
		})
	}
}

// pidOf reads the first line of stdout as a pid.
func pidOf(t *testing.T, line string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("want a pid on stdout, got %q", line)
	}
	return pid
}

// waitGone waits until pid has exited (it may linger as a zombie until its
// parent reaps it).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if st, _, ok := parseStat(b); ok && (st == 'Z' || st == 'X') {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("process %d still runs", pid)
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	c := testClient(t)
	res, out, _ := doExec(t, c, &guestproto.ExecRequest{Shell: "sleep 30 & echo $!; wait", TimeoutMS: 300}, nil)
	if res.Reason != guestproto.ReasonTimeout || res.ExitCode != 124 {
		t.Fatalf("result = %+v, want timeout 124 (never oom)", res)
	}
	waitGone(t, pidOf(t, string(out)))
}

// lineWriter reports the first write on ready.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	sent  bool
	ready chan string // buffered, receives the first line
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if i := bytes.IndexByte(w.buf.Bytes(), '\n'); i >= 0 && !w.sent {
		w.ready <- string(w.buf.Bytes()[:i])
		w.sent = true
	}
	return len(p), nil
}

func TestExecControlSignal(t *testing.T) {
	c := testClient(t)
	w := &lineWriter{ready: make(chan string, 1)}
	p, err := c.Start(context.Background(), &guestproto.ExecRequest{Shell: "echo ready; exec sleep 30"}, guest.ExecIO{Stdout: w})
	if err != nil {
		t.Fatal(err)
	}
	<-w.ready
	if err := p.Signal("INT"); err != nil {
		t.Fatal(err)
	}
	res, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Reason != guestproto.ReasonKilled || res.Signal != "INT" || res.ExitCode != 130 {
		t.Fatalf("result = %+v, want killed by INT, 130", res)
	}
}

func TestExecContextCancelKills(t *testing.T) {
	c := testClient(t)
	w := &lineWriter{ready: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-w.ready
		cancel()
	}()
	start := time.Now()
	_, err := c.Exec(ctx, &guestproto.ExecRequest{Shell: "echo $$; exec sleep 30"}, guest.ExecIO{Stdout: w})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	w.mu.Lock()
	line, _, _ := strings.Cut(w.buf.String(), "\n")
	w.mu.Unlock()
	waitGone(t, pidOf(t, line))
}

// countWriter counts and discards.
type countWriter struct{ n atomic.Int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

func TestExecLargeOutputBoundedMemory(t *testing.T) {
	c := testClient(t)
	const size = 50 << 20
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var out countWriter
	res, err := c.Exec(context.Background(), &guestproto.ExecRequest{Argv: []string{"head", "-c", strconv.Itoa(size), "/dev/zero"}}, guest.ExecIO{Stdout: &out})
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || out.n.Load() != size {
		t.Fatalf("result %+v, %d bytes; want exit 0 and %d bytes", res, out.n.Load(), size)
	}
	if grow := int64(peak.Load()) - int64(base); grow > 16<<20 {
		t.Fatalf("heap grew by %d MiB while streaming %d MiB", grow>>20, size>>20)
	}
}

func TestExecHostCloseKills(t *testing.T) {
	srv := newHostServer()
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() { srv.ServeConn(context.Background(), a); close(done) }()
	if err := guestproto.WriteJSON(b, &guestproto.Request{Op: guestproto.OpExec, Exec: &guestproto.ExecRequest{Shell: "echo $$; exec sleep 30"}}); err != nil {
		t.Fatal(err)
	}
	typ, p, err := guestproto.ReadFrame(b, nil)
	if err != nil || typ != guestproto.FrameStdout {
		t.Fatalf("frame %v %q %v", typ, p, err)
	}
	pid := pidOf(t, string(p))
	b.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("exec did not end after the host closed the stream")
	}
	waitGone(t, pid)
}

func TestHello(t *testing.T) {
	c := testClient(t)
	h, err := c.Hello(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	caps := strings.Join(h.Capabilities, ",")
	for _, op := range []guestproto.Op{guestproto.OpHello, guestproto.OpExec, guestproto.OpShutdown} {
		if !strings.Contains(caps, string(op)) {
			t.Errorf("capabilities %v lack %s", h.Capabilities, op)
		}
	}
	if h.Kernel == "" || h.BootID == "" || h.UptimeMS <= 0 || h.AgentVersion == "" {
		t.Errorf("hello = %+v: want kernel, boot id, uptime and version", h)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "plain"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	tests := []struct {
		name     string
		wantPath string
		wantCode int
	}{
		{"tool", filepath.Join(dir, "tool"), 0},
		{"plain", "", 126},
		{"adir", "", 127},
		{"nope", "", 127},
		{"./tool", filepath.Join(dir, "tool"), 0},
		{"./plain", "", 126},
		{"./adir", "", 126},
		{dir + "/nope", "", 127},
	}
	for _, tt := range tests {
		p, code, msg := lookPath(tt.name, "/nonexistent:"+dir, dir)
		if p != tt.wantPath || code != tt.wantCode || (code != 0 && !strings.Contains(msg, strings.TrimPrefix(tt.name, "./"))) {
			t.Errorf("lookPath(%q) = %q %d %q, want %q %d", tt.name, p, code, msg, tt.wantPath, tt.wantCode)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, []string{"B=3", "C=4", "A=5"})
	if want := []string{"A=5", "B=3", "C=4"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("mergeEnv = %v, want %v", got, want)
	}
}

func TestProtoSignal(t *testing.T) {
	for in, want := range map[string]string{"INT": "INT", "sigterm": "TERM", "KILL": "KILL", "9": "KILL", "HUP": "HUP"} {
		sig, err := protoSignal(in)
		if err != nil || protoSignalName(sig) != want {
			t.Errorf("protoSignal(%q) = %v, %v; want %s", in, sig, err, want)
		}
	}
	if _, err := protoSignal("BOGUS"); err == nil {
		t.Error("protoSignal accepted BOGUS")
	}
}
