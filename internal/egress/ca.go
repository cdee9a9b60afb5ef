// Package egress is the brokered-secret proxy of a workspace's guest
// network: for a guest connection to a host some brokered secret names, the
// supervisor's network stack (package netstack) hands the connection here
// instead of splicing it. HTTPS is terminated with a leaf certificate signed
// by the workspace's own CA (which the guest trusts), each HTTP/1.1 request
// has the secret's placeholder replaced by its value in the configured
// headers only (secrets.Broker), and the request goes on over a new TLS
// connection to the real host, verified against the system roots. Bodies
// and responses pass through unchanged.
package egress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// CA is a workspace's certificate authority: it signs the leaf
// certificates the proxy shows the guest for brokered hosts.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
}

// maxLeaves bounds the leaf cache (brokered hosts are few).
const maxLeaves = 256

// LoadOrCreateCA reads the CA at path (its certificate and key, PEM, mode
// 0600), creating it first if there is none: an ECDSA P-256 key and a
// self-signed certificate valid ten years. Two processes creating it at
// once agree on one (the file appears whole, once).
func LoadOrCreateCA(path string) (*CA, error) {
	ca, err := loadCA(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return ca, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("broker CA: generate key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "hearth workspace broker CA", Organization: []string{"hearth"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("broker CA: sign: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("broker CA: encode key: %w", err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("broker CA: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".broker-ca-*")
	if err != nil {
		return nil, fmt.Errorf("broker CA: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("broker CA: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("broker CA: write %s: %w", tmp.Name(), err)
	}
	// Link, not rename: whoever links first wins, the other loads it.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("broker CA: %w", err)
	}
	return loadCA(path)
}

func loadCA(path string) (*CA, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("broker CA: %w", err)
	}
	ca := &CA{leaves: map[string]*tls.Certificate{}}
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			if ca.cert, err = x509.ParseCertificate(blk.Bytes); err != nil {
				return nil, fmt.Errorf("broker CA %s: certificate: %w", path, err)
			}
			ca.certPEM = pem.EncodeToMemory(blk)
		case "EC PRIVATE KEY":
			if ca.key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
				return nil, fmt.Errorf("broker CA %s: key: %w", path, err)
			}
		}
	}
	if ca.cert == nil || ca.key == nil {
		return nil, fmt.Errorf("broker CA %s: want a certificate and an EC key (remove the file to make a new CA)", path)
	}
	return ca, nil
}

// CertPEM is the CA's certificate: what the guest installs in its trust.
func (c *CA) CertPEM() []byte { return c.certPEM }

// Leaf returns a certificate for name (a host name or an IP address)
// signed by the CA, made once and cached.
func (c *CA) Leaf(name string) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.leaves[name]; ok && time.Until(l.Leaf.NotAfter) > time.Hour {
		return l, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	end := now.AddDate(0, 0, 90)
	if end.After(c.cert.NotAfter) {
		end = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     end,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("broker CA: sign a certificate for %s: %w", name, err)
	}
	leaf, _ := x509.ParseCertificate(der)
	l := &tls.Certificate{Certificate: [][]byte{der, c.cert.Raw}, PrivateKey: key, Leaf: leaf}
	if len(c.leaves) >= maxLeaves {
		clear(c.leaves)
	}
	c.leaves[name] = l
	return l, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}
