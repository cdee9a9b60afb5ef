// Package secrets is hearth's host-side secret store and the redaction of
// secret values from everything hearth hands back.
//
// The store lives in $HEARTH_HOME/secrets (mode 0700). A secret NAME is two
// files, each mode 0600: NAME.value holds the value's exact bytes and
// NAME.json its metadata (never the value). Values are not encrypted at
// rest: the store is as safe as the host account that owns $HEARTH_HOME,
// like ~/.ssh. Nothing in this package puts a value in an error, a log
// record or a metadata file.
package secrets

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// Limits of a secret.
const (
	// MaxValue is the largest value the store accepts (64 KiB).
	MaxValue = 64 << 10
	// MinValue is the shortest: shorter values cannot be redacted without
	// redacting ordinary output too.
	MinValue = 4
	// MaxHosts bounds a brokered secret's host list.
	MaxHosts = 64
)

// Modes a secret can be exposed to a workspace in.
const (
	// ModeFile writes the value to /run/secrets/NAME (tmpfs, 0400).
	ModeFile = "file"
	// ModeEnv sets NAME=value in the environment of the execs and shells
	// that ask for it (or of all of them when the workspace says so).
	ModeEnv = "env"
	// ModeBrokered gives the guest only a placeholder; the egress path
	// swaps in the value for the configured hosts and headers.
	ModeBrokered = "brokered"
)

// ValidMode reports whether m is a mode.
func ValidMode(m string) bool { return m == ModeFile || m == ModeEnv || m == ModeBrokered }

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// ValidateName checks a secret name. Names are environment variable names
// (they become one in env mode and a file name under /run/secrets).
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return errdefs.Arg("name", "secret name %q: use 1-128 characters A-Z, a-z, 0-9 or '_', not starting with a digit (it is used as an environment variable name)", name)
	}
	return nil
}

// Meta is what the store keeps beside a value: never the value.
type Meta struct {
	Name      string    `json:"name"`
	Bytes     int       `json:"bytes"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Hosts and Headers configure brokered exposure: the egress path puts
	// the value in place of the placeholder only in these headers (default
	// Authorization) of requests to these hosts.
	Hosts   []string `json:"hosts,omitempty"`
	Headers []string `json:"headers,omitempty"`
}

// Store is the secret store under one state directory.
type Store struct {
	dir string
}

// Open returns the store of the state directory home (created on first
// write).
func Open(home string) *Store { return &Store{dir: filepath.Join(home, "secrets")} }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) valuePath(name string) string { return filepath.Join(s.dir, name+".value") }
func (s *Store) metaPath(name string) string  { return filepath.Join(s.dir, name+".json") }

// SetOptions are a secret's metadata given at set.
type SetOptions struct {
	Hosts   []string
	Headers []string
}

// Set stores value under name, replacing any value it had. The value's
// bytes are kept exactly.
func (s *Store) Set(name string, value []byte, o SetOptions) (*Meta, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := CheckValue(name, value); err != nil {
		return nil, err
	}
	hosts, err := NormalizeHosts(o.Hosts)
	if err != nil {
		return nil, err
	}
	headers, err := NormalizeHeaders(o.Headers)
	if err != nil {
		return nil, err
	}
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	m := &Meta{Name: name, Bytes: len(value), CreatedAt: now, UpdatedAt: now, Hosts: hosts, Headers: headers}
	if old, err := s.Meta(name); err == nil {
		m.CreatedAt = old.CreatedAt
	}
	if err := atomicfile.Write(s.valuePath(name), value, 0o600); err != nil {
		return nil, fmt.Errorf("store secret %s: %w", name, scrubPathErr(err))
	}
	if err := os.Chmod(s.valuePath(name), 0o600); err != nil {
		return nil, fmt.Errorf("store secret %s: %w", name, err)
	}
	if err := atomicfile.WriteJSON(s.metaPath(name), m, 0o600); err != nil {
		return nil, fmt.Errorf("store secret %s: %w", name, scrubPathErr(err))
	}
	return m, nil
}

// CheckValue checks a value's size; its errors never hold the value.
func CheckValue(name string, value []byte) error {
	switch {
	case len(value) == 0:
		return errdefs.Arg("value", "secret %s: no value given: give value or value_base64", name)
	case len(value) < MinValue:
		return errdefs.Arg("value", "secret %s: the value is %d bytes, shorter than %d: too short to redact from output safely", name, len(value), MinValue)
	case len(value) > MaxValue:
		return errdefs.Arg("value", "secret %s: the value is %d bytes, more than the limit of %d (64 KiB)", name, len(value), MaxValue)
	}
	return nil
}

// ensureDir makes the store's directory 0700 (also when it existed with
// wider permissions).
func (s *Store) ensureDir() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("secret store: %w", err)
	}
	return os.Chmod(s.dir, 0o700)
}

// Get returns a secret's value and metadata. An unknown name is
// errdefs.ErrNotFound.
func (s *Store) Get(name string) ([]byte, *Meta, error) {
	m, err := s.Meta(name)
	if err != nil {
		return nil, nil, err
	}
	v, err := os.ReadFile(s.valuePath(name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, notFound(name)
		}
		return nil, nil, fmt.Errorf("read secret %s: %w", name, scrubPathErr(err))
	}
	return v, m, nil
}

// Meta returns a secret's metadata.
func (s *Store) Meta(name string) (*Meta, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.metaPath(name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notFound(name)
		}
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("secret %s: corrupt metadata %s: %w", name, s.metaPath(name), err)
	}
	return &m, nil
}

func notFound(name string) error {
	return fmt.Errorf("no secret named %q: store it with secret_set (see secret_list): %w", name, errdefs.ErrNotFound)
}

// List returns every secret's metadata, by name.
func (s *Store) List() ([]Meta, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("secret store: %w", err)
	}
	var out []Meta
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !nameRE.MatchString(name) {
			continue
		}
		m, err := s.Meta(name)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a secret. Removing an unknown name is ErrNotFound.
func (s *Store) Remove(name string) (*Meta, error) {
	m, err := s.Meta(name)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(s.valuePath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove secret %s: %w", name, err)
	}
	if err := os.Remove(s.metaPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove secret %s: %w", name, err)
	}
	return m, nil
}

// scrubPathErr keeps an error's operation and cause; file errors name
// paths, never contents, so this only unwraps to the *PathError's cause
// for a shorter message.
func scrubPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %w", pe.Op, filepath.Base(pe.Path), pe.Err)
	}
	return err
}

var hostRE = regexp.MustCompile(`^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$`)

// NormalizeHosts checks a brokered secret's host list: DNS names or IP
// addresses, with an optional port; lower-cased, deduplicated. There is
// no wildcard meaning "any host".
func NormalizeHosts(hosts []string) ([]string, error) {
	if len(hosts) > MaxHosts {
		return nil, errdefs.Arg("hosts", "%d hosts: at most %d", len(hosts), MaxHosts)
	}
	seen := map[string]bool{}
	var out []string
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || h == "*" || strings.Contains(h, "/") {
			return nil, errdefs.Arg("hosts", "host %q: give a host name or address such as api.example.com or 127.0.0.1:8443 (there is no any-host wildcard)", h)
		}
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip == nil && !hostRE.MatchString(h) {
			if hp, port, err := net.SplitHostPort(h); err != nil || port == "" || net.ParseIP(hp) == nil {
				return nil, errdefs.Arg("hosts", "host %q: give a host name or address such as api.example.com or 127.0.0.1:8443", h)
			}
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out, nil
}

var headerRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")

// NormalizeHeaders checks header names (canonical case, deduplicated).
func NormalizeHeaders(headers []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, h := range headers {
		if !headerRE.MatchString(h) {
			return nil, errdefs.Arg("headers", "header name %q: give a name such as Authorization or X-Api-Key", h)
		}
		c := canonicalHeader(h)
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// canonicalHeader is net/http's canonical form (X-Api-Key).
func canonicalHeader(h string) string {
	parts := strings.Split(strings.ToLower(h), "-")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "-")
}
