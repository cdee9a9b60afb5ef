package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
)

// TestShellSessions: state across calls, cursors, INT, survival across CLI
// processes, limits and errors, close.
func TestShellSessions(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{})
	id := ws.Info.ID
	// Open through the CLI: the shell outlives that process.
	r := env.Hearth(nil, "workspace", "shell", "open", id, "--json")
	var s api.Shell
	if err := json.Unmarshal(r.Stdout, &s); err != nil || !strings.HasPrefix(s.ID, "sh-") {
		t.Fatalf("shell open: %s %s", r.Stdout, r.Stderr)
	}
	env.Hearth(nil, "workspace", "shell", "write", id, s.ID, "cd /tmp; export X=42\n")
	env.Hearth(nil, "workspace", "shell", "write", id, s.ID, "echo \"at:$PWD:$X\"\n")
	if !waitShell(t, ws, s.ID, "at:/tmp:42") {
		t.Fatal("shell state not kept across calls")
	}
	// Reads from a cursor return only new output.
	cur, err := ws.ShellRead(ctx, s.ID, hearth.ShellReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	next := cur.NextCursor
	ws.ShellWrite(ctx, s.ID, []byte("echo second-\"\"marker\n"))
	waitShell(t, ws, s.ID, "second-marker")
	r2, err := ws.ShellRead(ctx, s.ID, hearth.ShellReadOptions{Cursor: &next})
	if err != nil || !strings.Contains(r2.Output, "second-marker") || strings.Contains(r2.Output, "at:/tmp") {
		t.Fatalf("read from cursor %d: %q %v", next, r2.Output, err)
	}
	// --wait returns as soon as output arrives.
	start := time.Now()
	ws.ShellWrite(ctx, s.ID, []byte("sleep 1; echo wo\"\"ke\n"))
	if !waitShell(t, ws, s.ID, "woke") || time.Since(start) > 20*time.Second {
		t.Fatal("wait read")
	}
	// INT interrupts a foreground command; the shell lives on.
	ws.ShellWrite(ctx, s.ID, []byte("sleep 300; echo after-sleep\n"))
	// Signal once the sleep is the foreground job (seen from outside).
	for i := 0; i < 100; i++ {
		if r := sh(t, ws, "pgrep -x sleep"); r.ExitCode == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := env.Hearth(nil, "workspace", "shell", "signal", id, s.ID, "INT"); r.Code != 0 {
		t.Fatalf("signal: %s", r.Stderr)
	}
	ws.ShellWrite(ctx, s.ID, []byte("echo alive-$((40+2))\n"))
	if !waitShell(t, ws, s.ID, "alive-42") {
		t.Fatal("shell did not survive INT")
	}
	// Binary output is exact (base64 in JSON).
	ws.ShellWrite(ctx, s.ID, []byte("clear\n"))
	// Errors: unknown shell, cursor from the future, bad signal.
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"workspace", "shell", "read", id, "sh-nope"}, "sh-nope"},
		{[]string{"workspace", "shell", "read", id, s.ID, "--cursor", "99999999"}, "past the end"},
		{[]string{"workspace", "shell", "signal", id, s.ID, "BOGUS"}, "BOGUS"},
		{[]string{"workspace", "shell", "resize", id, s.ID, "--cols", "0", "--rows", "0"}, "cols"},
	}
	for _, b := range bad {
		if r := env.Hearth(nil, b.args...); r.Code == 0 || !strings.Contains(string(r.Stderr), b.want) {
			t.Errorf("%v: exit %d stderr %q", b.args, r.Code, r.Stderr)
		}
	}
	// Resize is seen by the shell.
	ws.ShellResize(ctx, s.ID, 100, 30)
	ws.ShellWrite(ctx, s.ID, []byte("stty size\n"))
	if !waitShell(t, ws, s.ID, "30 100") {
		t.Error("resize not seen by stty")
	}
	// Exit: state exited with its code; writing then fails.
	s2, _ := ws.ShellOpen(ctx, hearth.ShellOpenOptions{})
	ws.ShellWrite(ctx, s2.ID, []byte("exit 3\n"))
	deadline := time.Now().Add(20 * time.Second)
	var out *hearth.ShellOutput
	for time.Now().Before(deadline) {
		out, _ = ws.ShellRead(ctx, s2.ID, hearth.ShellReadOptions{Wait: time.Second})
		if out != nil && out.State == api.ShellExited {
			break
		}
	}
	if out == nil || out.State != api.ShellExited || out.ExitCode == nil || *out.ExitCode != 3 {
		t.Fatalf("exited shell: %+v", out)
	}
	if _, err := ws.ShellWrite(ctx, s2.ID, []byte("x")); !errors.Is(err, hearth.ErrFailedPrecondition) {
		t.Errorf("write to exited shell: %v", err)
	}
	// Close frees it.
	for _, sid := range []string{s.ID, s2.ID} {
		if _, err := ws.ShellClose(ctx, sid); err != nil {
			t.Fatal(err)
		}
	}
	if l, _ := ws.ShellList(ctx); len(l) != 0 {
		t.Errorf("closed shells still listed: %+v", l)
	}
	if _, err := ws.ShellRead(ctx, s.ID, hearth.ShellReadOptions{}); !errors.Is(err, hearth.ErrNotFound) {
		t.Errorf("read of a closed shell: %v", err)
	}
	// None of it reached the command log.
	logs, _ := ws.Logs(ctx, hearth.LogsOptions{})
	for _, l := range logs {
		if strings.Join(l.Argv, " ") != "sh -c pgrep -x sleep" {
			t.Errorf("shell traffic in the command log: %+v", l)
		}
	}
	// A read waiting for output (an agent's poll loop) does not hold the
	// workspace: a plain stop goes ahead at once, and the read ends with
	// the VM instead of making the stop wait and refuse.
	s3, err := ws.ShellOpen(ctx, hearth.ShellOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ws.ShellRead(ctx, s3.ID, hearth.ShellReadOptions{Wait: time.Second}) // past the prompt
	readDone := make(chan error, 1)
	readStarted := time.Now()
	go func() {
		_, err := ws.ShellRead(ctx, s3.ID, hearth.ShellReadOptions{Wait: 50 * time.Second})
		readDone <- err
	}()
	time.Sleep(time.Second) // let the read reach the guest (no signal says it has)
	stopStart := time.Now()
	if _, err := ws.Stop(ctx); err != nil {
		t.Fatalf("stop while a shell read waits: %v", err)
	}
	t.Logf("stop took %v with a 50 s shell read waiting", time.Since(stopStart).Round(time.Millisecond))
	select {
	case err := <-readDone:
		if err == nil && time.Since(readStarted) > 45*time.Second {
			t.Errorf("the read waited out its 50 s instead of ending with the VM")
		}
	case <-time.After(40 * time.Second):
		t.Errorf("the waiting read did not end when the VM stopped")
	}
}

// TestShellAttachTmux drives `hearth workspace shell attach` as a person
// would, in a real terminal (tmux): type, see output, detach, and the shell
// is still there.
func TestShellAttachTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is needed (scripts/setup-host.sh installs it)")
	}
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{})
	s, err := ws.ShellOpen(ctx, hearth.ShellOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A tmux server of our own (-L), with no configuration (-f /dev/null)
	// and /bin/sh as the shell that runs the command line, so neither the
	// user's running tmux nor their ~/.tmux.conf or shell start-up files
	// take part.
	sock := fmt.Sprintf("hearth-test-%d", os.Getpid())
	tmux := func(args ...string) *exec.Cmd {
		cmd := exec.Command("tmux", append([]string{"-L", sock, "-f", "/dev/null"}, args...)...)
		cmd.Env = append(os.Environ(), "SHELL=/bin/sh")
		return cmd
	}
	sess := "hearth-attach-test"
	envs := []string{}
	for _, kv := range env.Environ() {
		if strings.HasPrefix(kv, "HEARTH_") {
			envs = append(envs, kv)
		}
	}
	cmdline := "env " + strings.Join(envs, " ") + " " + env.Bin + " workspace shell attach " + ws.Info.ID + " " + s.ID + "; echo ATTACH-ENDED; sleep 30"
	if out, err := tmux("new-session", "-d", "-s", sess, "-x", "100", "-y", "30", cmdline).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	defer tmux("kill-server").Run()
	capture := func() string {
		out, _ := tmux("capture-pane", "-p", "-t", sess).Output()
		return string(out)
	}
	waitPane := func(want string) bool {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if strings.Contains(capture(), want) {
				return true
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("pane:\n%s", capture())
		return false
	}
	time.Sleep(time.Second)
	tmux("send-keys", "-t", sess, "echo typed-$((6*7))", "Enter").Run()
	if !waitPane("typed-42") {
		t.Fatal("typed command's output not on the terminal")
	}
	tmux("send-keys", "-t", sess, "stty size", "Enter").Run()
	if !waitPane("30 100") && !waitPane("29 100") {
		t.Error("terminal size not followed")
	}
	tmux("send-keys", "-t", sess, "C-]").Run()
	if !waitPane("ATTACH-ENDED") {
		t.Fatal("Ctrl-] did not detach")
	}
	// Still running after the detach, with its state.
	l, _ := ws.ShellList(ctx)
	if len(l) != 1 || l[0].State != api.ShellRunning {
		t.Fatalf("after detach: %+v", l)
	}
}

// TestDetachedCommands: exec --detach/--yield, wait, output, kill.
func TestDetachedCommands(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{})
	// Yield: a long command comes back running with its id and output so far.
	r, err := ws.Exec(ctx, hearth.ExecOptions{Shell: "echo begin; sleep 3; echo end", Yield: 500 * time.Millisecond, Capture: true})
	if err != nil || r.Status != api.StatusRunning || r.CommandID == "" {
		t.Fatalf("yield: %+v %v", r, err)
	}
	w, err := ws.CommandWait(ctx, r.CommandID, 30*time.Second)
	if err != nil || w.Status != api.StatusFinished || w.Stdout != "begin\nend\n" || w.ExitCode != 0 {
		t.Fatalf("wait: %+v %v", w, err)
	}
	out, err := ws.CommandRead(ctx, r.CommandID, "stdout", 6, 10)
	if err != nil || out.Data != "end\n" || out.NextOffset != 10 || out.Status != api.StatusFinished {
		t.Fatalf("read: %+v %v", out, err)
	}
	// A quick command with yield finishes within it.
	q, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"sh", "-c", "exit 4"}, Yield: 20 * time.Second})
	if err != nil || q.Status != api.StatusFinished || q.ExitCode != 4 {
		t.Fatalf("quick yield: %+v %v", q, err)
	}
	// Detach through the CLI (its process exits), then kill.
	cr := env.Hearth(nil, "workspace", "exec", ws.Info.ID, "--detach", "--json", "--", "sleep", "300")
	var d api.ExecResult
	if err := json.Unmarshal(cr.Stdout, &d); err != nil || d.Status != api.StatusRunning {
		t.Fatalf("detach: %s %s", cr.Stdout, cr.Stderr)
	}
	if w, _ := ws.CommandWait(ctx, d.CommandID, 300*time.Millisecond); w.Status != api.StatusRunning {
		t.Fatalf("detached command not running: %+v", w)
	}
	k := env.Hearth(nil, "workspace", "kill", ws.Info.ID, d.CommandID, "--json")
	var kr api.ExecResult
	json.Unmarshal(k.Stdout, &kr)
	if kr.Status != api.StatusFinished || kr.Reason != "killed" && kr.Reason != "signaled" {
		t.Fatalf("kill: %s %s", k.Stdout, k.Stderr)
	}
	logs, _ := ws.Logs(ctx, hearth.LogsOptions{})
	if len(logs) != 3 || !logs[2].Detached || logs[2].Status != api.CommandFinished {
		t.Fatalf("log of detached commands: %+v", logs)
	}
	// Errors: unknown id, bad offset.
	if _, err := ws.CommandWait(ctx, "cmd-999999", time.Second); !errors.Is(err, hearth.ErrNotFound) {
		t.Errorf("unknown command: %v", err)
	}
	if _, err := ws.CommandRead(ctx, r.CommandID, "stdout", 1<<30, 10); !errors.Is(err, hearth.ErrInvalidArgument) {
		t.Errorf("offset past the end: %v", err)
	}
}
