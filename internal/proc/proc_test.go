package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func statLine(comm, state string, start string) string {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice threads
	// itrealvalue starttime vsize ...
	return "4242 (" + comm + ") " + state + " 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 " + start + " 1000 50 18446744073709551615\n"
}

func TestParseStat(t *testing.T) {
	cases := []struct {
		name, in string
		want     Stat
		bad      bool
	}{
		{"plain", statLine("sleep", "S", "123456"), Stat{'S', 123456}, false},
		{"spaces in comm", statLine("my prog", "R", "7"), Stat{'R', 7}, false},
		{"parens in comm", statLine("a) b (c", "Z", "99"), Stat{'Z', 99}, false},
		{"comm looks like fields", statLine(") S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 (", "D", "31337"), Stat{'D', 31337}, false},
		{"empty comm", statLine("", "S", "5"), Stat{'S', 5}, false},
		{"truncated", "4242 (sleep) S 1 2 3", Stat{}, true},
		{"no comm", "4242 sleep S", Stat{}, true},
		{"bad start", statLine("x", "S", "notanumber"), Stat{}, true},
		{"empty", "", Stat{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseStat([]byte(c.in))
			if c.bad {
				if err == nil {
					t.Fatalf("ParseStat(%q) = %+v, want an error", c.in, got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ParseStat(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			}
		})
	}
}

func TestParseStatOfThisProcess(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.StartTicks == 0 || (st.State != 'R' && st.State != 'S') {
		t.Fatalf("own stat: %+v", st)
	}
}

// fakeBoot points the boot id at a file the test controls.
func fakeBoot(t *testing.T, id string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := bootIDFile
	bootIDFile = p
	bootID.once, bootID.id, bootID.err = sync.Once{}, "", nil
	t.Cleanup(func() {
		bootIDFile = old
		bootID.once, bootID.id, bootID.err = sync.Once{}, "", nil
	})
}

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestIdentityStates(t *testing.T) {
	fakeBoot(t, "boot-one")
	cmd := startSleep(t)
	id, err := Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if id.BootID != "boot-one" || id.StartTicks == 0 {
		t.Fatalf("identity %+v", id)
	}
	reused := id
	reused.StartTicks++
	rebooted := id
	rebooted.BootID = "boot-zero"
	cases := []struct {
		name string
		id   Identity
		want State
	}{
		{"alive", id, Alive},
		{"pid reused", reused, Reused},
		{"host rebooted", rebooted, Rebooted},
		{"pid only (old record)", Identity{PID: id.PID}, Unknown},
		{"zero", Identity{}, Unknown},
	}
	for _, c := range cases {
		if got := c.id.Check(); got != c.want {
			t.Errorf("%s: Check() = %s, want %s", c.name, got, c.want)
		}
	}
	// Exited: a zombie first, then nothing.
	cmd.Process.Signal(syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for id.Check() == Alive && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := id.Check(); got != Exited {
		t.Fatalf("killed, unreaped child: Check() = %s, want exited", got)
	}
	cmd.Wait()
	if got := id.Check(); got != Exited {
		t.Fatalf("reaped child: Check() = %s, want exited", got)
	}
}

// TestKillOnlyOurs: a recorded identity whose pid now belongs to another
// process (different start time), or that predates a host reboot, is never
// signalled; the recorded process itself is.
func TestKillOnlyOurs(t *testing.T) {
	fakeBoot(t, "boot-one")
	victim := startSleep(t)
	id, err := Of(victim.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Identity{
		{PID: id.PID, StartTicks: id.StartTicks + 1, BootID: id.BootID},
		{PID: id.PID, StartTicks: id.StartTicks, BootID: "another-boot"},
		{PID: id.PID},
	} {
		sent, err := Kill(bad, syscall.SIGKILL)
		if sent || err != nil {
			t.Fatalf("Kill(%+v) = %v, %v; want nothing sent", bad, sent, err)
		}
		if _, err := Open(bad); err == nil {
			t.Fatalf("Open(%+v) succeeded", bad)
		} else {
			var no *NotOursError
			if !errors.As(err, &no) {
				t.Fatalf("Open(%+v): %v, want a NotOursError", bad, err)
			}
		}
	}
	if s := id.Check(); s != Alive {
		t.Fatalf("the unrelated process was hit: %s", s)
	}
	sent, err := Kill(id, syscall.SIGKILL)
	if !sent || err != nil {
		t.Fatalf("Kill(own) = %v, %v", sent, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitExit(ctx, id); err != nil {
		t.Fatalf("WaitExit: %v", err)
	}
	if err := victim.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("victim: %v, want killed", err)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	cmd := startSleep(t)
	id, err := Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := h.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Wait took %s after its deadline", d)
	}
	// A process that is gone: WaitExit returns at once.
	cmd.Process.Kill()
	cmd.Wait()
	if err := WaitExit(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

func TestStartedAt(t *testing.T) {
	before := time.Now().Add(-2 * time.Second)
	cmd := startSleep(t)
	at, err := StartedAt(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// btime has one-second precision and ticks 10 ms.
	if at.Before(before) || at.After(time.Now().Add(2*time.Second)) {
		t.Fatalf("StartedAt = %s, want about %s", at, time.Now())
	}
}
