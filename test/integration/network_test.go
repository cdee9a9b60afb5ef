package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/netstack/dnstest"
)

// httpServer serves body (and /blob) on addr until the test ends.
func httpServer(t *testing.T, addr, body string, blob []byte) int {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
	mux.HandleFunc("/blob", func(w http.ResponseWriter, r *http.Request) { w.Write(blob) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestNetworkPolicy runs one workspace through the guest network's cases.
// Every address the guest is pointed at is on this machine's loopback; the
// test names resolve through a DNS server the test runs on 127.0.0.1.
func TestNetworkPolicy(t *testing.T) {
	blob := make([]byte, 256<<10)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	allowedPort := httpServer(t, "127.0.0.2:0", "allowed-server", blob)
	deniedPort := httpServer(t, "127.0.0.3:0", "denied-server", nil)
	hostPort := httpServer(t, "127.0.0.1:0", "host-port", nil)
	otherPort := httpServer(t, "127.0.0.1:0", "other-host-port", nil)
	dns := dnstest.Start(t, map[string]netip.Addr{
		"allowed.test": netip.MustParseAddr("127.0.0.2"),
		"denied.test":  netip.MustParseAddr("127.0.0.3"),
		"rebind.test":  netip.MustParseAddr("127.0.0.1"),
	})
	// The supervisor inherits the environment: its stack asks this resolver.
	t.Setenv("HEARTH_NET_DNS", dns.Addr)

	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: "net-" + fmt.Sprint(time.Now().UnixNano()%100000)})

	// Mode none (the default): no NIC, no DNS.
	if r := sh(t, ws, `for n in /sys/class/net/*; do [ "$(cat $n/type)" = 1 ] && basename $n; done; true`); strings.TrimSpace(r.Stdout) != "" {
		t.Fatalf("mode none: Ethernet interfaces %q", r.Stdout)
	}
	if r := sh(t, ws, `getent hosts allowed.test`); r.ExitCode == 0 {
		t.Fatalf("mode none: allowed.test resolved: %q", r.Stdout)
	}

	policy := hearth.NetworkPolicy{Mode: "egress", AllowHost: []int{hostPort}, Rules: []hearth.NetworkRule{
		{Action: "allow", Match: "allowed.test"}, {Action: "allow", Match: "rebind.test"}, {Action: "allow", Match: "127.0.0.2/32"},
	}}
	info, err := ws.NetworkSet(ctx, policy)
	if err != nil {
		t.Fatal(err)
	}
	if info.Applied {
		t.Fatalf("none → egress on a running VM: applied, want a restart: %+v", info)
	}
	restart := func() {
		t.Helper()
		if _, err := ws.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := ws.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	restart()
	if info, err := ws.NetworkShow(ctx); err != nil || !info.Applied || info.Policy.Mode != "egress" {
		t.Fatalf("after restart: %+v %v", info, err)
	}

	curl := func(url string) *hearth.ExecResult {
		return sh(t, ws, "curl -sS --max-time 10 "+url)
	}
	if r := curl(fmt.Sprintf("http://allowed.test:%d/", allowedPort)); r.ExitCode != 0 || r.Stdout != "allowed-server" {
		t.Fatalf("allowed.test: %+v", r)
	}
	// denied.test: not resolved, never asked upstream; nor a long-label
	// exfiltration name under it.
	if r := curl(fmt.Sprintf("http://denied.test:%d/", deniedPort)); r.ExitCode == 0 || !strings.Contains(r.Stderr, "resolve") {
		t.Fatalf("denied.test: %+v", r)
	}
	exfil := strings.Repeat("s", 60) + "." + strings.Repeat("e", 60) + ".chunk1.denied.test"
	if r := sh(t, ws, "getent hosts "+exfil); r.ExitCode == 0 {
		t.Fatalf("exfil name resolved: %q", r.Stdout)
	}
	if dns.AskedAbout("denied.test") {
		t.Fatalf("a denied name reached the resolver: %v", dns.Asked())
	}
	// Rebinding: an allowed name answering the host's loopback resolves to
	// nothing.
	if r := sh(t, ws, "getent hosts rebind.test"); r.ExitCode == 0 {
		t.Fatalf("rebind.test resolved: %q", r.Stdout)
	}
	// allow_host: one port, no other; the other is refused at once.
	if r := curl(fmt.Sprintf("http://host.hearth.internal:%d/", hostPort)); r.ExitCode != 0 || r.Stdout != "host-port" {
		t.Fatalf("allow_host port: %+v", r)
	}
	if r := curl(fmt.Sprintf("http://host.hearth.internal:%d/", otherPort)); r.ExitCode != 7 {
		t.Fatalf("other host port: want curl exit 7 (connection refused), got %+v", r)
	}

	// A live change: denied.test allowed, no restart.
	live := policy
	live.Rules = append(append([]hearth.NetworkRule(nil), policy.Rules...), hearth.NetworkRule{Action: "allow", Match: "denied.test"}, hearth.NetworkRule{Action: "allow", Match: "127.0.0.3/32"})
	if info, err := ws.NetworkSet(ctx, live); err != nil || !info.Applied {
		t.Fatalf("live set: %+v %v", info, err)
	}
	r := sh(t, ws, "getent hosts denied.test | cut -d' ' -f1")
	standIn := strings.TrimSpace(r.Stdout)
	if r.ExitCode != 0 || standIn == "" {
		t.Fatalf("after the live change denied.test: %+v", r)
	}
	if r := curl(fmt.Sprintf("http://denied.test:%d/", deniedPort)); r.ExitCode != 0 || r.Stdout != "denied-server" {
		t.Fatalf("after the live change: %+v", r)
	}
	// Denied again: its address as an IP literal is refused.
	if _, err := ws.NetworkSet(ctx, policy); err != nil {
		t.Fatal(err)
	}
	if r := curl(fmt.Sprintf("http://%s:%d/", standIn, deniedPort)); r.ExitCode != 7 {
		t.Fatalf("IP literal of the denied server: want curl exit 7, got %+v", r)
	}

	// 100 concurrent flows with checksummed payloads (the name resolved
	// once: this is about the flows, not 100 lookups in a guest under
	// software emulation).
	script := fmt.Sprintf(`cd /tmp && ip=$(getent hosts allowed.test | cut -d' ' -f1) && for i in $(seq 1 100); do curl -sS --max-time 300 -o blob.$i -H 'Host: allowed.test' http://$ip:%d/blob & done; wait; sha256sum blob.* | cut -d' ' -f1 | sort | uniq -c`, allowedPort)
	res, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"sh", "-c", script}, Capture: true, Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(res.Stdout), "100 "+hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("100 flows: got %q, want %q (stderr %s)", got, want, res.Stderr)
	}

	// The policy survives stop and start.
	restart()
	if info, err := ws.NetworkShow(ctx); err != nil || info.Policy.Mode != "egress" || len(info.Policy.Rules) != 3 || !info.Applied {
		t.Fatalf("after stop/start: %+v %v", info, err)
	}
	if r := curl(fmt.Sprintf("http://allowed.test:%d/", allowedPort)); r.ExitCode != 0 {
		t.Fatalf("allowed.test after stop/start: %+v", r)
	}
	if r := curl(fmt.Sprintf("http://denied.test:%d/", deniedPort)); r.ExitCode == 0 {
		t.Fatalf("denied.test after stop/start: %+v", r)
	}

	// The log says what happened; the self-test passes.
	evs, err := ws.NetworkLog(ctx, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var deniedName, deniedHost, allowedFlow bool
	for _, e := range evs {
		deniedName = deniedName || e.Kind == "dns" && e.Dest == "denied.test" && e.Action == "denied"
		deniedHost = deniedHost || e.Kind == "tcp" && e.Dest == "host.hearth.internal:"+strconv.Itoa(otherPort) && e.Action == "denied"
		allowedFlow = allowedFlow || e.Kind == "tcp" && e.Name == "allowed.test" && e.Action == "allowed" && e.BytesIn > 0
	}
	if !deniedName || !deniedHost || !allowedFlow {
		t.Errorf("network log: denied name %v, denied host port %v, allowed flow with bytes %v (%d events)", deniedName, deniedHost, allowedFlow, len(evs))
	}
	st, err := ws.NetworkTest(ctx)
	if err != nil || !st.OK {
		t.Errorf("network test: %+v %v", st, err)
	}
}

// TestNetworkTAP runs the guest network over the path Firecracker takes: the
// VMM (QEMU here, HEARTH_NET_LINK=tap) in a network namespace of its own
// whose only device is a TAP, the supervisor pumping the TAP's frames into
// the same stack through a packet socket. The policy must hold the same way,
// and checksummed payloads must survive the TAP's offloads.
func TestNetworkTAP(t *testing.T) {
	blob := make([]byte, 1<<20)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	allowedPort := httpServer(t, "127.0.0.2:0", "allowed-server", blob)
	deniedPort := httpServer(t, "127.0.0.3:0", "denied-server", nil)
	hostPort := httpServer(t, "127.0.0.1:0", "host-port", nil)
	dns := dnstest.Start(t, map[string]netip.Addr{
		"allowed.test": netip.MustParseAddr("127.0.0.2"),
		"denied.test":  netip.MustParseAddr("127.0.0.3"),
	})
	t.Setenv("HEARTH_NET_DNS", dns.Addr)
	t.Setenv("HEARTH_NET_LINK", "tap")

	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: "tap-" + fmt.Sprint(time.Now().UnixNano()%100000),
		Network: &hearth.NetworkPolicy{Mode: "egress", AllowHost: []int{hostPort}, Rules: []hearth.NetworkRule{{Action: "allow", Match: "allowed.test"}, {Action: "allow", Match: "127.0.0.2/32"}}}})

	// The VMM is in a namespace of its own; the host's has no TAP.
	st := vmStatus(t, ws.Info.ID)
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	vmm, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", st.VMMPID))
	if err != nil {
		t.Fatal(err)
	}
	if vmm == self {
		t.Fatalf("the VMM shares the host's network namespace (%s)", self)
	}
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.VMMPID)); !strings.Contains(string(cmdline), "tap,id=net0") {
		t.Fatalf("the VMM was not given the TAP netdev")
	}
	if _, err := os.Stat("/sys/class/net/tap0"); err == nil {
		t.Fatalf("tap0 exists in the host's namespace")
	}

	curl := func(url string) *hearth.ExecResult { return sh(t, ws, "curl -sS --max-time 10 "+url) }
	if r := curl(fmt.Sprintf("http://allowed.test:%d/", allowedPort)); r.ExitCode != 0 || r.Stdout != "allowed-server" {
		t.Fatalf("allowed.test: %+v", r)
	}
	if r := curl(fmt.Sprintf("http://denied.test:%d/", deniedPort)); r.ExitCode == 0 || !strings.Contains(r.Stderr, "resolve") {
		t.Fatalf("denied.test: %+v", r)
	}
	if dns.AskedAbout("denied.test") {
		t.Fatalf("a denied name reached the resolver: %v", dns.Asked())
	}
	if r := curl(fmt.Sprintf("http://127.0.0.3:%d/", deniedPort)); r.ExitCode != 7 {
		t.Fatalf("IP literal of the denied server: want curl exit 7, got %+v", r)
	}
	if r := curl(fmt.Sprintf("http://host.hearth.internal:%d/", hostPort)); r.ExitCode != 0 || r.Stdout != "host-port" {
		t.Fatalf("allow_host port: %+v", r)
	}
	// 20 concurrent 1 MiB transfers arrive intact.
	script := fmt.Sprintf(`cd /tmp && for i in $(seq 1 20); do curl -sS --max-time 300 -o blob.$i http://allowed.test:%d/blob & done; wait; sha256sum blob.* | cut -d' ' -f1 | sort | uniq -c`, allowedPort)
	res, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"sh", "-c", script}, Capture: true, Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(res.Stdout), "20 "+hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("20 flows: got %q, want %q (stderr %s)", got, want, res.Stderr)
	}
	// Upload too: the guest's full-size frames into the stack, which
	// arrive only if the guest finished their checksums (offloads off).
	if r := sh(t, ws, fmt.Sprintf(`head -c 4000000 /dev/urandom > /tmp/up && curl -sS --max-time 120 -o /dev/null -w '%%{http_code}' --data-binary @/tmp/up http://allowed.test:%d/`, allowedPort)); r.ExitCode != 0 || r.Stdout != "200" {
		t.Fatalf("upload: %+v", r)
	}
	if st, err := ws.NetworkTest(ctx); err != nil || !st.OK {
		t.Errorf("network test: %+v %v", st, err)
	}
	// The link is the workspace's, chosen at create: without the variable,
	// a stop and start (a new namespace; the old went with its VMM) and a
	// memory snapshot's resume keep the TAP.
	t.Setenv("HEARTH_NET_LINK", "")
	if _, err := ws.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st.VMMPID)
	if _, err := ws.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tapped := func(what string) {
		t.Helper()
		pid := vmStatus(t, ws.Info.ID).VMMPID
		if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); !strings.Contains(string(cmdline), "tap,id=net0") {
			t.Fatalf("%s: the VMM has no TAP netdev", what)
		}
		if r := curl(fmt.Sprintf("http://allowed.test:%d/", allowedPort)); r.ExitCode != 0 || r.Stdout != "allowed-server" {
			t.Fatalf("allowed.test %s: %+v", what, r)
		}
	}
	tapped("after a restart")
	if _, err := ws.SnapshotCreateMemory(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Reset(ctx, hearth.ResetOptions{To: "warm", Force: true}); err != nil {
		t.Fatal(err)
	}
	tapped("after resuming a memory snapshot")
}

// TestNetworkRealInstall is the one test that leaves the machine: a
// workspace whose egress allows only the image's own package mirror (read
// from the guest's apt sources, never written down here) installs jq with
// apt-get and runs it; a name outside the allow-list stays unresolved. It
// uses the host's own resolver.
func TestNetworkRealInstall(t *testing.T) {
	t.Setenv("HEARTH_NET_DNS", "")
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: "apt-" + fmt.Sprint(time.Now().UnixNano()%100000),
		Network: &hearth.NetworkPolicy{Mode: "egress"}})
	r := sh(t, ws, `cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null; grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null; true`)
	hosts := map[string]bool{}
	for _, f := range strings.Fields(r.Stdout) {
		if rest, ok := strings.CutPrefix(f, "http://"); ok {
			hosts[strings.SplitN(rest, "/", 2)[0]] = true
		} else if rest, ok := strings.CutPrefix(f, "https://"); ok {
			hosts[strings.SplitN(rest, "/", 2)[0]] = true
		}
	}
	if len(hosts) == 0 {
		t.Fatalf("no package mirror in the guest's apt sources: %q", r.Stdout)
	}
	var rules []hearth.NetworkRule
	for h := range hosts {
		// The host must reach it itself, or there is nothing to test.
		hostOnly, port, err := net.SplitHostPort(h)
		if err != nil {
			hostOnly, port = h, "80"
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(hostOnly, port), 10*time.Second)
		if err != nil {
			t.Skipf("this machine cannot reach the image's package mirror itself (%v)", err)
		}
		conn.Close()
		rules = append(rules, hearth.NetworkRule{Action: "allow", Match: hostOnly})
	}
	if info, err := ws.NetworkSet(ctx, hearth.NetworkPolicy{Mode: "egress", Rules: rules}); err != nil || !info.Applied {
		t.Fatalf("allow the mirror: %+v %v", info, err)
	}
	res, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"sh", "-c",
		`apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null && echo '{"a":41}' | jq '.a+1'`},
		Capture: true, Timeout: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != "42" {
		t.Fatalf("apt-get install jq through the allow-list: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	// Anything else stays blocked: not resolved, logged as denied.
	if r := sh(t, ws, "getent hosts not-the-mirror.test || curl -sS --max-time 5 http://not-the-mirror.test/"); r.ExitCode == 0 {
		t.Fatalf("a name outside the allow-list resolved or connected: %+v", r)
	}
	evs, err := ws.NetworkLog(ctx, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var denied bool
	for _, e := range evs {
		denied = denied || e.Dest == "not-the-mirror.test" && e.Action == "denied"
		if e.Action == "allowed" && e.Kind == "tcp" && !hosts[e.Name] && !slices.ContainsFunc(rules, func(r hearth.NetworkRule) bool { return r.Match == e.Name }) {
			t.Errorf("a connection outside the mirror was allowed: %+v", e)
		}
	}
	if !denied {
		t.Errorf("the network log does not record the denied name")
	}
}
