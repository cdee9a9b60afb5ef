package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/secrets"
)

// ExtraCAEnv names a PEM file of extra roots the proxy trusts, with the
// system's, when it verifies a brokered host: for tests (a server with its
// own CA) and for hosts behind an enterprise CA. The supervisor reads it
// from its environment (inherited from the hearth process that starts it).
const ExtraCAEnv = "HEARTH_BROKER_EXTRA_CA"

// Config is a workspace's broker file (written by the workspace manager,
// read by its supervisor at boot and at each network reload). It holds no
// secret value: those are read from the store.
type Config struct {
	// Store is the secret store's root ($HEARTH_HOME).
	Store string `json:"store"`
	// CA is the workspace's CA file (certificate and key, mode 0600).
	CA string `json:"ca"`
	// Secrets are the workspace's brokered exposures.
	Secrets []secrets.Exposure `json:"secrets"`
}

// WriteConfig saves c at path (mode 0600); with no secrets it removes the
// file instead.
func WriteConfig(path string, c *Config) error {
	if c == nil || len(c.Secrets) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove broker config: %w", err)
		}
		return nil
	}
	if err := atomicfile.WriteJSON(path, c, 0o600); err != nil {
		return fmt.Errorf("write broker config: %w", err)
	}
	return nil
}

// Load builds the proxy of the broker file at path: nil (and no error)
// when there is no file or it names no brokered secret.
func Load(path string) (*Proxy, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("broker config %s: %w", path, err)
	}
	brk, err := secrets.Open(c.Store).Broker(c.Secrets)
	if err != nil {
		return nil, fmt.Errorf("brokered secrets: %w", err)
	}
	if brk == nil {
		return nil, nil
	}
	ca, err := LoadOrCreateCA(c.CA)
	if err != nil {
		return nil, err
	}
	roots, err := Roots()
	if err != nil {
		return nil, err
	}
	return &Proxy{CA: ca, Broker: brk, Roots: roots}, nil
}

// Roots are the roots a brokered host is verified against: the system's,
// and those of the file $HEARTH_BROKER_EXTRA_CA names.
func Roots() (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if p := os.Getenv(ExtraCAEnv); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ExtraCAEnv, err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s=%s: no PEM certificate in the file", ExtraCAEnv, p)
		}
	}
	return pool, nil
}

// Proxy serves a workspace's connections to brokered hosts.
type Proxy struct {
	CA     *CA
	Broker *secrets.Broker
	Roots  *x509.CertPool
	// HandshakeTimeout bounds the two TLS handshakes (default 30s: a guest
	// under software emulation on a loaded host can be slow).
	HandshakeTimeout time.Duration
}

// Covers reports whether connections to name on port are brokered (see
// secrets.Broker.Covers).
func (p *Proxy) Covers(name string, port uint16) bool {
	return p != nil && p.Broker.Covers(name, int(port))
}

// Conn is a connection the proxy serves: the guest's end (CloseWrite
// half-closes it).
type Conn interface {
	net.Conn
	CloseWrite() error
}

// Stats is what one brokered connection carried.
type Stats struct {
	// BytesOut and BytesIn count the bytes written to the upstream and to
	// the guest (after TLS termination: HTTP bytes).
	BytesOut, BytesIn int64
	// Substituted counts the header values that got a secret.
	Substituted int
	// Err is why the connection ended early ("" for a clean end).
	Err string
}

// Serve serves one guest connection to name:port (its first bytes head
// already read from guest) over up, a connection to the real host, until
// either side ends or ctx is done. With useTLS the connection is TLS on
// both sides, else plain HTTP.
func (p *Proxy) Serve(ctx context.Context, guest Conn, head []byte, name string, port uint16, useTLS bool, up net.Conn) Stats {
	var st Stats
	timeout := p.HandshakeTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	g := &prefixConn{Conn: guest, cw: guest, head: head}
	var gconn, uconn net.Conn = g, up
	var gclose, uclose func() error = guest.CloseWrite, closeWriter(up)
	if useTLS {
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		gt := tls.Server(g, &tls.Config{
			NextProtos: []string{"http/1.1"},
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return p.CA.Leaf(name)
			},
		})
		if err := gt.HandshakeContext(hctx); err != nil {
			st.Err = "TLS handshake with the guest: " + err.Error()
			guest.Close()
			up.Close()
			return st
		}
		ut := tls.Client(up, &tls.Config{ServerName: name, RootCAs: p.Roots, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
		if err := ut.HandshakeContext(hctx); err != nil {
			st.Err = "TLS handshake with " + name + ": " + err.Error()
			badGateway(gt, fmt.Sprintf("hearth broker: %s did not verify: %v", name, err))
			up.Close()
			return st
		}
		gconn, uconn, gclose, uclose = gt, ut, gt.CloseWrite, ut.CloseWrite
	}
	stop := context.AfterFunc(ctx, func() { gconn.Close(); uconn.Close() })
	defer stop()
	rw := &rewriter{broker: p.Broker, name: name, port: port}
	var wg sync.WaitGroup
	var in atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		k, _ := io.Copy(gconn, uconn)
		in.Store(k)
		gclose()
	}()
	out, err := rw.copy(uconn, bufio.NewReaderSize(gconn, 16<<10))
	if err != nil {
		st.Err = "from the guest: " + err.Error()
		// A request the proxy cannot frame goes no further.
		uconn.Close()
		gconn.Close()
	} else {
		uclose()
	}
	wg.Wait()
	gconn.Close()
	uconn.Close()
	st.BytesOut, st.BytesIn, st.Substituted = out, in.Load(), rw.substituted
	return st
}

// badGateway answers the guest's first request with a 502 saying why
// (reading its head first: a close with unread bytes would reset the
// connection before the guest reads the answer).
func badGateway(c net.Conn, msg string) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	readHead(bufio.NewReader(c))
	body := msg + "\n"
	fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	c.Close()
}

func closeWriter(c net.Conn) func() error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite
	}
	return func() error { return nil }
}

// prefixConn is a connection whose first reads return head.
type prefixConn struct {
	net.Conn
	cw   Conn
	head []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(b, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *prefixConn) CloseWrite() error { return c.cw.CloseWrite() }
