package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/egress"
	"github.com/hearthvm/hearth/internal/netstack/dnstest"
)

// Loopback addresses of the brokered-secret tests' servers (this machine
// only; ports 80 and 443 need root, which these tests have).
var (
	brokerAPIAddr   = netip.MustParseAddr("127.77.14.1")
	brokerOtherAddr = netip.MustParseAddr("127.77.14.2")
)

// seenRequest is what a test server recorded of one request.
type seenRequest struct {
	Host, Path, Query string
	Header            http.Header
	Body              string
}

// recorder is a test HTTP(S) server on loopback that records each request
// and serves a dumb-HTTP git repository under /repo.git/ (to requests
// carrying wantAuth, when set: 401 otherwise).
type recorder struct {
	mu   sync.Mutex
	seen []seenRequest
}

func (rc *recorder) handler(repo, wantAuth string) http.Handler {
	files := http.StripPrefix("/repo.git/", http.FileServer(http.Dir(repo)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.seen = append(rc.seen, seenRequest{Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(b)})
		rc.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/repo.git/") && repo != "" {
			if wantAuth != "" && r.Header.Get("Authorization") != wantAuth {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			files.ServeHTTP(w, r)
			return
		}
		fmt.Fprintf(w, "served %s", r.URL.Path)
	})
}

// request returns the last request for path.
func (rc *recorder) request(path string) (seenRequest, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := len(rc.seen) - 1; i >= 0; i-- {
		if rc.seen[i].Path == path {
			return rc.seen[i], true
		}
	}
	return seenRequest{}, false
}

func (rc *recorder) all() []seenRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]seenRequest(nil), rc.seen...)
}

// serveOn serves h on addr (TLS with cert when given) until the test ends.
func serveOn(t testing.TB, addr string, h http.Handler, cert *tls.Certificate) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s (the brokered-secret tests bind loopback ports 80 and 443, which needs root): %v", addr, err)
	}
	if cert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}})
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// testCA makes a CA of the test's own for its servers; the supervisor
// trusts it through $HEARTH_BROKER_EXTRA_CA (the guest does not).
func testCA(t testing.TB) (*egress.CA, string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := egress.LoadOrCreateCA(filepath.Join(dir, "test-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "test-ca.crt")
	if err := os.WriteFile(pub, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(egress.ExtraCAEnv, pub)
	return ca, pub
}

// bareRepo makes a bare git repository with one commit, ready for dumb
// HTTP, and returns its directory and the commit.
func bareRepo(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	work, bare := filepath.Join(dir, "work"), filepath.Join(dir, "repo.git")
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main", work)
	os.WriteFile(filepath.Join(work, "hello.txt"), []byte("hello from the brokered repo\n"), 0o644)
	run("-C", work, "add", "hello.txt")
	run("-C", work, "commit", "-q", "-m", "one")
	head := run("-C", work, "rev-parse", "HEAD")
	run("clone", "-q", "--bare", work, bare)
	run("-C", bare, "update-server-info")
	return bare, head
}

// brokerEnv is a running workspace exposing a brokered secret for
// api.broker.test, with servers for it (HTTPS and HTTP) and for
// other.broker.test (HTTPS, not brokered) on loopback.
type brokerEnv struct {
	ws               *hearth.Workspace
	name, value, ph  string
	api, other       *recorder
	testCAPEM        []byte
	repoHead         string
	dns              *dnstest.Server
	secretHostDenied string
}

func newBrokerEnv(t *testing.T) *brokerEnv {
	t.Helper()
	ctx := context.Background()
	ca, _ := testCA(t)
	b := &brokerEnv{name: randomName("BROK"), value: randomValue("brokered-value-"), api: &recorder{}, other: &recorder{}, testCAPEM: ca.CertPEM(),
		secretHostDenied: "denied.broker.test"}
	repo, head := bareRepo(t)
	b.repoHead = head
	apiCert, err := ca.Leaf("api.broker.test")
	if err != nil {
		t.Fatal(err)
	}
	otherCert, err := ca.Leaf("other.broker.test")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, brokerAPIAddr.String()+":443", b.api.handler(repo, "Bearer "+b.value), apiCert)
	serveOn(t, brokerAPIAddr.String()+":80", b.api.handler("", ""), nil)
	serveOn(t, brokerOtherAddr.String()+":443", b.other.handler("", ""), otherCert)
	b.dns = dnstest.Start(t, map[string]netip.Addr{
		"api.broker.test":    brokerAPIAddr,
		"other.broker.test":  brokerOtherAddr,
		"denied.broker.test": brokerOtherAddr,
	})
	t.Setenv("HEARTH_NET_DNS", b.dns.Addr)

	c := sdk(t)
	if _, err := c.SecretSet(ctx, b.name, []byte(b.value), hearth.SecretSetOptions{Hosts: []string{"api.broker.test", b.secretHostDenied}, Headers: []string{"Authorization"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.SecretRemove(context.Background(), b.name) })
	b.ws = newWorkspace(t, c, hearth.CreateOptions{Name: "brok-" + fmt.Sprint(time.Now().UnixNano()%100000), Secrets: []string{b.name + ":brokered"}})
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		evs, _ := b.ws.NetworkLog(context.Background(), 40, time.Time{})
		for _, e := range evs {
			if e.Kind == "tcp" {
				t.Logf("network log: %s %s %s %s %q in %d out %d %dms", e.Time.Format("15:04:05.000"), e.Action, e.Dest, e.Name, e.Detail, e.BytesIn, e.BytesOut, e.DurationMS)
			}
		}
	})
	for _, s := range b.ws.Info.Secrets {
		if s.Name == b.name {
			b.ph = s.Placeholder
		}
	}
	if b.ph == "" {
		t.Fatalf("no placeholder for %s in %+v", b.name, b.ws.Info.Secrets)
	}
	policy := hearth.NetworkPolicy{Mode: "egress", Rules: []hearth.NetworkRule{
		{Action: "allow", Match: "api.broker.test"}, {Action: "allow", Match: "other.broker.test"}, {Action: "allow", Match: "127.77.14.0/24"},
	}}
	if _, err := b.ws.NetworkSet(ctx, policy); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ws.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ws.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs script in the guest with the secret's placeholder in $name.
func (b *brokerEnv) run(t *testing.T, script string) *hearth.ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := b.ws.Exec(ctx, hearth.ExecOptions{Shell: script, Capture: true, SecretEnv: []string{b.name}})
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return r
}

// checkBrokered: the server got the value in Authorization and the
// placeholder unchanged in the query, another header and the body.
func (b *brokerEnv) checkBrokered(t *testing.T, rc *recorder, path string) {
	t.Helper()
	got, ok := rc.request(path)
	if !ok {
		t.Fatalf("the server got no request for %s (it got %d)", path, len(rc.all()))
	}
	if a := got.Header.Get("Authorization"); a != "Bearer "+b.value {
		t.Errorf("%s: Authorization %q, want the real value", path, a)
	}
	if o := got.Header.Get("X-Other"); o != b.ph {
		t.Errorf("%s: X-Other %q, want the placeholder unchanged", path, o)
	}
	if !strings.Contains(got.Query, "key="+b.ph) {
		t.Errorf("%s: query %q, want the placeholder unchanged", path, got.Query)
	}
	if !strings.Contains(got.Body, "body="+b.ph) {
		t.Errorf("%s: body %q, want the placeholder unchanged", path, got.Body)
	}
	if strings.Contains(got.Query+got.Body+got.Header.Get("X-Other"), b.value) {
		t.Errorf("%s: the value reached a place other than the configured header", path)
	}
}

// TestBrokeredSecret: a brokered secret's value never enters the guest;
// curl, Python's urllib and git in the guest trust the workspace's CA for
// the brokered host, whose server gets the value in the configured header
// only; plain HTTP to it is brokered too; another host gets the
// placeholder over a connection hearth does not touch; a brokered host the
// policy does not allow stays denied.
func TestBrokeredSecret(t *testing.T) {
	b := newBrokerEnv(t)
	v := "$" + b.name

	t.Run("never in the guest", func(t *testing.T) {
		r := b.run(t, "{ env; cat /proc/1/environ; cat /run/secrets/"+b.name+"; cat /etc/ssl/certs/ca-certificates.crt; } | od -An -tx1 | tr -d ' \\n'")
		raw, err := hex.DecodeString(strings.TrimSpace(r.Stdout))
		if err != nil {
			t.Fatalf("hex: %v: %q", err, r.Stdout)
		}
		if bytes.Contains(raw, []byte(b.value)) {
			t.Fatal("the guest's environment or files hold the brokered value")
		}
		if !bytes.Contains(raw, []byte(b.name+"="+b.ph)) {
			t.Fatalf("the guest's environment lacks the placeholder")
		}
		if bytes.Contains(raw, []byte("PRIVATE KEY")) {
			t.Fatal("a private key in the guest's environment or trust")
		}
		if r := b.run(t, "echo $SSL_CERT_FILE $REQUESTS_CA_BUNDLE $CURL_CA_BUNDLE $GIT_SSL_CAINFO $NODE_EXTRA_CA_CERTS; grep -c 'hearth broker CA begin' /etc/ssl/certs/ca-certificates.crt"); r.ExitCode != 0 ||
			r.Stdout != "/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt /usr/local/share/ca-certificates/hearth-broker.crt\n1\n" {
			t.Fatalf("trust variables and bundle: %+v", r)
		}
	})

	t.Run("CA on the host", func(t *testing.T) {
		// The CA's key stays in the workspace directory on the host (0600);
		// the guest's disk holds at most the certificate.
		path := filepath.Join(env.Home, "workspaces", b.ws.Info.ID, "broker-ca.pem")
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("broker CA %s: %v %v", path, fi, err)
		}
		pemBytes, _ := os.ReadFile(path)
		_, keyPEM, _ := strings.Cut(string(pemBytes), "-----BEGIN EC PRIVATE KEY-----\n")
		keyLine, _, _ := strings.Cut(keyPEM, "\n")
		if len(keyLine) < 40 {
			t.Fatalf("no key in %s", path)
		}
		b.run(t, "sync")
		var hits []string
		for _, h := range filesHolding(t, filepath.Dir(path), keyLine) {
			if !strings.HasPrefix(h, path+" ") {
				hits = append(hits, h)
			}
		}
		if len(hits) > 0 {
			t.Fatalf("the CA key is elsewhere in the workspace: %v", hits)
		}
	})

	t.Run("curl", func(t *testing.T) {
		r := b.run(t, fmt.Sprintf(`curl -sS --max-time 60 -H "Authorization: Bearer %[1]s" -H "X-Other: %[1]s" --data "body=%[1]s" "https://api.broker.test/curl?key=%[1]s"`, v))
		if r.ExitCode != 0 || r.Stdout != "served /curl" {
			t.Fatalf("curl: %+v", r)
		}
		b.checkBrokered(t, b.api, "/curl")
		// The system bundle alone (no variables) trusts the CA too.
		r = b.run(t, fmt.Sprintf(`env -u CURL_CA_BUNDLE -u SSL_CERT_FILE curl -sS --max-time 60 -H "Authorization: Bearer %[1]s" -H "X-Other: %[1]s" --data "body=%[1]s" "https://api.broker.test/curl-system?key=%[1]s"`, v))
		if r.ExitCode != 0 || r.Stdout != "served /curl-system" {
			t.Fatalf("curl with the system bundle: %+v", r)
		}
		b.checkBrokered(t, b.api, "/curl-system")
	})

	t.Run("python urllib", func(t *testing.T) {
		py := `import os, urllib.request as u
p = os.environ["` + b.name + `"]
r = u.Request("https://api.broker.test/py?key=" + p, data=("body=" + p).encode(), headers={"Authorization": "Bearer " + p, "X-Other": p})
print(u.urlopen(r, timeout=60).read().decode(), end="")`
		r := b.run(t, "python3 -c '"+py+"'")
		if r.ExitCode != 0 || r.Stdout != "served /py" {
			t.Fatalf("python: %+v", r)
		}
		b.checkBrokered(t, b.api, "/py")
	})

	t.Run("git", func(t *testing.T) {
		r := b.run(t, fmt.Sprintf(`cd /tmp && rm -rf clone && git -c http.extraHeader="Authorization: Bearer %[1]s" ls-remote https://api.broker.test/repo.git refs/heads/main && git -c http.extraHeader="Authorization: Bearer %[1]s" clone -q https://api.broker.test/repo.git clone && cat clone/hello.txt`, v))
		if r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, b.repoHead+"\trefs/heads/main\n") || !strings.HasSuffix(r.Stdout, "hello from the brokered repo\n") {
			t.Fatalf("git: %+v", r)
		}
		got, _ := b.api.request("/repo.git/info/refs")
		if got.Header.Get("Authorization") != "Bearer "+b.value {
			t.Errorf("git's request had Authorization %q", got.Header.Get("Authorization"))
		}
	})

	t.Run("plain http", func(t *testing.T) {
		r := b.run(t, fmt.Sprintf(`curl -sS --max-time 60 -H "Authorization: Bearer %[1]s" -H "X-Other: %[1]s" --data "body=%[1]s" "http://api.broker.test/plain?key=%[1]s"`, v))
		if r.ExitCode != 0 || r.Stdout != "served /plain" {
			t.Fatalf("plain HTTP: %+v", r)
		}
		b.checkBrokered(t, b.api, "/plain")
	})

	t.Run("another host", func(t *testing.T) {
		// The guest does not trust the test CA: it is given only for this
		// host, and curl verifies the real server's certificate with it,
		// which proves hearth did not terminate this connection.
		r := b.run(t, fmt.Sprintf("cat > /tmp/test-ca.pem <<'EOF'\n%sEOF\n", b.testCAPEM)+
			fmt.Sprintf(`curl -sS --max-time 60 --cacert /tmp/test-ca.pem -H "Authorization: Bearer %[1]s" -H "X-Other: %[1]s" --data "body=%[1]s" "https://other.broker.test/other?key=%[1]s"`, v))
		if r.ExitCode != 0 || r.Stdout != "served /other" {
			t.Fatalf("other host: %+v", r)
		}
		got, _ := b.other.request("/other")
		if got.Header.Get("Authorization") != "Bearer "+b.ph {
			t.Errorf("other host got Authorization %q, want the placeholder", got.Header.Get("Authorization"))
		}
		// And the brokered host's name, sent to the other host's address
		// (a Host header the guest merely claims), gets nothing either.
		b.run(t, fmt.Sprintf(`ip=$(getent hosts other.broker.test | cut -d' ' -f1); curl -sS --max-time 60 -H "Host: api.broker.test" -H "Authorization: Bearer %[1]s" "http://$ip:443/claimed" -o /dev/null; true`, v))
		for _, s := range b.other.all() {
			if strings.Contains(strings.Join(s.Header.Values("Authorization"), ""), b.value) {
				t.Fatalf("the other host got the value (%s)", s.Path)
			}
		}
	})

	t.Run("policy first", func(t *testing.T) {
		r := b.run(t, fmt.Sprintf(`curl -sS --max-time 30 -H "Authorization: Bearer %s" https://%s/`, v, b.secretHostDenied))
		if r.ExitCode == 0 {
			t.Fatalf("a brokered host the policy does not allow: %+v", r)
		}
		if b.dns.AskedAbout(b.secretHostDenied) {
			t.Fatal("a denied name reached the resolver")
		}
	})

	t.Run("live change", func(t *testing.T) {
		// Removed from the running workspace: the CA leaves the guest's
		// trust and the host is spliced (the guest verifies the real server
		// with the test CA, and the server gets the placeholder).
		ctx := context.Background()
		if _, err := b.ws.SecretRemove(ctx, b.name); err != nil {
			t.Fatal(err)
		}
		r := sh(t, b.ws, fmt.Sprintf("cat > /tmp/test-ca.pem <<'EOF'\n%sEOF\n", b.testCAPEM)+
			"test ! -e /usr/local/share/ca-certificates/hearth-broker.crt && ! grep -q 'hearth broker CA' /etc/ssl/certs/ca-certificates.crt && test -z \"$SSL_CERT_FILE\" && "+
			fmt.Sprintf(`curl -sS --max-time 60 --cacert /tmp/test-ca.pem -H "Authorization: Bearer %s" https://api.broker.test/unbrokered`, b.ph))
		if r.ExitCode != 0 || r.Stdout != "served /unbrokered" {
			t.Fatalf("after secret rm: %+v", r)
		}
		if got, _ := b.api.request("/unbrokered"); got.Header.Get("Authorization") != "Bearer "+b.ph {
			t.Fatalf("after secret rm the server got Authorization %q, want the placeholder", got.Header.Get("Authorization"))
		}
		// Added back: brokered again at once, with a new placeholder.
		info, err := b.ws.SecretAdd(ctx, b.name, hearth.SecretExposure{Mode: "brokered"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range info.Secrets {
			if s.Name == b.name {
				b.ph = s.Placeholder
			}
		}
		r = b.run(t, fmt.Sprintf(`curl -sS --max-time 60 -H "Authorization: Bearer %[1]s" -H "X-Other: %[1]s" --data "body=%[1]s" "https://api.broker.test/again?key=%[1]s"`, v))
		if r.ExitCode != 0 || r.Stdout != "served /again" {
			t.Fatalf("after secret add: %+v", r)
		}
		b.checkBrokered(t, b.api, "/again")
	})

	t.Run("network log", func(t *testing.T) {
		evs, err := b.ws.NetworkLog(context.Background(), 0, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var brokered, spliced bool
		for _, e := range evs {
			brokered = brokered || e.Name == "api.broker.test" && strings.HasPrefix(e.Detail, "brokered: 1 header")
			spliced = spliced || e.Name == "other.broker.test" && e.Action == "allowed" && !strings.Contains(e.Detail, "brokered") && e.BytesIn > 0
		}
		if !brokered || !spliced {
			t.Errorf("network log: brokered flow %v, spliced flow %v", brokered, spliced)
		}
	})
}
