package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/egress"
	"github.com/hearthvm/hearth/internal/netstack/dnstest"
)

// brokerBenchScript runs in the guest: n HTTPS GETs to each host given,
// over one keep-alive connection and over a new connection each, and
// prints requests per second as JSON.
const brokerBenchScript = `
import http.client, json, os, ssl, sys, time
ctx = ssl.create_default_context(cafile="/tmp/bench-ca.pem")
n = int(sys.argv[1])
def rate(host, fresh):
    t = time.monotonic()
    c = None
    for _ in range(n):
        if fresh or c is None:
            if c is not None:
                c.close()
            c = http.client.HTTPSConnection(host, 443, context=ctx, timeout=120)
        c.request("GET", "/b", headers={"Authorization": "Bearer " + os.environ["BENCH_KEY"]})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit("%s: status %d" % (host, r.status))
    c.close()
    return n / (time.monotonic() - t)
out = {}
for h in sys.argv[2:]:
    out[h] = {"keepalive": rate(h, False), "fresh": rate(h, True)}
print(json.dumps(out))
`

// BenchmarkBroker prints brokered HTTPS requests per second (TLS
// terminated by the workspace's egress proxy, the secret put in the
// Authorization header, a new TLS connection to the server) against
// direct egress (spliced) to the same loopback server, as ratios, over
// keep-alive connections and a new connection per request.
func BenchmarkBroker(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	c := client(b, e)

	dir := b.TempDir()
	ca, err := egress.LoadOrCreateCA(filepath.Join(dir, "bench-ca.pem"))
	if err != nil {
		b.Fatal(err)
	}
	pub := filepath.Join(dir, "bench-ca.crt")
	os.WriteFile(pub, ca.CertPEM(), 0o644)
	b.Setenv(egress.ExtraCAEnv, pub)
	var certs []tls.Certificate
	for _, n := range []string{"api.bench.test", "direct.bench.test"} {
		l, err := ca.Leaf(n)
		if err != nil {
			b.Fatal(err)
		}
		certs = append(certs, *l)
	}
	addr := netip.MustParseAddr("127.77.15.1")
	ln, err := net.Listen("tcp", addr.String()+":443")
	if err != nil {
		b.Fatalf("listen on %s:443 (needs root): %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})}
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: certs}))
	defer srv.Close()
	dns := dnstest.Start(b, map[string]netip.Addr{"api.bench.test": addr, "direct.bench.test": addr})
	b.Setenv("HEARTH_NET_DNS", dns.Addr)

	var rb [8]byte
	rand.Read(rb[:])
	name := "BENCH_KEY_" + hex.EncodeToString(rb[:])
	if _, err := c.SecretSet(ctx, name, []byte("bench-value-"+hex.EncodeToString(rb[:])), hearth.SecretSetOptions{Hosts: []string{"api.bench.test"}}); err != nil {
		b.Fatal(err)
	}
	defer c.SecretRemove(context.Background(), name)
	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{MemoryMiB: 512, Secrets: []string{name + ":brokered"},
		Network: &hearth.NetworkPolicy{Mode: "egress", Rules: []hearth.NetworkRule{
			{Action: "allow", Match: "*.bench.test"}, {Action: "allow", Match: "127.77.15.0/24"}}}})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Delete(context.Background(), true)
	// One domain rule for both names: they share the server's address, and
	// the first domain rule matching an address decides which SNI it takes.
	// One bundle for both: the system's (with the workspace CA) and the
	// bench server's CA, which the direct path needs.
	sh(b, ws, fmt.Sprintf("cat /etc/ssl/certs/ca-certificates.crt > /tmp/bench-ca.pem && cat >> /tmp/bench-ca.pem <<'EOF'\n%sEOF\ncat > /tmp/bench.py <<'EOF'\n%s\nEOF", ca.CertPEM(), brokerBenchScript))

	type rates struct{ Keepalive, Fresh float64 }
	var ka, fr [][2]float64 // brokered, direct per round
	for range 3 {
		r, err := ws.Exec(ctx, hearth.ExecOptions{Shell: "BENCH_KEY=$" + name + " python3 /tmp/bench.py 50 api.bench.test direct.bench.test", Capture: true, SecretEnv: []string{name}})
		if err != nil || r.ExitCode != 0 {
			evs, _ := ws.NetworkLog(ctx, 20, time.Time{})
			for _, e := range evs {
				b.Logf("network log: %+v", e)
			}
			b.Fatalf("bench: %v %+v", err, r)
		}
		var got map[string]rates
		if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
			b.Fatalf("bench output %q: %v", r.Stdout, err)
		}
		ka = append(ka, [2]float64{got["api.bench.test"].Keepalive, got["direct.bench.test"].Keepalive})
		fr = append(fr, [2]float64{got["api.bench.test"].Fresh, got["direct.bench.test"].Fresh})
	}
	med := func(xs [][2]float64, i int) float64 {
		v := make([]float64, len(xs))
		for j, x := range xs {
			v[j] = x[i]
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	kaB, kaD, frB, frD := med(ka, 0), med(ka, 1), med(fr, 0), med(fr, 1)
	fmt.Printf("\nbrokered secrets (HTTPS to a loopback server from Python in the guest, 50 requests, median of 3 rounds):\n"+
		"  keep-alive connection   brokered %.1f req/s, direct %.1f req/s, ratio brokered/direct %.2f\n"+
		"  new connection each     brokered %.1f req/s, direct %.1f req/s, ratio brokered/direct %.2f\n",
		kaB, kaD, kaB/kaD, frB, frD, frB/frD)
	b.ReportMetric(kaB/kaD, "brokered/direct-keepalive")
	b.ReportMetric(frB/frD, "brokered/direct-fresh")
}
