package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
)

// BenchmarkOfflineFiles prints: files cat of a 100 MB file from a stopped
// workspace (read from its disks, nothing boots) against workspace start
// plus export of the same file (target ratio ≤ 0.5); and files ls of a
// directory of 10,000 entries, stopped and running, against `ls -la` of
// the same tree on the host.
func BenchmarkOfflineFiles(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	c := client(b, e)
	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{MemoryMiB: 512, DiskSize: 2 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Delete(ctx, true)
	sh(b, ws, "head -c 100000000 /dev/urandom > /workspace/big.bin && mkdir /workspace/many && cd /workspace/many && seq 1 10000 | xargs touch && sync")
	var runningLS []time.Duration
	for range 3 {
		t := time.Now()
		l, err := ws.FilesList(ctx, "/workspace/many")
		if err != nil || len(l.Entries) != 10000 {
			b.Fatalf("running files ls: %v", err)
		}
		runningLS = append(runningLS, time.Since(t))
	}
	if _, err := ws.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	var cats, lss, boots []time.Duration
	for range 3 {
		t := time.Now()
		n, err := ws.FilesCat(ctx, "/workspace/big.bin", 0, 0, io.Discard)
		if err != nil || n != 100000000 {
			b.Fatalf("files cat: %d %v", n, err)
		}
		cats = append(cats, time.Since(t))
		t = time.Now()
		l, err := ws.FilesList(ctx, "/workspace/many")
		if err != nil || len(l.Entries) != 10000 {
			b.Fatalf("files ls: %v", err)
		}
		lss = append(lss, time.Since(t))
	}
	for i := range 2 {
		t := time.Now()
		if _, err := ws.Start(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := ws.Export(ctx, "/workspace/big.bin", filepath.Join(b.TempDir(), fmt.Sprint("exp", i)), hearth.ExportOptions{}); err != nil {
			b.Fatal(err)
		}
		boots = append(boots, time.Since(t))
		if _, err := ws.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
	host := b.TempDir()
	for i := 1; i <= 10000; i++ {
		os.WriteFile(filepath.Join(host, fmt.Sprint(i)), nil, 0o644)
	}
	var hostLS []time.Duration
	for range 3 {
		t := time.Now()
		cmd := exec.Command("ls", "-la", host)
		cmd.Stdout = io.Discard
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		hostLS = append(hostLS, time.Since(t))
	}
	cat, boot, ls, hls, rls := median(cats), median(boots), median(lss), median(hostLS), median(runningLS)
	fmt.Printf("\noffline files:\n  files cat 100 MB, stopped         %v\n  start + export of the same file   %v\n  ratio cat/(start+export)          %.2f (target ≤ 0.5)\n  files ls 10,000 entries, stopped  %v\n  files ls 10,000 entries, running  %v\n  ls -la of the same on the host    %v\n  ratio stopped ls/host ls          %.1f\n",
		cat.Round(time.Millisecond), boot.Round(time.Millisecond), float64(cat)/float64(boot),
		ls.Round(time.Millisecond), rls.Round(time.Millisecond), hls.Round(time.Millisecond), float64(ls)/float64(hls))
	b.ReportMetric(float64(cat)/float64(boot), "cat/start+export")
	b.ReportMetric(float64(ls)/float64(hls), "ls/hostls")
}
