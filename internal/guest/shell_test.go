package guest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/agent"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// hostShell is the shell the agent runs in these tests on the host: one
// that reads no start-up files, so the host user's ~/.bashrc (pyenv init,
// a greeting) can neither slow the tests down nor write into their output.
func hostShell() []string {
	if _, err := os.Stat("/bin/bash"); err == nil {
		return []string{"/bin/bash", "--noprofile", "--norc"}
	}
	return []string{"/bin/sh"}
}

// newTestClient serves a fresh agent over in-memory pipes.
func newTestClient(t *testing.T) *guest.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv := agent.NewServer(nil)
	srv.ShellArgv = hostShell()
	c := &guest.Client{Dial: func(context.Context) (net.Conn, error) {
		host, guestEnd := net.Pipe()
		go srv.ServeConn(ctx, guestEnd)
		return host, nil
	}}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if list, err := c.ShellList(cctx); err == nil {
			for _, sh := range list {
				c.ShellClose(cctx, sh.ID)
			}
		}
		cancel()
	})
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readUntil reads a session's output (continuing from the last read) until
// it contains want, using the agent's wait instead of sleeping.
func readUntil(t *testing.T, ctx context.Context, c *guest.Client, id, want string) (string, *guestproto.ShellReadResult) {
	t.Helper()
	var got strings.Builder
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.ShellRead(ctx, id, nil, 2*time.Second)
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		got.Write(r.Output)
		if strings.Contains(got.String(), want) {
			return got.String(), r
		}
		if r.Shell.State == "exited" && len(r.Output) == 0 {
			break
		}
	}
	t.Fatalf("output of %s never contained %q; got %q", id, want, got.String())
	return "", nil
}

func openShell(t *testing.T, ctx context.Context, c *guest.Client) string {
	t.Helper()
	info, err := c.ShellOpen(ctx, &guestproto.ShellRequest{Cwd: "/", Env: []string{"PS1=$ ", "HEARTH_T=1"}})
	if err != nil {
		t.Fatalf("open shell: %v", err)
	}
	if !strings.HasPrefix(info.ID, "sh-") || len(info.ID) != 11 || info.State != "running" || info.Cols != 120 || info.Rows != 40 {
		t.Fatalf("unexpected shell info %+v", info)
	}
	return info.ID
}

func write(t *testing.T, ctx context.Context, c *guest.Client, id, s string) {
	t.Helper()
	if _, err := c.ShellWrite(ctx, id, []byte(s)); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

func TestShellSessions(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, c *guest.Client, id string)
	}{
		{"keeps state between calls", func(t *testing.T, ctx context.Context, c *guest.Client, id string) {
			write(t, ctx, c, id, "cd /tmp; export X=42\n")
			write(t, ctx, c, id, "echo \"$PWD:$X:$HEARTH_T:$TERM\"\n")
			readUntil(t, ctx, c, id, "/tmp:42:1:xterm-256color")
			info, err := c.ShellResize(ctx, id, 100, 30)
			if err != nil || info.Cwd != "/tmp" || info.Cols != 100 {
				t.Fatalf("resize: %+v, %v", info, err)
			}
			write(t, ctx, c, id, "stty size\n")
			readUntil(t, ctx, c, id, "30 100")
		}},
		{"cursor reads return only new output", func(t *testing.T, ctx context.Context, c *guest.Client, id string) {
			write(t, ctx, c, id, "echo ONE$((1+1))\n")
			_, r := readUntil(t, ctx, c, id, "ONE2")
			next := r.NextCursor
			write(t, ctx, c, id, "echo TWO$((1+2))\n")
			readUntil(t, ctx, c, id, "TWO3")
			r2, err := c.ShellRead(ctx, id, &next, 0)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(r2.Output, []byte("ONE2")) || !bytes.Contains(r2.Output, []byte("TWO3")) || r2.Cursor != next {
				t.Fatalf("read from %d: %q (cursor %d)", next, r2.Output, r2.Cursor)
			}
			if r2.NextCursor != r2.Cursor+int64(len(r2.Output)) || r2.NextCursor != r2.Shell.OutputBytes {
				t.Fatalf("cursors: %+v", r2)
			}
		}},
		{"wait returns early on output", func(t *testing.T, ctx context.Context, c *guest.Client, id string) {
			write(t, ctx, c, id, "echo READY$((1+1))\n")
			readUntil(t, ctx, c, id, "READY2")
			_, err := c.ShellRead(ctx, id, nil, 200*time.Millisecond) // drain
			if err != nil {
				t.Fatal(err)
			}
			write(t, ctx, c, id, "sleep 0.3; echo LATE$((1+1))\n")
			readUntil(t, ctx, c, id, "sleep") // the echo of the input
			start := time.Now()
			r, err := c.ShellRead(ctx, id, nil, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 10*time.Second || len(r.Output) == 0 {
				t.Fatalf("wait took %v and returned %q", d, r.Output)
			}
		}},
		{"INT interrupts the foreground command and the shell lives", func(t *testing.T, ctx context.Context, c *guest.Client, id string) {
			write(t, ctx, c, id, "sh -c 'echo RUN$((1+1)); exec sleep 100'\n")
			readUntil(t, ctx, c, id, "RUN2")
			if _, err := c.ShellSignal(ctx, id, "INT"); err != nil {
				t.Fatal(err)
			}
			write(t, ctx, c, id, "echo RC$?\n")
			readUntil(t, ctx, c, id, "RC130")
			if _, err := c.ShellSignal(ctx, id, "BOGUS"); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "INT") {
				t.Fatalf("unknown signal: %v", err)
			}
		}},
		{"dropped bytes after more than 1 MiB", func(t *testing.T, ctx context.Context, c *guest.Client, id string) {
			write(t, ctx, c, id, "head -c 1500000 /dev/zero | tr '\\0' a; echo; echo DONE$((1+1))\n")
			readUntil(t, ctx, c, id, "DONE2")
			zero := int64(0)
			r, err := c.ShellRead(ctx, id, &zero, 0)
			if err != nil {
				t.Fatal(err)
			}
			if r.DroppedBytes <= 0 || r.Cursor != r.DroppedBytes || len(r.Output) != 256<<10 {
				t.Fatalf("dropped %d cursor %d len %d", r.DroppedBytes, r.Cursor, len(r.Output))
			}
			if r.Shell.OutputBytes-r.Cursor != 1<<20 {
				t.Fatalf("kept %d bytes, want 1 MiB", r.Shell.OutputBytes-r.Cursor)
			}
		}},
		{"cursor from the future is an error", func(t *testing.T, ctx context.Context, c *guest.Client, id string) {
			future := int64(1 << 40)
			_, err := c.ShellRead(ctx, id, &future, 0)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "past the end") {
				t.Fatalf("got %v", err)
			}
		}},
		{"writing to an exited shell is an error", func(t *testing.T, ctx context.Context, c *guest.Client, id string) {
			write(t, ctx, c, id, "exit 3\n")
			var r *guestproto.ShellReadResult
			for r == nil || r.Shell.State != "exited" {
				var err error
				if r, err = c.ShellRead(ctx, id, nil, 5*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if r.Shell.ExitCode == nil || *r.Shell.ExitCode != 3 {
				t.Fatalf("exit code %v", r.Shell.ExitCode)
			}
			if _, err := c.ShellWrite(ctx, id, []byte("x")); !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("write to exited shell: %v", err)
			}
		}},
		{"close frees the session", func(t *testing.T, ctx context.Context, c *guest.Client, id string) {
			write(t, ctx, c, id, "sleep 100\n")
			first, err := c.ShellClose(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.ShellRead(ctx, id, nil, 0); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("read after close: %v", err)
			}
			// shell_close is idempotent: a second close returns the final state.
			again, err := c.ShellClose(ctx, id)
			if err != nil || again.ID != first.ID || again.State != first.State {
				t.Fatalf("second close: %+v %v, first %+v", again, err, first)
			}
			if _, err := c.ShellClose(ctx, "sh-never"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("close of an unknown shell: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			c := newTestClient(t)
			tt.run(t, ctx, c, openShell(t, ctx, c))
		})
	}
}

func TestShellLimit(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	var ids []string
	for range 16 {
		info, err := c.ShellOpen(ctx, &guestproto.ShellRequest{Cwd: "/"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	_, err := c.ShellOpen(ctx, nil)
	if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "close one first") {
		t.Fatalf("17th shell: %v", err)
	}
	list, err := c.ShellList(ctx)
	if err != nil || len(list) != 16 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	for i, sh := range list {
		if sh.ID != ids[i] {
			t.Fatalf("list order: %d is %s, want %s", i, sh.ID, ids[i])
		}
	}
	if _, err := c.ShellClose(ctx, ids[3]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ShellOpen(ctx, nil); err != nil {
		t.Fatalf("open after close: %v", err)
	}
}

// TestShellReadsNoStartupFiles: a shell whose HOME holds slow, noisy
// start-up files starts at once and prints nothing of theirs.
func TestShellReadsNoStartupFiles(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	home := t.TempDir()
	for _, f := range []string{".bashrc", ".bash_profile", ".profile", ".bash_login"} {
		if err := os.WriteFile(filepath.Join(home, f), []byte("echo STARTUP-NOISE-"+f+"; sleep 30\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info, err := c.ShellOpen(ctx, &guestproto.ShellRequest{Cwd: "/", Env: []string{"HOME=" + home, "ENV=" + filepath.Join(home, ".profile"), "PS1=$ "}})
	if err != nil {
		t.Fatalf("open shell: %v", err)
	}
	start := time.Now()
	write(t, ctx, c, info.ID, "echo READY$((2+2))\n")
	out, _ := readUntil(t, ctx, c, info.ID, "READY4")
	if strings.Contains(out, "STARTUP-NOISE") {
		t.Fatalf("the shell read a start-up file: %q", out)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the shell took %v to answer", d)
	}
}

func TestShellAttach(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	id := openShell(t, ctx, c)
	write(t, ctx, c, id, "echo BEFORE$((1+1))\n")
	readUntil(t, ctx, c, id, "BEFORE2")

	// First attach: replays kept output, takes input and a resize, detaches
	// when stdin ends.
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	resize := make(chan [2]int, 1)
	errc := make(chan error, 1)
	go func() { errc <- c.ShellAttach(ctx, id, inR, outW, resize); outW.Close() }()
	out := &outputWaiter{r: outR}
	out.waitFor(t, "BEFORE2")
	resize <- [2]int{90, 33}
	fmt.Fprintf(inW, "stty size; echo AT$((1+1))\n")
	out.waitFor(t, "33 90")
	out.waitFor(t, "AT2")
	inW.Close()
	if err := <-errc; err != nil {
		t.Fatalf("detach: %v", err)
	}
	go io.Copy(io.Discard, outR)
	list, err := c.ShellList(ctx)
	if err != nil || len(list) != 1 || list[0].State != "running" {
		t.Fatalf("after detach: %+v, %v", list, err)
	}

	// Second attach ends when the shell exits.
	inR2, inW2 := io.Pipe()
	defer inW2.Close()
	outR2, outW2 := io.Pipe()
	go func() { errc <- c.ShellAttach(ctx, id, inR2, outW2, nil); outW2.Close() }()
	fmt.Fprintf(inW2, "exit 7\n")
	io.Copy(io.Discard, outR2)
	if err := <-errc; err != nil {
		t.Fatalf("attach until exit: %v", err)
	}
	r, err := c.ShellRead(ctx, id, nil, 0)
	if err != nil || r.Shell.State != "exited" || *r.Shell.ExitCode != 7 {
		t.Fatalf("after exit: %+v, %v", r, err)
	}
}

// outputWaiter reads a stream and remembers what it has not matched yet.
type outputWaiter struct {
	r   io.Reader
	got []byte
}

// waitFor reads until the output contains want and drops what precedes
// the match.
func (o *outputWaiter) waitFor(t *testing.T, want string) {
	t.Helper()
	buf := make([]byte, 4096)
	for {
		if i := bytes.Index(o.got, []byte(want)); i >= 0 {
			o.got = o.got[i+len(want):]
			return
		}
		n, err := o.r.Read(buf)
		o.got = append(o.got, buf[:n]...)
		if err != nil {
			t.Fatalf("waiting for %q: %v (got %q)", want, err, o.got)
		}
	}
}
