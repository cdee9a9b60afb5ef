package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/backend"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/hearthvm/hearth/internal/workspace"
)

// manager builds a workspace.Manager on the test state directory, the way
// hearth.New does.
func manager(t *testing.T) *workspace.Manager {
	t.Helper()
	m, err := workspace.New(workspace.Options{
		Home: env.Home, Exe: env.Bin,
		Backends: backend.Factory(backend.Config{CacheDir: home.Cache(env.Home)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func freeHostPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mexec(t *testing.T, m *workspace.Manager, ws, script string) string {
	t.Helper()
	r, err := m.Exec(ctxFor(t, 2*time.Minute), ws, workspace.ExecOptions{Shell: script, Capture: true})
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	if r.ExitCode != 0 {
		t.Fatalf("exec %q: exit %d: %s %s", script, r.ExitCode, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

func startService(t *testing.T, m *workspace.Manager, ws string, o workspace.ServiceStartOptions) *api.ServiceStartResult {
	t.Helper()
	r, err := m.ServiceStart(ctxFor(t, 3*time.Minute), ws, o)
	if err != nil {
		t.Fatalf("service start %s: %v", o.Name, err)
	}
	return r
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// echoScript is a guest TCP server on PORT that answers each connection
// with the SHA-256 of everything it read, then the bytes themselves.
const echoScript = `import hashlib, socket, socketserver, sys
class H(socketserver.BaseRequestHandler):
    def handle(self):
        chunks = []
        while True:
            b = self.request.recv(65536)
            if not b:
                break
            chunks.append(b)
        data = b"".join(chunks)
        self.request.sendall(hashlib.sha256(data).digest() + data)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`

// bindScript binds PORT on the guest's loopback after a delay, prints the
// guest time of the bind in nanoseconds, and serves HTTP from the cwd.
const bindScript = `import http.server, socketserver, sys, time
time.sleep(float(sys.argv[2]))
class S(socketserver.TCPServer):
    allow_reuse_address = True
s = S(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)
print("bound-at-ns", time.time_ns(), flush=True)
s.serve_forever()
`

// TestServices runs services and published ports on one real VM, in the
// order a user meets them: readiness tied to the service's own socket,
// exits with their code and tail, log readiness, restart limits, bad input,
// the control plane surviving a guest that kills everything, and services
// and ports coming back after a stop and start of the workspace.
func TestServices(t *testing.T) {
	m := manager(t)
	webPort := freeHostPort(t)
	ws, err := m.Create(ctxFor(t, 5*time.Minute), workspace.CreateOptions{MemoryMiB: 512, Publish: []string{fmt.Sprintf("%d:8000", webPort)}})
	if err != nil {
		t.Fatalf("create with a published port: %v", err)
	}
	id := ws.ID
	t.Cleanup(func() { m.Delete(context.Background(), id, true) })
	mexec(t, m, id, "mkdir -p /srv/www && echo hello-from-guest > /srv/www/index.html")

	t.Run("ready only after its own bind", func(t *testing.T) {
		r := startService(t, m, id, workspace.ServiceStartOptions{Name: "web", Cwd: "/srv/www", Argv: []string{"python3", "-c", bindScript, "8000", "2"}, Ready: []string{"port:8000"}})
		if r.Service.State != api.ServiceStarting || r.Service.PID == 0 {
			t.Fatalf("just after start: %+v", r.Service)
		}
		w, err := m.ServiceWait(ctxFor(t, 2*time.Minute), id, "web", time.Minute)
		if err != nil || w.Result != api.WaitReady || w.Service.ReadyAt == nil {
			t.Fatalf("wait: %+v %v", w, err)
		}
		var logs bytes.Buffer
		if err := m.ServiceLogs(ctxFor(t, time.Minute), id, "web", workspace.ServiceLogsOptions{Tail: 5}, &logs); err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(logs.String())
		if len(f) < 2 || f[0] != "bound-at-ns" {
			t.Fatalf("logs: %q", logs.String())
		}
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		bound := time.Unix(0, ns)
		if w.Service.ReadyAt.Before(bound) {
			t.Fatalf("ready at %v, before the bind at %v", w.Service.ReadyAt, bound)
		}
		t.Logf("ready %v after the bind", w.Service.ReadyAt.Sub(bound))
	})

	t.Run("published port reaches a loopback-only server", func(t *testing.T) {
		if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/index.html", webPort)); got != "hello-from-guest\n" {
			t.Fatalf("got %q", got)
		}
		ports, err := m.PortList(ctxFor(t, time.Minute), id)
		if err != nil || len(ports) != 1 || !ports[0].Active || ports[0].GuestPort != 8000 || ports[0].Connections < 1 {
			t.Fatalf("%+v %v", ports, err)
		}
	})

	echoPort := freeHostPort(t)
	t.Run("32 concurrent connections, checksummed", func(t *testing.T) {
		r := startService(t, m, id, workspace.ServiceStartOptions{Name: "echo", Argv: []string{"python3", "-c", echoScript, "9000"}, Restart: "always",
			Ready: []string{"port:9000"}, Wait: true, WaitTimeout: 2 * time.Minute, Publish: []string{fmt.Sprintf("%d:9000", echoPort)}})
		if r.Wait == nil || r.Wait.Result != api.WaitReady || len(r.Ports) != 1 || !r.Ports[0].Active {
			t.Fatalf("%+v", r)
		}
		checkEcho(t, echoPort, 32, 128<<10)
	})

	t.Run("another process's socket never counts", func(t *testing.T) {
		startService(t, m, id, workspace.ServiceStartOptions{Name: "holder", Argv: []string{"python3", "-m", "http.server", "8002", "--bind", "127.0.0.1"}, Ready: []string{"port:8002"}, Wait: true})
		startService(t, m, id, workspace.ServiceStartOptions{Name: "imposter", Argv: []string{"sleep", "600"}, Ready: []string{"port{start_period=0,retries=3}:8002"}})
		w, err := m.ServiceWait(ctxFor(t, time.Minute), id, "imposter", 5*time.Second)
		if err != nil || w.Result != api.WaitTimedOut || w.Service.State == api.ServiceReady {
			t.Fatalf("%+v %v", w, err)
		}
		if w.Service.State != api.ServiceUnready || !strings.Contains(w.Service.Probes[0].Detail, "not by the service") || !strings.Contains(w.Service.Probes[0].Detail, "python3") {
			t.Fatalf("state %s probes %+v", w.Service.State, w.Service.Probes)
		}
	})

	t.Run("exits 2 s after start: exited with code and tail", func(t *testing.T) {
		r, err := m.ServiceStart(ctxFor(t, 2*time.Minute), id, workspace.ServiceStartOptions{Name: "dies", Argv: []string{"sh", "-c", "echo about-to-die; sleep 2; exit 3"}, Ready: []string{"port:8001"}, Wait: true})
		if err != nil || r.Wait == nil {
			t.Fatalf("%+v %v", r, err)
		}
		w := r.Wait
		if w.Result != api.WaitExited || w.ExitCode == nil || *w.ExitCode != 3 || !strings.Contains(w.Tail, "about-to-die") || w.Service.State != api.ServiceExited {
			t.Fatalf("%+v", w)
		}
		s, err := m.ServiceShow(ctxFor(t, time.Minute), id, "dies")
		if err != nil || s.LastExit == nil || s.LastExit.ExitCode != 3 || !strings.Contains(s.LastExit.Tail, "about-to-die") {
			t.Fatalf("show: %+v %v", s, err)
		}
	})

	t.Run("postgres-style readiness line", func(t *testing.T) {
		r := startService(t, m, id, workspace.ServiceStartOptions{Name: "pg", Argv: []string{"sh", "-c", `echo "LOG:  database system is starting up"; sleep 1; echo "LOG:  database system is ready to accept connections"; exec sleep 600`},
			Ready: []string{"log:database system is ready to accept connections"}, Wait: true})
		if r.Wait.Result != api.WaitReady {
			t.Fatalf("%+v", r.Wait)
		}
	})

	t.Run("on-failure restarts, then the start limit", func(t *testing.T) {
		// 4 starts in a minute: under emulation a crash loop with back-off
		// (100, 200, 400 ms) fits easily.
		r := startService(t, m, id, workspace.ServiceStartOptions{Name: "crash", Argv: []string{"sh", "-c", "echo crashing; exit 1"}, Restart: "on-failure",
			StartLimitBurst: 4, StartLimitInterval: time.Minute, Ready: []string{"port:1"}, Wait: true, WaitTimeout: 2 * time.Minute})
		w := r.Wait
		if w.Result != api.WaitExited || w.Service.State != api.ServiceFailed || w.Service.Restarts != 3 || !strings.Contains(w.Service.Message, "start limit") || *w.ExitCode != 1 ||
			strings.Count(w.Tail, "crashing") != 4 {
			t.Fatalf("%+v", w)
		}
	})

	t.Run("command not found", func(t *testing.T) {
		r := startService(t, m, id, workspace.ServiceStartOptions{Name: "nf", Argv: []string{"no-such-server"}, Wait: true})
		if r.Wait.Result != api.WaitExited || *r.Wait.ExitCode != 127 || !strings.Contains(r.Wait.Tail, "no-such-server: command not found") {
			t.Fatalf("%+v", r.Wait)
		}
	})

	t.Run("bad input loses nothing", func(t *testing.T) {
		before, _ := m.ServiceList(ctxFor(t, time.Minute), id)
		portsBefore, _ := m.PortList(ctxFor(t, time.Minute), id)
		ctx := ctxFor(t, 2*time.Minute)
		_, err := m.ServiceStart(ctx, id, workspace.ServiceStartOptions{Name: "web", Argv: []string{"true"}})
		if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), `"web"`) {
			t.Errorf("duplicate name: %v", err)
		}
		_, err = m.ServiceStart(ctx, id, workspace.ServiceStartOptions{Name: "x", Argv: []string{"true"}, Ready: []string{"port:eighty"}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "port:eighty") {
			t.Errorf("bad probe: %v", err)
		}
		_, err = m.ServiceStart(ctx, id, workspace.ServiceStartOptions{Name: "y", Argv: []string{"sleep", "9"}, Publish: []string{fmt.Sprintf("%d:1234", webPort)}})
		if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "already published") {
			t.Errorf("port already published: %v", err)
		}
		taken, _ := net.Listen("tcp", "127.0.0.1:0")
		defer taken.Close()
		_, err = m.PortPublish(ctx, id, fmt.Sprintf("%d:1234", taken.Addr().(*net.TCPAddr).Port), workspace.PublishOptions{})
		if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "in use") {
			t.Errorf("host port in use: %v", err)
		}
		_, err = m.PortPublish(ctx, id, "0.0.0.0:0:80", workspace.PublishOptions{})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("non-loopback without the option: %v", err)
		}
		after, _ := m.ServiceList(ctx, id)
		portsAfter, _ := m.PortList(ctx, id)
		if len(after) != len(before) || len(portsAfter) != len(portsBefore) {
			t.Errorf("bad input changed things: services %d -> %d, ports %d -> %d", len(before), len(after), len(portsBefore), len(portsAfter))
		}
	})

	t.Run("a guest that kills everything leaves the control plane", func(t *testing.T) {
		// Hold a published connection open, so that the agent owns a TCP
		// socket to the guest server (what `lsof -t -i:PORT` would name).
		held, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", echoPort))
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		held.Write([]byte("x"))
		script := `
for s in TERM INT HUP QUIT USR1 USR2 PWR ABRT KILL; do kill -s $s 1 2>/dev/null; done
# every pid that owns a socket in LISTEN or any other state, then everything else
for p in $(ls /proc | grep -E '^[0-9]+$'); do
  [ "$p" = 1 ] || [ "$p" = $$ ] || kill -9 "$p" 2>/dev/null
done
true`
		r, err := m.Exec(ctxFor(t, 2*time.Minute), id, workspace.ExecOptions{Shell: script})
		if err != nil {
			t.Fatalf("the killing command's own call failed: %v", err)
		}
		_ = r
		if out := mexec(t, m, id, "echo alive"); out != "alive\n" {
			t.Fatalf("after the kill: %q", out)
		}
		// echo restarts (always); its published port works again.
		w, err := m.ServiceWait(ctxFor(t, 2*time.Minute), id, "echo", time.Minute)
		if err != nil || w.Result != api.WaitReady || w.Service.Restarts < 1 {
			t.Fatalf("echo after the kill: %+v %v", w, err)
		}
		checkEcho(t, echoPort, 4, 16<<10)
		// web (restart no) was killed: exited with the signal.
		s, err := m.ServiceShow(ctxFor(t, time.Minute), id, "web")
		if err != nil || s.State != api.ServiceExited || s.LastExit == nil || s.LastExit.Signal != "KILL" {
			t.Fatalf("web after the kill: %+v %v", s, err)
		}
	})

	t.Run("services and ports survive stop and start", func(t *testing.T) {
		ctx := ctxFor(t, 5*time.Minute)
		if _, err := m.ServiceStop(ctx, id, "pg", workspace.ServiceStopOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
		// Publishing on a stopped workspace is recorded for the next start.
		lateport := freeHostPort(t)
		p, err := m.PortPublish(ctx, id, fmt.Sprintf("%d:8000", lateport), workspace.PublishOptions{})
		if err != nil || p.Active {
			t.Fatalf("publish while stopped: %+v %v", p, err)
		}
		list, err := m.ServiceList(ctx, id)
		if err != nil || len(list) == 0 || list[0].State != api.ServiceStopped {
			t.Fatalf("list while stopped: %+v %v", list, err)
		}
		if _, err := m.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		w, err := m.ServiceWait(ctx, id, "web", 2*time.Minute)
		if err != nil || w.Result != api.WaitReady {
			t.Fatalf("web after stop/start: %+v %v", w, err)
		}
		for _, hp := range []int{webPort, lateport} {
			if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/index.html", hp)); got != "hello-from-guest\n" {
				t.Fatalf("port %d after stop/start: %q", hp, got)
			}
		}
		if s, err := m.ServiceShow(ctx, id, "pg"); err != nil || s.State != api.ServiceStopped {
			t.Fatalf("a service stopped on request must stay stopped: %+v %v", s, err)
		}
		if _, err := m.ServiceWait(ctx, id, "echo", 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		checkEcho(t, echoPort, 4, 16<<10)
	})

	t.Run("rm and unpublish", func(t *testing.T) {
		ctx := ctxFor(t, 2*time.Minute)
		if _, err := m.ServiceRemove(ctx, id, "echo"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.ServiceShow(ctx, id, "echo"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("after rm: %v", err)
		}
		if _, err := m.PortUnpublish(ctx, id, strconv.Itoa(echoPort)); err != nil {
			t.Fatal(err)
		}
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", echoPort)); err == nil {
			c.Close()
			t.Fatal("still listening after unpublish")
		}
	})
}

// checkEcho sends n concurrent random payloads through the published port
// and checks every answer's checksum and bytes.
func checkEcho(t *testing.T, hostPort, n, size int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, size+i*7)
			rand.Read(payload)
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort), 30*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Minute))
			go func() { c.Write(payload); c.(*net.TCPConn).CloseWrite() }()
			got, err := io.ReadAll(c)
			sum := sha256.Sum256(payload)
			switch {
			case err != nil:
				errs <- fmt.Errorf("connection %d: %v", i, err)
			case len(got) != 32+len(payload) || !bytes.Equal(got[:32], sum[:]) || !bytes.Equal(got[32:], payload):
				errs <- fmt.Errorf("connection %d: %d bytes back for %d sent, or a wrong checksum", i, len(got), len(payload))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
