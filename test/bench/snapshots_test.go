package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
)

const snapSamples = 3

// BenchmarkSnapshots: a disk snapshot of an 8 GiB workspace disk with 100
// MiB and with 400 MiB written (time should follow the data, not the disk
// size), each against `cp --sparse=always` of the same disk file; and a
// reset to a snapshot against a workspace start.
func BenchmarkSnapshots(b *testing.B) {
	e := setup(b)
	c := client(b, e)
	ctx := context.Background()
	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{MemoryMiB: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Delete(ctx, true)
	disk := filepath.Join(e.Home, "workspaces", ws.Info.ID, "disk.ext4")
	write := func(mib int, name string) {
		r, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"sh", "-c",
			fmt.Sprintf("head -c %dM /dev/urandom > /workspace/%s && sync", mib, name)}, Capture: true})
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("write %d MiB: %v %+v", mib, err, r)
		}
	}
	measure := func(label string) (snap, cp time.Duration, size int64) {
		var ss, cs []time.Duration
		for i := range snapSamples {
			name := fmt.Sprintf("%s-%d", label, i)
			start := time.Now()
			s, err := ws.SnapshotCreate(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			ss = append(ss, time.Since(start))
			size = s.SizeBytes
			if i < snapSamples-1 {
				ws.SnapshotRemove(ctx, name)
			}
			dst := filepath.Join(b.TempDir(), "cp.ext4")
			start = time.Now()
			if out, err := exec.Command("cp", "--sparse=always", disk, dst).CombinedOutput(); err != nil {
				b.Fatalf("cp: %v %s", err, out)
			}
			exec.Command("sync", "-f", dst).Run() // our copy is synced too
			cs = append(cs, time.Since(start))
			os.Remove(dst)
		}
		return median(ss), median(cs), size
	}
	write(100, "a")
	s100, c100, z100 := measure("s100")
	write(300, "b")
	s400, c400, z400 := measure("s400")

	// Reset to a snapshot (copy, stop, swap, boot) against a start.
	var starts, resets []time.Duration
	for range snapSamples {
		if _, err := ws.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := ws.Start(ctx); err != nil {
			b.Fatal(err)
		}
		starts = append(starts, time.Since(start))
		start = time.Now()
		if _, err := ws.Reset(ctx, hearth.ResetOptions{To: fmt.Sprintf("s400-%d", snapSamples-1), Force: true}); err != nil {
			b.Fatal(err)
		}
		resets = append(resets, time.Since(start))
	}
	st, rs := median(starts), median(resets)
	fmt.Printf("\nsnapshots (8 GiB disk, medians of %d):\n"+
		"  snapshot with 100 MiB written     %v (%.0f MiB on the host)\n"+
		"  cp --sparse=always of that disk   %v\n"+
		"  ratio snapshot/cp                 %.2f (target ≤ 1.5)\n"+
		"  snapshot with 400 MiB written     %v (%.0f MiB on the host)\n"+
		"  cp --sparse=always of that disk   %v\n"+
		"  ratio snapshot/cp                 %.2f (target ≤ 1.5)\n"+
		"  ratio snapshot 400/100            %.2f (data grew 4x; ≈ 4 expected, not the disk size)\n"+
		"  workspace start                   %v\n"+
		"  reset to a snapshot (running)     %v\n"+
		"  ratio reset/start                 %.2f (target ≤ 1.3)\n",
		snapSamples, s100, float64(z100)/(1<<20), c100, float64(s100)/float64(c100),
		s400, float64(z400)/(1<<20), c400, float64(s400)/float64(c400), float64(s400)/float64(s100),
		st, rs, float64(rs)/float64(st))
	b.ReportMetric(float64(s100)/float64(c100), "snap100/cp")
	b.ReportMetric(float64(s400)/float64(c400), "snap400/cp")
	b.ReportMetric(float64(s400)/float64(s100), "snap400/snap100")
	b.ReportMetric(float64(rs)/float64(st), "reset/start")
}
