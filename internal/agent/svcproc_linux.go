package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
	"golang.org/x/sys/unix"
)

// cgroup is a service's cgroup v2 directory.
type cgroup struct {
	dir string
	fd  int
}

// openCgroup makes (or reuses) root/name and opens it for
// CLONE_INTO_CGROUP.
func openCgroup(root, name string) (*cgroup, error) {
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "cgroup.procs")); err != nil {
		return nil, fmt.Errorf("no cgroup v2 hierarchy at %s", filepath.Dir(root))
	}
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &cgroup{dir: dir, fd: fd}, nil
}

func (c *cgroup) close() {
	if c != nil && c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// pids lists the cgroup's processes.
func (c *cgroup) pids() []int {
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// kill SIGKILLs every member (cgroup.kill, Linux 5.14+; else one by one).
func (c *cgroup) kill() error {
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0); err == nil {
		return nil
	}
	for _, pid := range c.pids() {
		unix.Kill(pid, unix.SIGKILL)
	}
	return nil
}

// removeCgroup removes a service's cgroup once it is empty.
func removeCgroup(root, name string) {
	dir := filepath.Join(root, name)
	for range 50 {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return
		}
		if !errors.Is(err, unix.EBUSY) {
			return
		}
		time.Sleep(20 * time.Millisecond) // the last members are being reaped
	}
}

// sessionTree lists the processes of session sid and their descendants
// (used without cgroups).
func sessionTree(proc string, sid int) []int {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	in := map[int]bool{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(proc + "/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		ppid, session, ok := statPPIDSession(b)
		if !ok {
			continue
		}
		parent[pid] = ppid
		if session == sid || pid == sid {
			in[pid] = true
		}
	}
	// Add descendants of members (a child that started its own session).
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if !in[pid] && in[pp] {
				in[pid] = true
				changed = true
			}
		}
	}
	out := make([]int, 0, len(in))
	for pid := range in {
		out = append(out, pid)
	}
	return out
}

// statPPIDSession reads the parent pid and session id from a
// /proc/PID/stat line ("pid (comm) S ppid pgrp session ...").
func statPPIDSession(b []byte) (ppid, session int, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 4 {
		return 0, 0, false
	}
	pp, err1 := strconv.Atoi(string(f[1]))
	ss, err2 := strconv.Atoi(string(f[3]))
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return pp, ss, true
}

// notifySocket is a service's $NOTIFY_SOCKET: a datagram socket that takes
// sd_notify(3) messages ("READY=1\nSTATUS=...").
type notifySocket struct {
	path string
	conn *net.UnixConn
}

func listenNotify(dir, name string, cb func(ready bool, status string)) (*notifySocket, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name+".sock")
	os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o666) // a service running as another user may notify
	ns := &notifySocket{path: path, conn: conn}
	go func() {
		buf := make([]byte, 8192)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			ready, status := parseNotify(buf[:n])
			cb(ready, status)
		}
	}()
	return ns, nil
}

// parseNotify reads an sd_notify message: newline-separated VAR=VALUE.
func parseNotify(b []byte) (ready bool, status string) {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "READY":
			ready = ready || v == "1"
		case "STATUS":
			status = v
		}
	}
	return ready, status
}

func (n *notifySocket) close() {
	n.conn.Close()
	os.Remove(n.path)
}

// runProbe checks probe i of p's service every interval (and at once when
// its event arrives) until the process ends.
func (sv *service) runProbe(p *svcProc, i int) {
	pb := sv.probes[i]
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		case <-p.events[i]:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		ok, detail := sv.check(p, i)
		if p.ctx.Err() != nil {
			return
		}
		sv.recordProbe(p, i, ok, detail)
		t.Reset(pb.Interval)
	}
}

// recordProbe records a check and moves the state on.
func (sv *service) recordProbe(p *svcProc, i int, ok bool, detail string) {
	now := time.Now()
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.proc != p {
		return // a result of an ended process
	}
	ps := p.pstates[i]
	ps.record(ok, detail, now, now.Sub(p.started) < ps.p.StartPeriod)
	next := nextState(sv.state, p.pstates)
	msg := ""
	for _, ps := range p.pstates {
		if !ps.passing {
			msg = fmt.Sprintf("waiting for %s: %s", ps.p.Text, ps.detail)
			if next == guestproto.ServiceUnready {
				msg = fmt.Sprintf("probe %s fails: %s", ps.p.Text, ps.detail)
			}
			break
		}
	}
	sv.setStateLocked(next, msg)
}

// check runs one check of probe i.
func (sv *service) check(p *svcProc, i int) (bool, string) {
	pb := sv.probes[i]
	switch pb.Kind {
	case guestproto.ProbePort:
		return portOwnedBy(sv.t.proc, pb.Port, p.tree(sv.t.proc))
	case guestproto.ProbeHTTP:
		return checkHTTP(p.ctx, pb)
	case guestproto.ProbeLog:
		sv.mu.Lock()
		ok := p.logMatched[i]
		sv.mu.Unlock()
		if ok {
			return true, "a line matched"
		}
		return false, fmt.Sprintf("no output line matches %q yet", pb.Regexp.String())
	case guestproto.ProbeFile:
		path := pb.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(sv.cwd(), path)
		}
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return false, path + " does not exist"
			}
			return false, err.Error()
		}
		return true, path + " exists"
	case guestproto.ProbeCmd:
		return sv.checkCmd(p, pb)
	case guestproto.ProbeNotify:
		sv.mu.Lock()
		ok, status := p.notified, p.status
		sv.mu.Unlock()
		d := "READY=1 received"
		if !ok {
			d = "no READY=1 on $NOTIFY_SOCKET yet"
		}
		if status != "" {
			d += "; status: " + status
		}
		return ok, d
	}
	return false, "unknown probe kind " + pb.Kind
}

func (sv *service) cwd() string {
	cwd, err := execCwd(sv.spec.Cwd)
	if err != nil {
		return "/"
	}
	return cwd
}

var probeHTTPClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

func checkHTTP(ctx context.Context, pb *guestproto.Probe) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, pb.Timeout)
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", pb.Port, pb.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := probeHTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Sprintf("GET %s: no answer within %s", url, pb.Timeout)
		}
		return false, fmt.Sprintf("GET %s: %v", url, errors.Unwrap(err))
	}
	resp.Body.Close()
	if pb.StatusOK(resp.StatusCode) {
		return true, fmt.Sprintf("GET %s: %d", url, resp.StatusCode)
	}
	return false, fmt.Sprintf("GET %s: status %d is not in the accepted range", url, resp.StatusCode)
}

// checkCmd runs a cmd probe: /bin/sh -c in the service's cwd and
// environment, killed (with its group) after the timeout.
func (sv *service) checkCmd(p *svcProc, pb *guestproto.Probe) (bool, string) {
	var out bytes.Buffer
	cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{"/bin/sh", "-c", pb.Command}, Dir: sv.cwd(),
		Env: mergeEnv(defaultEnv(), sv.spec.Env), Stdout: &out, Stderr: &out,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}, WaitDelay: time.Second}
	if err := startTracked(cmd); err != nil {
		return false, fmt.Sprintf("start /bin/sh: %v", err)
	}
	t := time.AfterFunc(pb.Timeout, func() { unix.Kill(-cmd.Process.Pid, unix.SIGKILL) })
	stop := context.AfterFunc(p.ctx, func() { unix.Kill(-cmd.Process.Pid, unix.SIGKILL) })
	err := waitTracked(cmd)
	timedOut := !t.Stop()
	stop()
	last := strings.TrimSpace(out.String())
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if len(last) > 200 {
		last = last[:200]
	}
	switch {
	case timedOut:
		return false, fmt.Sprintf("did not finish within %s", pb.Timeout)
	case err != nil:
		code := -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
		d := fmt.Sprintf("exit status %d", code)
		if last != "" {
			d += ": " + last
		}
		return false, d
	}
	return true, "exit status 0"
}
