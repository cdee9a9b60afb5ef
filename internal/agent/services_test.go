package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// These tests run services as real processes of the test binary (a child
// subreaper, see TestMain), without cgroups: the process tree is the
// service's session. The real-VM tests in test/integration cover the guest.

func serviceClient(t *testing.T) *guest.Client {
	t.Helper()
	srv := NewServer(nil)
	tmp := t.TempDir()
	srv.services.cgroupRoot = filepath.Join(tmp, "no-cgroup", "hearth-services")
	srv.services.notifyDir = filepath.Join(tmp, "notify")
	t.Cleanup(func() {
		for _, in := range srv.services.list() {
			if sv, err := srv.services.get(in.Name); err == nil {
				sv.stop(9, time.Second)
			}
		}
	})
	return &guest.Client{Dial: func(ctx context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		go srv.ServeConn(context.Background(), a)
		return b, nil
	}}
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startSvc(t *testing.T, c *guest.Client, spec guestproto.ServiceSpec) *guestproto.ServiceInfo {
	t.Helper()
	in, err := c.ServiceStart(tctx(t), &spec)
	if err != nil {
		t.Fatalf("start %s: %v", spec.Name, err)
	}
	return in
}

func waitSvc(t *testing.T, c *guest.Client, name string, d time.Duration) *guestproto.ServiceWaitResult {
	t.Helper()
	w, err := c.ServiceWait(tctx(t), name, d)
	if err != nil {
		t.Fatalf("wait %s: %v", name, err)
	}
	return w
}

func TestServiceCommandNotFound(t *testing.T) {
	c := serviceClient(t)
	in := startSvc(t, c, guestproto.ServiceSpec{Name: "nf", Argv: []string{"no-such-command-hearth"}, Ready: []string{"port:1"}, Restart: guestproto.RestartAlways})
	if in.State != guestproto.ServiceExited || in.LastExit == nil || in.LastExit.ExitCode != 127 || !strings.Contains(in.LastExit.Message, "command not found") {
		t.Fatalf("%+v %+v", in, in.LastExit)
	}
	w := waitSvc(t, c, "nf", 5*time.Second)
	if w.Result != guestproto.WaitExited || !strings.Contains(w.Tail, "no-such-command-hearth: command not found") {
		t.Fatalf("%+v", w)
	}
}

func TestServiceExitedWithCodeAndTail(t *testing.T) {
	c := serviceClient(t)
	startSvc(t, c, guestproto.ServiceSpec{Name: "dies", Argv: []string{"sh", "-c", "echo about-to-die; echo on-stderr >&2; sleep 0.3; exit 3"}, Ready: []string{"port:1"}})
	w := waitSvc(t, c, "dies", 10*time.Second)
	if w.Result != guestproto.WaitExited || w.Service.State != guestproto.ServiceExited {
		t.Fatalf("%+v", w)
	}
	e := w.Service.LastExit
	if e == nil || e.ExitCode != 3 || !strings.Contains(e.Tail, "about-to-die") || !strings.Contains(e.Tail, "on-stderr") || w.Service.PID != 0 {
		t.Fatalf("%+v %+v", w.Service, e)
	}
}

func TestServicePortReadinessOnlyAfterItsOwnBind(t *testing.T) {
	c := serviceClient(t)
	port := freePort(t)
	// An imposter holds the port first: the test process itself.
	imp, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`import socket, sys, time
while True:
    try:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", %d)); s.listen(); break
    except OSError:
        time.sleep(0.05)
print("bound at", time.time(), flush=True)
time.sleep(60)`, port)
	startSvc(t, c, guestproto.ServiceSpec{Name: "web", Argv: []string{"python3", "-c", script}, Ready: []string{fmt.Sprintf("port{start_period=0,retries=2}:%d", port)}})
	w := waitSvc(t, c, "web", 1500*time.Millisecond)
	if w.Result != guestproto.WaitTimedOut || w.Service.State == guestproto.ServiceReady {
		t.Fatalf("ready while another process holds the port: %+v", w)
	}
	if w.Service.State != guestproto.ServiceUnready || len(w.Service.Probes) != 1 || !strings.Contains(w.Service.Probes[0].Detail, "not by the service") {
		t.Fatalf("state %s, probes %+v", w.Service.State, w.Service.Probes)
	}
	imp.Close()
	w = waitSvc(t, c, "web", 20*time.Second)
	if w.Result != guestproto.WaitReady {
		t.Fatalf("%+v", w)
	}
	var out bytes.Buffer
	if _, err := c.ServiceLogs(tctx(t), "web", 0, false, &out); err != nil || !strings.Contains(out.String(), "bound at") {
		t.Fatalf("logs %q %v", out.String(), err)
	}
	if !strings.Contains(w.Service.Probes[0].Detail, "listens on 127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("probe detail %q", w.Service.Probes[0].Detail)
	}
}

func TestServiceLogAndFileAndNotifyProbes(t *testing.T) {
	c := serviceClient(t)
	startSvc(t, c, guestproto.ServiceSpec{Name: "pg", Argv: []string{"sh", "-c", `sleep 0.3; echo "LOG:  database system is ready to accept connections"; exec sleep 60`},
		Ready: []string{"log:database system is ready to accept connections"}})
	if w := waitSvc(t, c, "pg", 10*time.Second); w.Result != guestproto.WaitReady {
		t.Fatalf("log probe: %+v", w)
	}
	dir := t.TempDir()
	startSvc(t, c, guestproto.ServiceSpec{Name: "f", Cwd: dir, Argv: []string{"sh", "-c", "sleep 0.3; touch ready; exec sleep 60"}, Ready: []string{"file:ready"}})
	if w := waitSvc(t, c, "f", 10*time.Second); w.Result != guestproto.WaitReady {
		t.Fatalf("file probe: %+v", w)
	}
	notify := `import os, socket, time
time.sleep(0.3)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"STATUS=warming up", os.environ["NOTIFY_SOCKET"])
time.sleep(0.3)
s.sendto(b"READY=1\nSTATUS=serving", os.environ["NOTIFY_SOCKET"])
time.sleep(60)`
	startSvc(t, c, guestproto.ServiceSpec{Name: "n", Argv: []string{"python3", "-c", notify}, Ready: []string{"notify"}})
	w := waitSvc(t, c, "n", 20*time.Second)
	if w.Result != guestproto.WaitReady || !strings.Contains(w.Service.Probes[0].Detail, "serving") {
		t.Fatalf("notify probe: %+v", w)
	}
	startSvc(t, c, guestproto.ServiceSpec{Name: "c", Cwd: dir, Argv: []string{"sleep", "60"}, Ready: []string{"cmd{interval=100ms}:test -e go"}})
	time.Sleep(300 * time.Millisecond) // the probe must have failed a few times
	in, _ := c.ServiceShow(tctx(t), "c")
	if in.State != guestproto.ServiceStarting || !strings.Contains(in.Probes[0].Detail, "exit status 1") {
		t.Fatalf("cmd probe before: %+v", in)
	}
	startSvc(t, c, guestproto.ServiceSpec{Name: "touch", Cwd: dir, Argv: []string{"touch", "go"}})
	if w := waitSvc(t, c, "c", 10*time.Second); w.Result != guestproto.WaitReady {
		t.Fatalf("cmd probe: %+v", w)
	}
}

func TestServiceHTTPProbe(t *testing.T) {
	c := serviceClient(t)
	port := freePort(t)
	dir := t.TempDir()
	startSvc(t, c, guestproto.ServiceSpec{Name: "h404", Cwd: dir, Argv: []string{"python3", "-m", "http.server", "--bind", "127.0.0.1", strconv.Itoa(port)},
		Ready: []string{fmt.Sprintf("http{start_period=0,retries=1}:%d/missing", port)}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		in, err := c.ServiceShow(tctx(t), "h404")
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Probes) == 1 && strings.Contains(in.Probes[0].Detail, "status 404") {
			if in.State == guestproto.ServiceReady {
				t.Fatalf("ready on a 404: %+v", in)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 404 seen: %+v", in)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.ServiceRemove(tctx(t), "h404"); err != nil {
		t.Fatal(err)
	}
	startSvc(t, c, guestproto.ServiceSpec{Name: "h", Cwd: dir, Argv: []string{"python3", "-m", "http.server", "--bind", "127.0.0.1", strconv.Itoa(port)},
		Ready: []string{fmt.Sprintf("http:%d/=200", port)}})
	if w := waitSvc(t, c, "h", 20*time.Second); w.Result != guestproto.WaitReady {
		t.Fatalf("%+v", w)
	}
}

func TestServiceOnFailureHitsStartLimit(t *testing.T) {
	c := serviceClient(t)
	startSvc(t, c, guestproto.ServiceSpec{Name: "crash", Argv: []string{"sh", "-c", "echo run; exit 1"}, Restart: guestproto.RestartOnFailure, Ready: []string{"port:1"},
		RestartDelayMS: 10, StartLimitBurst: 4, StartLimitIntervalMS: 20000})
	w := waitSvc(t, c, "crash", 20*time.Second)
	if w.Result != guestproto.WaitExited || w.Service.State != guestproto.ServiceFailed || w.Service.Restarts != 3 || !strings.Contains(w.Service.Message, "start limit") {
		t.Fatalf("%+v", w.Service)
	}
	var out bytes.Buffer
	c.ServiceLogs(tctx(t), "crash", 0, false, &out)
	if n := strings.Count(out.String(), "run\n"); n != 4 {
		t.Fatalf("%d runs in the log, want 4: %q", n, out.String())
	}
	// A restart clears the limit; on-failure does not restart a clean exit.
	in, err := c.ServiceRestart(tctx(t), "crash")
	if err != nil || in.State == guestproto.ServiceFailed {
		t.Fatalf("%+v %v", in, err)
	}
	startSvc(t, c, guestproto.ServiceSpec{Name: "clean", Argv: []string{"true"}, Restart: guestproto.RestartOnFailure, Ready: []string{"port:1"}})
	if w := waitSvc(t, c, "clean", 10*time.Second); w.Result != guestproto.WaitExited || w.Service.Restarts != 0 || w.Service.LastExit.ExitCode != 0 {
		t.Fatalf("%+v", w.Service)
	}
}

func TestServiceStopRestartRemove(t *testing.T) {
	c := serviceClient(t)
	// A service that ignores TERM in its children too: stop must SIGKILL
	// the whole tree after the timeout.
	startSvc(t, c, guestproto.ServiceSpec{Name: "s", Argv: []string{"sh", "-c", "trap '' TERM; sleep 60 & echo trapped; sleep 60; wait"}, Restart: guestproto.RestartAlways, Ready: []string{"log:trapped"}})
	waitSvc(t, c, "s", 10*time.Second)
	start := time.Now()
	in, err := c.ServiceStop(tctx(t), "s", "TERM", 300*time.Millisecond)
	if err != nil || in.State != guestproto.ServiceStopped || in.LastExit == nil || in.LastExit.Signal != "KILL" {
		t.Fatalf("%+v %+v %v", in, in.LastExit, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("stop took %v", time.Since(start))
	}
	in, err = c.ServiceRestart(tctx(t), "s")
	// starting, or already ready: its log probe may match before the reply.
	if err != nil || in.State != guestproto.ServiceStarting && in.State != guestproto.ServiceReady || in.PID == 0 {
		t.Fatalf("restart: %+v %v", in, err)
	}
	in, err = c.ServiceStop(tctx(t), "s", "INT", 0)
	if err != nil || in.State != guestproto.ServiceStopped {
		t.Fatalf("%+v %v", in, err)
	}
	if _, err := c.ServiceRemove(tctx(t), "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ServiceShow(tctx(t), "s"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("after rm: %v", err)
	}
}

func TestServiceDuplicateAndBadInput(t *testing.T) {
	c := serviceClient(t)
	startSvc(t, c, guestproto.ServiceSpec{Name: "one", Argv: []string{"sleep", "60"}})
	_, err := c.ServiceStart(tctx(t), &guestproto.ServiceSpec{Name: "one", Argv: []string{"sleep", "1"}})
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), `"one" already exists`) {
		t.Fatalf("duplicate: %v", err)
	}
	if in, _ := c.ServiceShow(tctx(t), "one"); in.Spec.Argv[1] != "60" || in.State != guestproto.ServiceReady {
		t.Fatalf("the duplicate changed the first: %+v", in)
	}
	_, err = c.ServiceStart(tctx(t), &guestproto.ServiceSpec{Name: "two", Argv: []string{"sleep", "1"}, Ready: []string{"port:abc"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "port:abc") {
		t.Fatalf("bad probe: %v", err)
	}
	_, err = c.ServiceStart(tctx(t), &guestproto.ServiceSpec{Name: "three", Argv: []string{"sleep", "1"}, Cwd: "/no/such/dir"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad cwd: %v", err)
	}
	list, _ := c.ServiceList(tctx(t))
	if len(list) != 1 {
		t.Fatalf("failed starts left services behind: %+v", list)
	}
}

func TestServiceLogsTailAndFollow(t *testing.T) {
	c := serviceClient(t)
	startSvc(t, c, guestproto.ServiceSpec{Name: "l", Argv: []string{"sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; echo late"}, Ready: []string{"log:line5"}})
	waitSvc(t, c, "l", 10*time.Second)
	var out bytes.Buffer
	if _, err := c.ServiceLogs(tctx(t), "l", 2, true, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "line4\nline5\nlate\n" {
		t.Fatalf("follow with tail 2: %q", out.String())
	}
	// Follow ends when the caller's context does.
	startSvc(t, c, guestproto.ServiceSpec{Name: "forever", Argv: []string{"sleep", "60"}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.ServiceLogs(ctx, "forever", 0, true, io.Discard); err != nil {
		t.Fatalf("follow until ctx ends: %v", err)
	}
}

func TestPortConnect(t *testing.T) {
	c := serviceClient(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(s, s); s.(*net.TCPConn).CloseWrite() }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	conn, err := c.PortConnect(tctx(t), port)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello through the agent")
	go conn.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("%q %v", got, err)
	}
	conn.Close()
	ln.Close()
	if _, err := c.PortConnect(tctx(t), port); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "nothing accepts connections") {
		t.Fatalf("closed port: %v", err)
	}
	// A server on the IPv6 loopback only is reached too.
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("this test needs the IPv6 loopback: %v", err)
	}
	defer ln6.Close()
	go func() {
		if s, err := ln6.Accept(); err == nil {
			s.Write([]byte("v6"))
			s.Close()
		}
	}()
	conn, err = c.PortConnect(tctx(t), ln6.Addr().(*net.TCPAddr).Port)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	conn.Close()
	if string(b) != "v6" {
		t.Fatalf("v6 server: %q", b)
	}
}
