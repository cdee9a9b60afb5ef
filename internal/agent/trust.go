package agent

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// The broker CA: a workspace with a brokered secret has its egress proxy
// terminate TLS for the secret's hosts with certificates its own CA signs.
// The agent puts that CA in the system's trust and, while it is there,
// gives every exec, shell and service the variables that point TLS
// clients at a bundle holding it (guestproto.TrustEnv).

// brokerTrust is whether the broker CA is installed.
var brokerTrust atomic.Bool

// trustPaths are where the CA goes (tests point them elsewhere).
var trustPaths = struct {
	sync.Mutex
	caFile, bundle string
}{caFile: guestproto.BrokerCAFile, bundle: guestproto.SystemBundle}

// defaultEnv is the base environment of execs and services.
func defaultEnv() []string {
	if !brokerTrust.Load() {
		return execDefaultEnv
	}
	return mergeEnv(execDefaultEnv, guestproto.TrustEnv())
}

// setBrokerCA installs pem (a CA certificate) in the guest's trust, or
// takes the CA out when pem is empty. The bundle keeps everything else it
// holds; the CA sits between marker lines so that a new one replaces it.
func setBrokerCA(pem []byte) error {
	trustPaths.Lock()
	defer trustPaths.Unlock()
	caFile, bundle := trustPaths.caFile, trustPaths.bundle
	if len(pem) == 0 && !brokerTrust.Load() {
		if _, err := os.Stat(caFile); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	old, err := os.ReadFile(bundle)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errorf(guestproto.CodeInternal, "broker CA: read %s: %v", bundle, err)
	}
	next := withoutBlock(old)
	if len(pem) > 0 {
		if len(next) > 0 && next[len(next)-1] != '\n' {
			next = append(next, '\n')
		}
		next = append(next, guestproto.BrokerCABegin+"\n"...)
		next = append(next, bytes.TrimSpace(pem)...)
		next = append(next, "\n"+guestproto.BrokerCAEnd+"\n"...)
	}
	if !bytes.Equal(old, next) {
		if err := os.MkdirAll(filepath.Dir(bundle), 0o755); err != nil {
			return errorf(guestproto.CodeInternal, "broker CA: %v", err)
		}
		if err := writeFileAtomic(bundle, next, 0o644); err != nil {
			return errorf(guestproto.CodeInternal, "broker CA: %v", err)
		}
	}
	if len(pem) == 0 {
		os.Remove(caFile)
		brokerTrust.Store(false)
		return nil
	}
	os.MkdirAll(filepath.Dir(caFile), 0o755)
	if err := writeFileAtomic(caFile, pem, 0o644); err != nil {
		return errorf(guestproto.CodeInternal, "broker CA: %v", err)
	}
	brokerTrust.Store(true)
	return nil
}

// withoutBlock returns the bundle without its broker CA block.
func withoutBlock(b []byte) []byte {
	begin := bytes.Index(b, []byte(guestproto.BrokerCABegin))
	if begin < 0 {
		return bytes.Clone(b)
	}
	out := bytes.Clone(b[:begin])
	rest := b[begin:]
	if end := bytes.Index(rest, []byte(guestproto.BrokerCAEnd)); end >= 0 {
		rest = rest[end+len(guestproto.BrokerCAEnd):]
		rest = bytes.TrimPrefix(rest, []byte("\n"))
		out = append(out, rest...)
	}
	return out
}
