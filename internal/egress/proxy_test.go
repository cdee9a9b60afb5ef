package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// upstream is a TLS server for api.test on 127.0.0.1 with a certificate
// from its own CA; it records the requests it gets.
type upstream struct {
	addr  string
	roots *x509.CertPool
	mu    sync.Mutex
	got   []*http.Request
	body  []string
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	ca, err := LoadOrCreateCA(filepath.Join(t.TempDir(), "upstream-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf("api.test")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{roots: x509.NewCertPool()}
	u.roots.AppendCertsFromPEM(ca.CertPEM())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*leaf}})
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, r)
		u.body = append(u.body, string(b))
		u.mu.Unlock()
		io.WriteString(w, "ok "+r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return u
}

// proxyEntry listens where the "guest" connects and serves each
// connection through p to up.
func proxyEntry(t *testing.T, p *Proxy, upAddr string) (string, chan Stats) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	stats := make(chan Stats, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				up, err := net.Dial("tcp", upAddr)
				if err != nil {
					c.Close()
					return
				}
				stats <- p.Serve(context.Background(), c.(*net.TCPConn), nil, "api.test", 443, true, up)
			}()
		}
	}()
	return ln.Addr().String(), stats
}

func guestClient(ca *CA, entry string) *http.Client {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", entry)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "api.test"},
		ForceAttemptHTTP2: true, // the proxy offers http/1.1 only
	}}
}

// TestProxy: through the proxy, the upstream gets the value in the
// configured header only, over keep-alive requests with bodies; an
// upstream the roots do not vouch for gets nothing and the guest a 502.
func TestProxy(t *testing.T) {
	up := startUpstream(t)
	ca, err := LoadOrCreateCA(filepath.Join(t.TempDir(), "ws", "broker-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{CA: ca, Broker: testBroker(), Roots: up.roots}
	entry, stats := proxyEntry(t, p, up.addr)
	c := guestClient(ca, entry)
	for i, body := range []string{"first " + ph, strings.Repeat("x", 100<<10)} {
		req, _ := http.NewRequest("POST", "https://api.test/v1?key="+ph, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+ph)
		req.Header.Set("X-Other", ph)
		if i == 1 {
			req.ContentLength = -1 // chunked
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Proto != "HTTP/1.1" || string(b) != "ok /v1" {
			t.Fatalf("request %d: %s %q", i, resp.Proto, b)
		}
		up.mu.Lock()
		got, gotBody := up.got[i], up.body[i]
		up.mu.Unlock()
		if got.Header.Get("Authorization") != "Bearer "+value || got.Header.Get("X-Other") != ph || got.URL.Query().Get("key") != ph || gotBody != body {
			t.Fatalf("request %d: upstream got Authorization %q, X-Other %q, key %q, body of %d bytes", i, got.Header.Get("Authorization"), got.Header.Get("X-Other"), got.URL.Query().Get("key"), len(gotBody))
		}
	}
	c.CloseIdleConnections()
	if st := <-stats; st.Substituted != 2 || st.Err != "" {
		t.Errorf("one keep-alive connection: %+v", st)
	}

	// An upstream the proxy cannot verify gets no request.
	p2 := &Proxy{CA: ca, Broker: testBroker(), Roots: x509.NewCertPool()}
	entry2, stats2 := proxyEntry(t, p2, up.addr)
	req, _ := http.NewRequest("GET", "https://api.test/", nil)
	req.Header.Set("Authorization", ph)
	resp, err := guestClient(ca, entry2).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.Contains(string(b), "did not verify") {
		t.Errorf("unverified upstream: %d %q", resp.StatusCode, b)
	}
	if st := <-stats2; !strings.Contains(st.Err, "TLS handshake with api.test") {
		t.Errorf("unverified upstream: %+v", st)
	}
	up.mu.Lock()
	n := len(up.got)
	up.mu.Unlock()
	if n != 2 {
		t.Errorf("upstream got %d requests, want 2", n)
	}
}

// TestCA: made once (mode 0600) and loaded after; leaves are cached and
// chain to it.
func TestCA(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "ca.pem")
	a, err := LoadOrCreateCA(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA file: %v %v", fi, err)
	}
	b, err := LoadOrCreateCA(path)
	if err != nil || string(b.CertPEM()) != string(a.CertPEM()) {
		t.Fatalf("second load: %v, same CA %v", err, err == nil && string(b.CertPEM()) == string(a.CertPEM()))
	}
	l1, _ := a.Leaf("api.test")
	l2, _ := a.Leaf("api.test")
	if l1 != l2 {
		t.Error("leaf not cached")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b.CertPEM())
	if _, err := l1.Leaf.Verify(x509.VerifyOptions{DNSName: "api.test", Roots: roots}); err != nil {
		t.Errorf("leaf does not verify against the CA: %v", err)
	}
	if ip, _ := a.Leaf("127.0.0.1"); len(ip.Leaf.IPAddresses) != 1 {
		t.Errorf("IP leaf: %v", ip.Leaf.IPAddresses)
	}
}

// BenchmarkProxy measures keep-alive HTTPS requests through the proxy
// against the same requests straight to the upstream, on this host
// (no VM): the proxy's own cost per request.
func BenchmarkProxy(b *testing.B) {
	dir := b.TempDir()
	upCA, err := LoadOrCreateCA(filepath.Join(dir, "up.pem"))
	if err != nil {
		b.Fatal(err)
	}
	leaf, _ := upCA.Leaf("api.test")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*leaf}})
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(upCA.CertPEM())
	wsCA, _ := LoadOrCreateCA(filepath.Join(dir, "ws.pem"))
	p := &Proxy{CA: wsCA, Broker: testBroker(), Roots: roots}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer pl.Close()
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			go func() {
				up, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					c.Close()
					return
				}
				p.Serve(context.Background(), c.(*net.TCPConn), nil, "api.test", 443, true, up)
			}()
		}
	}()
	for _, tc := range []struct {
		name  string
		entry string
		roots *x509.CertPool
	}{{"direct", ln.Addr().String(), roots}, {"brokered", pl.Addr().String(), nil}} {
		b.Run(tc.name, func(b *testing.B) {
			cr := tc.roots
			if cr == nil {
				cr = x509.NewCertPool()
				cr.AppendCertsFromPEM(wsCA.CertPEM())
			}
			entry := tc.entry
			c := &http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "tcp", entry)
				},
				TLSClientConfig: &tls.Config{RootCAs: cr, ServerName: "api.test"},
			}}
			defer c.CloseIdleConnections()
			for b.Loop() {
				req, _ := http.NewRequest("GET", "https://api.test/", nil)
				req.Header.Set("Authorization", "Bearer "+ph)
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
