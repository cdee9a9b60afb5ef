package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
)

// makeTree writes n files totalling about size bytes under dir, spread over
// directories of 100 files.
func makeTree(b *testing.B, dir string, n int, size int64) {
	per := size / int64(n)
	buf := make([]byte, per)
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("d%03d", i/100))
		os.MkdirAll(d, 0o755)
		rand.Read(buf[:64]) // distinct content per file, cheap
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.txt", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func guestMS(b *testing.B, ws *hearth.Workspace, script string) time.Duration {
	r, err := ws.Exec(context.Background(), hearth.ExecOptions{Shell: "s=$(date +%s%N); " + script + " >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e-s)/1000000 ))", Capture: true})
	if err != nil || r.ExitCode != 0 {
		b.Fatalf("%s: %v %+v", script, err, r)
	}
	ms, _ := strconv.Atoi(strings.TrimSpace(r.Stdout))
	return time.Duration(ms) * time.Millisecond
}

// BenchmarkFiles prints, on a workspace of 20,000 files / 200 MB with 10
// files changed: our diff against `git add -A && git diff --cached --stat`
// in the guest on the same tree committed as the baseline (target ≤ 1.0);
// a second sync push of an unchanged tree against the first (target ≤ 0.1);
// export of 200 MB against the raw host–guest channel (target ≥ 0.7).
func BenchmarkFiles(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	c := client(b, e)
	seed := b.TempDir()
	makeTree(b, seed, 20000, 200<<20)
	start := time.Now()
	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{Seed: seed, MemoryMiB: 1024, DiskSize: 4 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Delete(ctx, true)
	createSeeded := time.Since(start)
	// git's baseline: the same tree, committed, with its git dir outside
	// /workspace so our diff does not see it.
	guestMS(b, ws, "git config --global user.email b@b && git config --global user.name b && git --git-dir=/root/base.git --work-tree=/workspace init -q && git --git-dir=/root/base.git --work-tree=/workspace add -A && git --git-dir=/root/base.git --work-tree=/workspace commit -qm base")
	// Change 10 files.
	guestMS(b, ws, "for i in 0 1 2 3 4 5 6 7 8 9; do echo changed >> /workspace/d00$i/f00${i}00.txt; done")
	var ours, gits []time.Duration
	for range 3 {
		t := time.Now()
		d, err := ws.Diff(ctx, hearth.DiffOptions{})
		if err != nil || d.Summary.Files != 10 {
			b.Fatalf("diff: %v %+v", err, d)
		}
		ours = append(ours, time.Since(t))
		t = time.Now()
		guestMS(b, ws, "cd /workspace && git --git-dir=/root/base.git --work-tree=/workspace add -A && git --git-dir=/root/base.git --work-tree=/workspace diff --cached --stat")
		gits = append(gits, time.Since(t))
		guestMS(b, ws, "git --git-dir=/root/base.git --work-tree=/workspace reset -q")
	}
	// Sync push: first push of a 20,000-file tree, then again unchanged.
	push := b.TempDir()
	makeTree(b, push, 20000, 20<<20)
	t := time.Now()
	if _, err := ws.SyncPush(ctx, push, hearth.SyncOptions{Dest: "/workspace/pushed"}); err != nil {
		b.Fatal(err)
	}
	first := time.Since(t)
	t = time.Now()
	s2, err := ws.SyncPush(ctx, push, hearth.SyncOptions{Dest: "/workspace/pushed"})
	if err != nil || s2.Sent != 0 {
		b.Fatalf("second push: %+v %v", s2, err)
	}
	second := time.Since(t)
	// Export 200 MB against the raw channel (200 MB of stdout to a
	// discarding writer).
	sh(b, ws, "head -c 200000000 /dev/urandom > /workspace/big.bin")
	t = time.Now()
	if _, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"cat", "/workspace/big.bin"}, Stdout: io.Discard}); err != nil {
		b.Fatal(err)
	}
	raw := time.Since(t)
	out := filepath.Join(b.TempDir(), "exp")
	t = time.Now()
	if _, err := ws.Export(ctx, "/workspace/big.bin", out, hearth.ExportOptions{}); err != nil {
		b.Fatal(err)
	}
	exp := time.Since(t)
	o, g := median(ours), median(gits)
	rawMBs, expMBs := 200/raw.Seconds(), 200/exp.Seconds()
	fmt.Printf("\nfiles (20,000 files / 200 MB; create with seed took %v):\n  our diff (10 changed)             %v\n  git add -A && diff --cached       %v (in the guest, via exec)\n  ratio diff/git                    %.2f (target ≤ 1.0)\n  sync push, first (20,000 files)   %v\n  sync push, unchanged              %v\n  ratio second/first                %.3f (target ≤ 0.1)\n  raw channel (200 MB cat)          %v = %.0f MB/s\n  export of 200 MB                  %v = %.0f MB/s\n  ratio export/raw throughput       %.2f (target ≥ 0.7)\n",
		createSeeded.Round(time.Millisecond), o.Round(time.Millisecond), g.Round(time.Millisecond), float64(o)/float64(g),
		first.Round(time.Millisecond), second.Round(time.Millisecond), float64(second)/float64(first),
		raw.Round(time.Millisecond), rawMBs, exp.Round(time.Millisecond), expMBs, expMBs/rawMBs)
	b.ReportMetric(float64(o)/float64(g), "diff/git")
	b.ReportMetric(float64(second)/float64(first), "push2/push1")
	b.ReportMetric(expMBs/rawMBs, "export/raw")
}

func sh(b *testing.B, ws *hearth.Workspace, script string) {
	r, err := ws.Exec(context.Background(), hearth.ExecOptions{Shell: script, Capture: true})
	if err != nil || r.ExitCode != 0 {
		b.Fatalf("%s: %v %+v", script, err, r)
	}
}

// BenchmarkShell prints the latency from a shell write of `echo x` to the
// read that returns it, against an exec round trip of `echo x` (target
// ratio ≤ 1.0).
func BenchmarkShell(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	c := client(b, e)
	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{MemoryMiB: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Delete(ctx, true)
	s, err := ws.ShellOpen(ctx, hearth.ShellOpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	// Let the shell settle at its prompt.
	ws.ShellWrite(ctx, s.ID, []byte("PS1='$ '\n"))
	time.Sleep(2 * time.Second)
	ws.ShellRead(ctx, s.ID, hearth.ShellReadOptions{})
	var shell, execs []time.Duration
	for i := range 20 {
		marker := fmt.Sprintf("m%d", i)
		t := time.Now()
		ws.ShellWrite(ctx, s.ID, []byte("echo "+marker+"\"\"x\n")) // the echo of the input cannot match
		var got strings.Builder
		for !strings.Contains(got.String(), marker+"x\r\n") {
			r, err := ws.ShellRead(ctx, s.ID, hearth.ShellReadOptions{Wait: 10 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			got.WriteString(r.Output)
		}
		shell = append(shell, time.Since(t))
		t = time.Now()
		if _, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"echo", "x"}}); err != nil {
			b.Fatal(err)
		}
		execs = append(execs, time.Since(t))
	}
	sm, em := median(shell), median(execs)
	fmt.Printf("\nshell (medians of 20):\n  shell write echo x -> read        %v\n  exec round trip of echo x         %v\n  ratio shell/exec                  %.2f (target ≤ 1.0)\n",
		sm.Round(time.Microsecond), em.Round(time.Microsecond), float64(sm)/float64(em))
	b.ReportMetric(float64(sm)/float64(em), "shell/exec")
}
