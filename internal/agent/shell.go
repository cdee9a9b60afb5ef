package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// Shell session limits.
const (
	maxShells        = 16
	shellRingSize    = 1 << 20   // output kept per session
	shellMaxRead     = 256 << 10 // bytes returned by one shell_read
	shellDefaultCols = 120
	shellDefaultRows = 40
	// shellCloseGrace is how long shell_close waits after SIGHUP before
	// it sends SIGKILL.
	shellCloseGrace = 500 * time.Millisecond
	// shellWriteTimeout bounds a write to a PTY whose program is not
	// reading its input.
	shellWriteTimeout = 10 * time.Second
)

// Session states in guestproto.ShellInfo.State.
const (
	shellRunning = "running"
	shellExited  = "exited"
)

func init() {
	register(guestproto.OpShellOpen, handleShellOpen)
	register(guestproto.OpShellWrite, handleShellWrite)
	register(guestproto.OpShellRead, handleShellRead)
	register(guestproto.OpShellResize, handleShellResize)
	register(guestproto.OpShellSignal, handleShellSignal)
	register(guestproto.OpShellClose, handleShellClose)
	register(guestproto.OpShellList, handleShellList)
	register(guestproto.OpShellAttach, handleShellAttach)
}

func (s *Server) init() {
	s.shells = newShellTable(s.Log)
	s.services = newServiceTable(s.Log)
}

// shellTable holds the PTY shell sessions of a Server. Sessions live until
// shell_close, independent of any stream.
type shellTable struct {
	log      *slog.Logger
	mu       sync.Mutex
	sessions map[string]*shellSession
	// closed remembers the final state of recently closed shells, so a
	// second close succeeds (shell_close is idempotent); bounded FIFO.
	closed      map[string]*guestproto.ShellInfo
	closedOrder []string
}

// maxClosedShells bounds how many closed shells are remembered.
const maxClosedShells = 256

func newShellTable(log *slog.Logger) *shellTable {
	return &shellTable{log: log, sessions: map[string]*shellSession{}, closed: map[string]*guestproto.ShellInfo{}}
}

// remember records a closed shell's final state; t.mu is held.
func (t *shellTable) remember(info *guestproto.ShellInfo) {
	if len(t.closedOrder) >= maxClosedShells {
		delete(t.closed, t.closedOrder[0])
		t.closedOrder = t.closedOrder[1:]
	}
	t.closed[info.ID] = info
	t.closedOrder = append(t.closedOrder, info.ID)
}

// shellSession is one shell on a PTY. Its output is kept in a ring buffer
// addressed by absolute byte offsets.
type shellSession struct {
	id      string
	created time.Time
	cmd     *exec.Cmd
	ptmx    *os.File
	initCwd string

	mu       sync.Mutex
	out      ring
	notify   chan struct{} // closed and replaced when output arrives or the shell exits
	lastRead int64         // where the previous shell_read ended
	cols     int
	rows     int
	exited   bool
	exitCode int
	done     chan struct{} // closed when the shell has exited
}

func (t *shellTable) get(id string) (*shellSession, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sh, ok := t.sessions[id]
	if !ok {
		return nil, errorf(guestproto.CodeNotFound, "shell session %q not found (shell_list lists the open sessions)", id)
	}
	return sh, nil
}

func newShellID() string {
	var b [4]byte
	rand.Read(b[:])
	return "sh-" + hex.EncodeToString(b[:])
}

// shellEnv merges the request's "K=V" entries over the defaults.
func shellEnv(shell string, extra []string) ([]string, error) {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"TERM=xterm-256color",
		"LANG=C.UTF-8",
		"PAGER=cat",
		"GIT_PAGER=cat",
		"GIT_EDITOR=:",
		"SHELL=" + shell,
	}
	if brokerTrust.Load() {
		env = append(env, guestproto.TrustEnv()...)
	}
	for _, kv := range extra {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return nil, errorf(guestproto.CodeInvalid, "environment entry %q is not of the form NAME=value", kv)
		}
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		env = append(env, kv)
	}
	return env, nil
}

func handleShellOpen(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r := req.Shell
	if r == nil {
		r = &guestproto.ShellRequest{}
	}
	cols, rows := r.Cols, r.Rows
	if cols == 0 {
		cols = shellDefaultCols
	}
	if rows == 0 {
		rows = shellDefaultRows
	}
	if err := checkSize(cols, rows); err != nil {
		return nil, err
	}
	cwd := r.Cwd
	if cwd == "" {
		cwd = "/"
		if fi, err := os.Stat("/workspace"); err == nil && fi.IsDir() {
			cwd = "/workspace"
		}
	} else if fi, err := os.Stat(cwd); err != nil || !fi.IsDir() {
		return nil, errorf(guestproto.CodeInvalid, "working directory %q is not a directory in the guest", cwd)
	}
	shell, args := "/bin/sh", []string(nil)
	if len(s.ShellArgv) > 0 {
		shell, args = s.ShellArgv[0], s.ShellArgv[1:]
	} else if _, err := os.Stat("/bin/bash"); err == nil {
		shell, args = "/bin/bash", []string{"-l"}
	}
	env, err := shellEnv(shell, r.Env)
	if err != nil {
		return nil, err
	}

	t := s.shells
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.sessions) >= maxShells {
		return nil, errorf(guestproto.CodeLimit, "%d shell sessions are open, the most a workspace allows: close one first", len(t.sessions))
	}
	id := newShellID()
	for t.sessions[id] != nil {
		id = newShellID()
	}
	cmd := exec.Command(shell, args...)
	cmd.Dir = cwd
	cmd.Env = env
	ptmx, err := startPTY(cmd, cols, rows)
	if err != nil {
		return nil, fmt.Errorf("start %s on a pty: %w", shell, err)
	}
	sh := &shellSession{
		id: id, created: time.Now(), cmd: cmd, ptmx: ptmx, initCwd: cwd,
		out: ring{size: shellRingSize}, notify: make(chan struct{}),
		cols: cols, rows: rows, done: make(chan struct{}),
	}
	t.sessions[id] = sh
	readerDone := make(chan struct{})
	go sh.pump(readerDone)
	go sh.wait(readerDone)
	t.log.Info("shell opened", "id", id, "shell", shell, "pid", cmd.Process.Pid)
	return &guestproto.Response{Shell: sh.info()}, nil
}

// pump copies PTY output into the ring until the PTY ends.
func (sh *shellSession) pump(done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 32<<10)
	for {
		n, err := sh.ptmx.Read(buf)
		if n > 0 {
			sh.mu.Lock()
			sh.out.write(buf[:n])
			sh.broadcastLocked()
			sh.mu.Unlock()
		}
		if err != nil {
			return // EIO once every holder of the terminal is gone, or closed
		}
	}
}

// wait reaps the shell and marks the session exited once its output has
// been read (or a moment later, when background jobs hold the terminal).
func (sh *shellSession) wait(readerDone <-chan struct{}) {
	err := waitTracked(sh.cmd)
	code := shellExitStatus(sh.cmd.ProcessState, err)
	select {
	case <-readerDone:
	case <-time.After(250 * time.Millisecond):
	}
	sh.mu.Lock()
	sh.exited, sh.exitCode = true, code
	sh.broadcastLocked()
	sh.mu.Unlock()
	close(sh.done)
}

func (sh *shellSession) broadcastLocked() {
	close(sh.notify)
	sh.notify = make(chan struct{})
}

// info describes the session; it takes sh.mu.
func (sh *shellSession) info() *guestproto.ShellInfo {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.infoLocked()
}

func (sh *shellSession) infoLocked() *guestproto.ShellInfo {
	in := &guestproto.ShellInfo{
		ID: sh.id, State: shellRunning, Cols: sh.cols, Rows: sh.rows,
		Cwd: sh.initCwd, CreatedAt: sh.created.UTC().Format(time.RFC3339Nano),
		OutputBytes: sh.out.total,
	}
	if sh.exited {
		in.State = shellExited
		code := sh.exitCode
		in.ExitCode = &code
	} else if cwd, err := shellProcessCwd(sh.cmd.Process.Pid); err == nil {
		in.Cwd = cwd
	}
	return in
}

// readFrom returns output from cursor on, waiting up to wait for output to
// exist. A nil cursor continues from the previous read. It updates the
// session's read position when remember is set.
func (sh *shellSession) readFrom(ctx context.Context, cursor *int64, wait time.Duration, max int, remember bool) (*guestproto.ShellReadResult, error) {
	var deadline <-chan time.Time
	if wait > 0 {
		tm := time.NewTimer(wait)
		defer tm.Stop()
		deadline = tm.C
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	from := sh.lastRead
	if cursor != nil {
		from = *cursor
	}
	if from < 0 {
		return nil, errorf(guestproto.CodeInvalid, "cursor %d is negative", from)
	}
	if from > sh.out.total {
		return nil, errorf(guestproto.CodeInvalid, "cursor %d is past the end of the output (%d bytes so far)", from, sh.out.total)
	}
	for deadline != nil && from >= sh.out.total && !sh.exited {
		ch := sh.notify
		sh.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			deadline = nil
		case <-ctx.Done():
			deadline = nil
		}
		sh.mu.Lock()
	}
	res := &guestproto.ShellReadResult{}
	if start := sh.out.start(); from < start {
		res.DroppedBytes = start - from
		from = start
	}
	res.Output = sh.out.read(from, max)
	res.Cursor = from
	res.NextCursor = from + int64(len(res.Output))
	if remember {
		sh.lastRead = res.NextCursor
	}
	res.Shell = *sh.infoLocked()
	return res, nil
}

func checkSize(cols, rows int) error {
	if cols < 1 || rows < 1 || cols > 10000 || rows > 10000 {
		return errorf(guestproto.CodeInvalid, "terminal size %dx%d is out of range (columns and rows must be 1..10000)", cols, rows)
	}
	return nil
}

func shellReq(req *guestproto.Request) (*guestproto.ShellRequest, error) {
	if req.Shell == nil || req.Shell.ID == "" {
		return nil, errorf(guestproto.CodeInvalid, "%s needs a shell session id (shell_list lists them)", req.Op)
	}
	return req.Shell, nil
}

// shellFor returns the request's shell fields and the session they name.
func (s *Server) shellFor(req *guestproto.Request) (*guestproto.ShellRequest, *shellSession, error) {
	r, err := shellReq(req)
	if err != nil {
		return nil, nil, err
	}
	sh, err := s.shells.get(r.ID)
	if err != nil {
		return nil, nil, err
	}
	return r, sh, nil
}

func handleShellWrite(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, sh, err := s.shellFor(req)
	if err != nil {
		return nil, err
	}
	if _, err := sh.write(ctx, r.Data); err != nil {
		return nil, err
	}
	return &guestproto.Response{Shell: sh.info()}, nil
}

// write sends exact bytes to the PTY and says how many it wrote.
func (sh *shellSession) write(ctx context.Context, p []byte) (int, error) {
	sh.mu.Lock()
	exited := sh.exited
	sh.mu.Unlock()
	if exited {
		return 0, errorf(guestproto.CodePrecondition, "shell session %s has exited: open a new one", sh.id)
	}
	dl := time.Now().Add(shellWriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	sh.ptmx.SetWriteDeadline(dl)
	n, err := sh.ptmx.Write(p)
	if err != nil {
		if os.IsTimeout(err) {
			return n, errorf(guestproto.CodeLimit, "shell session %s is not reading its input: wrote %d of %d bytes", sh.id, n, len(p))
		}
		return n, fmt.Errorf("write to shell %s: %w", sh.id, err)
	}
	return n, nil
}

func handleShellRead(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, sh, err := s.shellFor(req)
	if err != nil {
		return nil, err
	}
	if r.Seek && r.Cursor != nil {
		sh.mu.Lock()
		sh.lastRead = min(max(*r.Cursor, 0), sh.out.total)
		sh.mu.Unlock()
		return &guestproto.Response{ShellRead: &guestproto.ShellReadResult{Cursor: *r.Cursor, NextCursor: *r.Cursor, Shell: *sh.info()}}, nil
	}
	res, err := sh.readFrom(ctx, r.Cursor, time.Duration(r.WaitMS)*time.Millisecond, shellMaxRead, true)
	if err != nil {
		return nil, err
	}
	return &guestproto.Response{ShellRead: res}, nil
}

func handleShellResize(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, sh, err := s.shellFor(req)
	if err != nil {
		return nil, err
	}
	if err := sh.resize(r.Cols, r.Rows); err != nil {
		return nil, err
	}
	return &guestproto.Response{Shell: sh.info()}, nil
}

func (sh *shellSession) resize(cols, rows int) error {
	if err := checkSize(cols, rows); err != nil {
		return err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.exited {
		return errorf(guestproto.CodePrecondition, "shell session %s has exited", sh.id)
	}
	if err := setPTYSize(sh.ptmx, cols, rows); err != nil {
		return fmt.Errorf("resize shell %s: %w", sh.id, err)
	}
	sh.cols, sh.rows = cols, rows
	return nil
}

func handleShellSignal(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, sh, err := s.shellFor(req)
	if err != nil {
		return nil, err
	}
	if err := sh.signal(r.Signal); err != nil {
		return nil, err
	}
	return &guestproto.Response{Shell: sh.info()}, nil
}

func handleShellClose(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, err := shellReq(req)
	if err != nil {
		return nil, err
	}
	t := s.shells
	t.mu.Lock()
	sh, ok := t.sessions[r.ID]
	delete(t.sessions, r.ID)
	prev := t.closed[r.ID]
	t.mu.Unlock()
	if !ok {
		if prev != nil {
			// Closing a closed shell is fine: it answers with its final state.
			return &guestproto.Response{Shell: prev}, nil
		}
		return nil, errorf(guestproto.CodeNotFound, "shell session %q not found (shell_list lists the open sessions)", r.ID)
	}
	sh.terminate()
	info := sh.info()
	t.mu.Lock()
	t.remember(info)
	t.mu.Unlock()
	t.log.Info("shell closed", "id", sh.id)
	return &guestproto.Response{Shell: info}, nil
}

// terminate hangs up the shell, kills what is left after a grace period,
// and releases the PTY.
func (sh *shellSession) terminate() {
	sh.hangup()
	select {
	case <-sh.done:
	case <-time.After(shellCloseGrace):
		sh.kill()
		select {
		case <-sh.done:
		case <-time.After(2 * time.Second):
		}
	}
	sh.ptmx.Close()
}

func handleShellList(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	t := s.shells
	t.mu.Lock()
	list := make([]*shellSession, 0, len(t.sessions))
	for _, sh := range t.sessions {
		list = append(list, sh)
	}
	t.mu.Unlock()
	slices.SortFunc(list, func(a, b *shellSession) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	infos := make([]guestproto.ShellInfo, 0, len(list))
	for _, sh := range list {
		infos = append(infos, *sh.info())
	}
	return &guestproto.Response{Shells: infos}, nil
}

// handleShellAttach streams a session to an interactive terminal until the
// shell exits or the host detaches (FrameStdinEOF or closing the stream).
// The shell keeps running after a detach.
func handleShellAttach(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r, sh, err := s.shellFor(req)
	if err != nil {
		return nil, err
	}
	actx, detach := context.WithCancel(ctx)
	defer detach()
	go sh.attachInput(actx, detach, st)

	var cur int64
	if r.Cursor != nil {
		cur = *r.Cursor
	} else {
		sh.mu.Lock()
		cur = sh.out.start()
		sh.mu.Unlock()
	}
	for {
		res, err := sh.readFrom(actx, &cur, time.Hour, guestproto.ChunkSize, false)
		if err != nil {
			return nil, err
		}
		if len(res.Output) > 0 {
			if err := st.WriteFrame(guestproto.FrameStdout, res.Output); err != nil {
				return nil, nil // the host went away: detached
			}
		}
		cur = res.NextCursor
		if actx.Err() != nil || (res.Shell.State == shellExited && len(res.Output) == 0) {
			return &guestproto.Response{Shell: sh.info()}, nil
		}
	}
}

// attachInput feeds host frames of an attach stream to the session until
// the host detaches, then calls detach.
func (sh *shellSession) attachInput(ctx context.Context, detach func(), st *Stream) {
	defer detach()
	for {
		t, p, err := st.ReadFrame()
		if err != nil {
			return
		}
		switch t {
		case guestproto.FrameStdin:
			for len(p) > 0 && ctx.Err() == nil {
				n, err := sh.write(ctx, p)
				p = p[n:]
				var pe *protoError
				if err != nil && !(errors.As(err, &pe) && pe.code == guestproto.CodeLimit) {
					break // exited or the PTY is gone; output end will tell the host
				}
			}
		case guestproto.FrameStdinEOF:
			return
		case guestproto.FrameJSON:
			var c guestproto.Control
			if err := json.Unmarshal(p, &c); err != nil {
				continue
			}
			if c.Cols > 0 && c.Rows > 0 {
				sh.resize(c.Cols, c.Rows)
			}
			if c.Signal != "" {
				sh.signal(c.Signal)
			}
		}
	}
}

// ring is a bounded byte buffer addressed by absolute offsets: the byte at
// offset o lives at buf[o%size]. It grows up to size, then wraps.
type ring struct {
	size  int
	buf   []byte
	total int64 // bytes ever written; the next offset
}

func (r *ring) start() int64 { return max(0, r.total-int64(r.size)) }

func (r *ring) write(p []byte) {
	if len(r.buf) < r.size {
		// Linear until the first wrap: total == len(buf).
		if r.total+int64(len(p)) <= int64(r.size) {
			r.buf = append(r.buf, p...)
			r.total += int64(len(p))
			return
		}
		r.buf = append(r.buf, make([]byte, r.size-len(r.buf))...)
	}
	if len(p) > r.size {
		r.total += int64(len(p) - r.size)
		p = p[len(p)-r.size:]
	}
	for len(p) > 0 {
		off := int(r.total % int64(r.size))
		n := copy(r.buf[off:], p)
		r.total += int64(n)
		p = p[n:]
	}
}

// read copies up to max bytes from offset from, which must lie in
// [start(), total].
func (r *ring) read(from int64, max int) []byte {
	n := int(min(r.total-from, int64(max)))
	out := make([]byte, n)
	for c := 0; c < n; {
		off := int((from + int64(c)) % int64(r.size))
		c += copy(out[c:], r.buf[off:min(len(r.buf), off+n-c)])
	}
	return out
}
