// Package bench measures hearth against baselines measured in the same run
// and prints ratios: `make bench`. Targets are in the issue texts and the
// closing notes; these are benchmarks, never timed pass/fail tests.
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/hearthvm/hearth/internal/image"
	"github.com/hearthvm/hearth/internal/initrd"
	"github.com/hearthvm/hearth/internal/testenv"
	"github.com/hearthvm/hearth/internal/vmm"
	"github.com/hearthvm/hearth/internal/vmm/qemu"
)

const samples = 5

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func setup(b *testing.B) *testenv.Env {
	e, err := testenv.Get()
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// client is a Go SDK client on the test environment's state directory.
func client(b *testing.B, e *testenv.Env) *hearth.Client {
	c, err := hearth.New(hearth.WithHome(e.Home), hearth.WithExecutable(e.Bin))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// bareBoot starts QEMU directly with the image's kernel and rootfs and our
// agent initrd (no supervisor, no CLI) and times it to the agent's first
// answer. This is the floor every hearth path is compared with.
func bareBoot(b *testing.B, e *testenv.Env, dataDisk string) time.Duration {
	img, err := (&image.Store{Root: e.Home}).Get(image.DefaultImage)
	if err != nil {
		b.Fatal(err)
	}
	rd, err := initrd.Ensure(home.Cache(e.Home), e.Agent)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	args := []string{"hearth.root=/dev/vda"}
	if dataDisk != "" {
		args = append(args, "hearth.data=/dev/vdb")
	}
	spec := vmm.Spec{ID: "bare", Dir: dir, Kernel: img.Kernel, Initrd: rd, RootFS: img.RootFS, DataDisk: dataDisk,
		CPUs: 2, MemoryMiB: 512, KernelArgs: args, ConsoleLog: filepath.Join(dir, "console.log")}
	be := qemu.New(qemu.Options{CacheDir: home.Cache(e.Home), KillWithParent: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	m, err := be.Start(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Kill()
	c := &guest.Client{Socket: m.AgentSocket()}
	if _, err := c.WaitReady(ctx, m.Done()); err != nil {
		b.Fatal(err, vmm.ConsoleTail(spec.ConsoleLog, 10))
	}
	return time.Since(start)
}

func hearthCmd(e *testenv.Env, args ...string) *exec.Cmd {
	cmd := exec.Command(e.Bin, args...)
	cmd.Env = e.Environ()
	return cmd
}

// BenchmarkRun prints (a) a bare QEMU boot to the agent's first answer,
// (b) `hearth run -- true` end to end, the ratio b/a (target ≤ 1.2), and
// the round trip of a trivial command on a running VM.
func BenchmarkRun(b *testing.B) {
	e := setup(b)
	var bare, run, rtt []time.Duration
	for range samples {
		bare = append(bare, bareBoot(b, e, ""))
		start := time.Now()
		if out, err := hearthCmd(e, "run", "--", "true").CombinedOutput(); err != nil {
			b.Fatalf("run: %v %s", err, out)
		}
		run = append(run, time.Since(start))
	}
	// Round trip on a running VM, through the agent directly.
	img, _ := (&image.Store{Root: e.Home}).Get(image.DefaultImage)
	rd, _ := initrd.Ensure(home.Cache(e.Home), e.Agent)
	dir := b.TempDir()
	spec := vmm.Spec{ID: "rtt", Dir: dir, Kernel: img.Kernel, Initrd: rd, RootFS: img.RootFS, CPUs: 2, MemoryMiB: 512,
		KernelArgs: []string{"hearth.root=/dev/vda"}, ConsoleLog: filepath.Join(dir, "console.log")}
	m, err := qemu.New(qemu.Options{CacheDir: home.Cache(e.Home), KillWithParent: true}).Start(context.Background(), spec)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Kill()
	c := &guest.Client{Socket: m.AgentSocket()}
	ctx := context.Background()
	if _, err := c.WaitReady(ctx, m.Done()); err != nil {
		b.Fatal(err)
	}
	for range 20 {
		start := time.Now()
		if _, err := c.Exec(ctx, &guestproto.ExecRequest{Argv: []string{"true"}}, guest.ExecIO{}); err != nil {
			b.Fatal(err)
		}
		rtt = append(rtt, time.Since(start))
	}
	a, r := median(bare), median(run)
	fmt.Printf("\nhearth run (medians of %d):\n  bare QEMU boot to agent answer  %v\n  hearth run -- true              %v\n  ratio run/bare                  %.2f (target ≤ 1.2)\n  exec round trip of true         %v (median of 20)\n",
		samples, a.Round(time.Millisecond), r.Round(time.Millisecond), float64(r)/float64(a), median(rtt).Round(time.Microsecond))
	b.ReportMetric(float64(r)/float64(a), "run/bare")
	b.ReportMetric(float64(median(rtt).Microseconds()), "exec-rtt-us")
}

// memKiB returns a process's resident set size, proportional set size
// (shared pages split among their users) and private dirty memory (what
// one more workspace adds: the hearth binary's text pages are shared by
// every supervisor), from /proc/PID/smaps_rollup.
func memKiB(pid int) (rss, pss, private int) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, 0, 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		case "Private_Dirty:":
			private += v
		}
	}
	return rss, pss, private
}

// BenchmarkWorkspace prints create-to-ready against a bare boot with a data
// disk (target ratio ≤ 1.2), the exec round trip through the SDK, the host
// memory a running workspace holds beyond its VMM (target ≤ 10 MiB), and
// create time with a 4× larger base image (target: unchanged).
func BenchmarkWorkspace(b *testing.B) {
	e := setup(b)
	c := client(b, e)
	ctx := context.Background()
	create := func(imageName string) (time.Duration, *hearth.Workspace) {
		start := time.Now()
		ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{Image: imageName, MemoryMiB: 512})
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(start), ws
	}
	var bare, cr []time.Duration
	var last *hearth.Workspace
	for range samples {
		disk := filepath.Join(b.TempDir(), "disk.ext4")
		f, _ := os.Create(disk)
		f.Truncate(8 << 30)
		f.Close()
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", disk).CombinedOutput(); err != nil {
			b.Fatal(err, string(out))
		}
		bare = append(bare, bareBoot(b, e, disk))
		d, ws := create("")
		cr = append(cr, d)
		if last != nil {
			last.Delete(ctx, true)
		}
		last = ws
	}
	var rtt []time.Duration
	for range 20 {
		start := time.Now()
		if _, err := last.Exec(ctx, hearth.ExecOptions{Argv: []string{"true"}}); err != nil {
			b.Fatal(err)
		}
		rtt = append(rtt, time.Since(start))
	}
	info, _ := last.Show(ctx)
	time.Sleep(12 * time.Second) // idle: the supervisor returns freed memory every 10 s
	rss, pss, priv := memKiB(info.SupervisorPID)
	last.Delete(ctx, true)

	// A base image 4× larger: the same rootfs with 3× its size of filler.
	img, _ := (&image.Store{Root: e.Home}).Get(image.DefaultImage)
	bigDir := b.TempDir()
	big := filepath.Join(bigDir, "rootfs.ext4")
	st, _ := os.Stat(img.RootFS)
	if out, err := exec.Command("cp", "--sparse=always", img.RootFS, big).CombinedOutput(); err != nil {
		b.Fatal(err, string(out))
	}
	filler := filepath.Join(bigDir, "filler")
	exec.Command("dd", "if=/dev/urandom", "of="+filler, "bs=1M", fmt.Sprintf("count=%d", 3*st.Size()>>20)).Run()
	exec.Command("truncate", "-s", fmt.Sprint(5*st.Size()), big).Run()
	if out, err := exec.Command("resize2fs", big).CombinedOutput(); err != nil {
		b.Fatal(err, string(out))
	}
	if out, err := exec.Command("debugfs", "-w", "-R", "write "+filler+" /filler", big).CombinedOutput(); err != nil {
		b.Fatal(err, string(out))
	}
	os.Remove(filler)
	if out, err := hearthCmd(e, "image", "import", "bench-4x", "--kernel", img.Kernel, "--rootfs", big).CombinedOutput(); err != nil {
		b.Fatal(err, string(out))
	}
	defer hearthCmd(e, "image", "rm", "bench-4x").Run()
	var crBig []time.Duration
	for range samples {
		d, ws := create("bench-4x")
		crBig = append(crBig, d)
		ws.Delete(ctx, true)
	}
	bst, _ := os.Stat(big)
	a, w, wb := median(bare), median(cr), median(crBig)
	fmt.Printf("\nworkspaces (medians of %d):\n  bare QEMU boot (with data disk)   %v\n  workspace create to ready         %v\n  ratio create/bare                 %.2f (target ≤ 1.2)\n  exec round trip of true (SDK)     %v (median of 20)\n  supervisor per workspace          RSS %d KiB, PSS %d KiB, private dirty %d KiB (target ≤ 10240)\n  create with %d MiB base image    %v\n  create with %d MiB base image    %v\n  ratio 4x-image/normal             %.2f (target ≈ 1.0)\n",
		samples, a.Round(time.Millisecond), w.Round(time.Millisecond), float64(w)/float64(a), median(rtt).Round(time.Microsecond), rss, pss, priv,
		st.Size()>>20, w.Round(time.Millisecond), bst.Size()>>20, wb.Round(time.Millisecond), float64(wb)/float64(w))
	b.ReportMetric(float64(w)/float64(a), "create/bare")
	b.ReportMetric(float64(rss), "supervisor-rss-KiB")
	b.ReportMetric(float64(priv), "supervisor-private-KiB")
}
