package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
)

// benchForks is how many forks start at once from one memory snapshot
// (the eight).
const benchForks = 8

// BenchmarkMemorySnapshots: the first exec answered after a start that
// resumes a suspended workspace, and after a reset of a stopped workspace
// to a memory snapshot, against the first exec after a cold boot (target
// ≤ 0.35×, goal 0.2×); and concurrent forks from one memory snapshot,
// until all answer, against one fork.
func BenchmarkMemorySnapshots(b *testing.B) {
	e := setup(b)
	c := client(b, e)
	ctx := context.Background()
	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{MemoryMiB: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Delete(ctx, true)
	firstExec := func() {
		r, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"true"}, Capture: true})
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("first exec: %v %+v", err, r)
		}
	}
	// Something resident, as a real workspace has.
	sh(b, ws, "head -c 64M /dev/urandom > /dev/shm/resident")
	var colds, resumes, resets []time.Duration
	var snapTime time.Duration
	for i := range snapSamples {
		if _, err := ws.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := ws.Start(ctx); err != nil {
			b.Fatal(err)
		}
		firstExec()
		colds = append(colds, time.Since(start))
		sh(b, ws, "head -c 64M /dev/urandom > /dev/shm/resident")

		if _, err := ws.Suspend(ctx); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if _, err := ws.Start(ctx); err != nil {
			b.Fatal(err)
		}
		firstExec()
		resumes = append(resumes, time.Since(start))

		name := fmt.Sprintf("m%d", i)
		start = time.Now()
		if _, err := ws.SnapshotCreateMemory(ctx, name); err != nil {
			b.Fatal(err)
		}
		snapTime = time.Since(start)
		if _, err := ws.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if _, err := ws.Reset(ctx, hearth.ResetOptions{To: name, Force: true}); err != nil {
			b.Fatal(err)
		}
		firstExec()
		resets = append(resets, time.Since(start))
	}
	last := fmt.Sprintf("m%d", snapSamples-1)
	fork := func(names ...string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := ws.Fork(ctx, hearth.ForkOptions{Name: n, From: last})
				if err != nil {
					b.Error(err)
					return
				}
				defer l[0].Delete(context.Background(), true)
				if r, err := l[0].Exec(ctx, hearth.ExecOptions{Argv: []string{"true"}}); err != nil || r.ExitCode != 0 {
					b.Errorf("fork %s: %v", n, err)
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	one := fork("bench-fork-one")
	var names []string
	for i := range benchForks {
		names = append(names, fmt.Sprintf("bench-fork-%d", i))
	}
	many := fork(names...)
	cold, resume, reset := median(colds), median(resumes), median(resets)
	fmt.Printf("\nmemory snapshots (512 MiB guest, 64 MiB resident, medians of %d):\n"+
		"  memory snapshot of the running guest   %v\n"+
		"  cold start + first exec                %v\n"+
		"  resume (suspend, start) + first exec   %v\n"+
		"  ratio resume/cold                      %.2f (target ≤ 0.35, goal 0.2)\n"+
		"  reset to memory snapshot + first exec  %v\n"+
		"  ratio reset/cold                       %.2f (target ≤ 0.35, goal 0.2)\n"+
		"  one fork from a memory snapshot        %v\n"+
		"  %d forks at once, until all answer      %v\n"+
		"  ratio %d forks/one                      %.2f\n",
		snapSamples, snapTime, cold, resume, float64(resume)/float64(cold), reset, float64(reset)/float64(cold),
		one, benchForks, many, benchForks, float64(many)/float64(one))
	b.ReportMetric(float64(resume)/float64(cold), "resume/cold")
	b.ReportMetric(float64(reset)/float64(cold), "memreset/cold")
	b.ReportMetric(float64(many)/float64(one), "forks/one")
}
