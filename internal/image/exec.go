package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tailLines is how many lines of a failed step's output an error carries.
const tailLines = 15

// runner runs the external commands of one build step, appending their
// combined output to a log file and keeping the last lines for errors.
type runner struct {
	logPath string
	log     io.Writer
	env     []string
}

// lineSink is the io.Writer given to a child as stdout and stderr: it copies
// bytes to the log, splits lines, hands each to onLine and keeps a tail.
type lineSink struct {
	mu     sync.Mutex
	log    io.Writer
	onLine func(string)
	buf    []byte
	tail   []string
}

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log != nil {
		s.log.Write(p)
	}
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexAny(s.buf, "\n\r")
		if i < 0 {
			break
		}
		line := string(s.buf[:i])
		s.buf = s.buf[i+1:]
		if line == "" {
			continue
		}
		s.push(line)
	}
	if len(s.buf) > 64<<10 { // a runaway line without newline
		s.push(string(s.buf))
		s.buf = s.buf[:0]
	}
	return len(p), nil
}

func (s *lineSink) push(line string) {
	s.tail = append(s.tail, line)
	if len(s.tail) > tailLines {
		s.tail = s.tail[len(s.tail)-tailLines:]
	}
	if s.onLine != nil {
		s.onLine(line)
	}
}

func (s *lineSink) lastLines() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tail
	if len(s.buf) > 0 {
		t = append(t, string(s.buf))
	}
	return strings.Join(t, "\n")
}

// run runs name with args in dir. Output goes to the log and, line by line,
// to onLine (may be nil). The child runs in its own process group, which is
// killed as a whole when ctx is cancelled. A failure names the log and
// quotes the output's last lines.
func (r *runner) run(ctx context.Context, dir string, onLine func(string), name string, args ...string) error {
	if r.log != nil {
		fmt.Fprintf(r.log, "\n### %s $ %s %s\n", time.Now().Format(time.RFC3339), name, strings.Join(args, " "))
	}
	sink := &lineSink{log: r.log, onLine: onLine}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.Env = append(cmd.Env, r.env...)
	cmd.Stdin = nil
	cmd.Stdout = sink
	cmd.Stderr = sink
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: make's compilers, debootstrap's dpkg.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", name, ctx.Err())
	}
	return &stepError{cmd: name + " " + strings.Join(args, " "), err: err, logPath: r.logPath, tail: sink.lastLines()}
}

// output runs a short command and returns its trimmed stdout.
func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// stepError is a failed build command: what ran, where the full log is,
// and the output's last lines.
type stepError struct {
	cmd     string
	err     error
	logPath string
	tail    string
}

func (e *stepError) Error() string {
	c := e.cmd
	if len(c) > 200 {
		c = c[:200] + "..."
	}
	msg := fmt.Sprintf("%s: %v", c, e.err)
	if e.logPath != "" {
		msg += " (full log: " + e.logPath + ")"
	}
	if e.tail != "" {
		msg += "\nlast lines:\n  " + strings.ReplaceAll(e.tail, "\n", "\n  ")
	}
	return msg
}

func (e *stepError) Unwrap() error { return e.err }
