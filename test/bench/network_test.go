package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
)

// BenchmarkNetwork prints, through the guest network stack: curl of 200 MB
// from a host loopback HTTP server against the raw agent channel (200 MB
// of cat to a discarding writer; target ≥ 0.5), TCP connect latency
// against an exec round trip, and the supervisor's memory with networking
// on (idle, and at peak under 100 flows) against a workspace without (target
// ≤ 8 MiB extra idle). Every guest connection goes to this machine's loopback.
func BenchmarkNetwork(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	c := client(b, e)

	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		w.Header().Set("Content-Length", strconv.Itoa(n<<20))
		for range n {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	off, err := c.CreateWorkspace(ctx, hearth.CreateOptions{MemoryMiB: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer off.Delete(ctx, true)
	on, err := c.CreateWorkspace(ctx, hearth.CreateOptions{MemoryMiB: 512, Network: &hearth.NetworkPolicy{Mode: "egress", AllowHost: []int{port}}})
	if err != nil {
		b.Fatal(err)
	}
	defer on.Delete(ctx, true)

	// Idle memory: both supervisors after their idle trim.
	time.Sleep(12 * time.Second)
	offInfo, _ := off.Show(ctx)
	onInfo, _ := on.Show(ctx)
	_, _, offPriv := memKiB(offInfo.SupervisorPID)
	onRSS, _, onPriv := memKiB(onInfo.SupervisorPID)

	// Raw channel: 200 MB of cat to a discarding writer.
	sh(b, on, "head -c 200000000 /dev/urandom > /root/big.bin")
	t := time.Now()
	if _, err := on.Exec(ctx, hearth.ExecOptions{Argv: []string{"cat", "/root/big.bin"}, Stdout: io.Discard}); err != nil {
		b.Fatal(err)
	}
	raw := time.Since(t)
	sh(b, on, "rm /root/big.bin")
	// The same through the stack: curl of 200 MB (191 MiB) to /dev/null.
	url := fmt.Sprintf("http://host.hearth.internal:%d/?mb=", port)
	t = time.Now()
	r, err := on.Exec(ctx, hearth.ExecOptions{Argv: []string{"curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url + "191"}, Capture: true})
	if err != nil || r.ExitCode != 0 || r.Stdout != strconv.Itoa(191<<20) {
		b.Fatalf("curl: %v %+v", err, r)
	}
	curl := time.Since(t)

	// The same through the TAP path (Firecracker's; QEMU in a network
	// namespace of its own with HEARTH_NET_LINK=tap).
	b.Setenv("HEARTH_NET_LINK", "tap")
	tap, err := c.CreateWorkspace(ctx, hearth.CreateOptions{MemoryMiB: 512, Network: &hearth.NetworkPolicy{Mode: "egress", AllowHost: []int{port}}})
	if err != nil {
		b.Fatal(err)
	}
	defer tap.Delete(ctx, true)
	b.Setenv("HEARTH_NET_LINK", "")
	t = time.Now()
	r, err = tap.Exec(ctx, hearth.ExecOptions{Argv: []string{"curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url + "191"}, Capture: true})
	if err != nil || r.ExitCode != 0 || r.Stdout != strconv.Itoa(191<<20) {
		b.Fatalf("curl through the TAP path: %v %+v", err, r)
	}
	curlTap := time.Since(t)

	// TCP connect latency (in the guest, 20 connects) against the exec
	// round trip of `true`.
	fmt.Printf("\nnetwork: raw channel 200 MB in %v, curl 200 MB via the stack in %v\n", raw.Round(time.Millisecond), curl.Round(time.Millisecond))
	r, err = on.Exec(ctx, hearth.ExecOptions{Argv: []string{"bash", "-c", fmt.Sprintf(`s=$(date +%%s%%N); for i in $(seq 20); do exec 3<>/dev/tcp/%s/%d; exec 3>&-; done; e=$(date +%%s%%N); echo $(( (e-s)/20000 ))`, "host.hearth.internal", port)}, Capture: true})
	if err != nil || r.ExitCode != 0 {
		b.Fatalf("connects: %v %+v", err, r)
	}
	connectUS, _ := strconv.Atoi(strings.TrimSpace(r.Stdout))
	var rtt []time.Duration
	for range 10 {
		t := time.Now()
		if _, err := on.Exec(ctx, hearth.ExecOptions{Argv: []string{"true"}}); err != nil {
			b.Fatal(err)
		}
		rtt = append(rtt, time.Since(t))
	}
	exec := median(rtt)

	// Peak supervisor memory under 100 concurrent flows of 2 MiB.
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if rss, _, _ := memKiB(onInfo.SupervisorPID); int64(rss) > peak.Load() {
				peak.Store(int64(rss))
			}
		}
	}()
	r, err = on.Exec(ctx, hearth.ExecOptions{Shell: fmt.Sprintf(`for i in $(seq 100); do curl -sS -o /dev/null %s2 & done; wait`, url), Capture: true, Timeout: 10 * time.Minute})
	close(stop)
	if err != nil || r.ExitCode != 0 {
		b.Fatalf("100 flows: %v %+v", err, r)
	}

	rawMBs, curlMBs := 200/raw.Seconds(), 200.3/curl.Seconds()
	connect := time.Duration(connectUS) * time.Microsecond
	fmt.Printf("\nnetwork (QEMU, user-space stack in the supervisor):\n  raw channel (200 MB cat)          %v = %.0f MB/s\n  curl of 200 MB via the stack      %v = %.0f MB/s\n  ratio curl/raw throughput         %.2f (target ≥ 0.5)\n  curl of 200 MB via the TAP path   %v = %.0f MB/s, ratio TAP/stream %.2f\n  TCP connect in the guest          %v (mean of 20)\n  exec round trip of true (SDK)     %v (median of 10)\n  ratio connect/exec                %.2f\n  supervisor private dirty, idle    %d KiB with network, %d KiB without: +%d KiB (target ≤ 8192)\n  supervisor RSS idle / peak at 100 flows   %d KiB / %d KiB\n",
		raw.Round(time.Millisecond), rawMBs, curl.Round(time.Millisecond), curlMBs, curlMBs/rawMBs,
		curlTap.Round(time.Millisecond), 200.3/curlTap.Seconds(), curl.Seconds()/curlTap.Seconds(),
		connect, exec.Round(time.Millisecond), float64(connect)/float64(exec),
		onPriv, offPriv, onPriv-offPriv, onRSS, peak.Load())
	b.ReportMetric(curlMBs/rawMBs, "curl/raw")
	b.ReportMetric(curl.Seconds()/curlTap.Seconds(), "tap/stream")
	b.ReportMetric(float64(connect)/float64(exec), "connect/exec")
	b.ReportMetric(float64(onPriv-offPriv), "net-extra-private-KiB")
}
