package secrets

import (
	"net"
	"slices"
	"strconv"
	"strings"
)

// BrokerRule is one brokered secret of a workspace.
type BrokerRule struct {
	Name        string
	Placeholder string
	// Hosts are lower-case host names or addresses, optionally with a
	// port; Headers canonical header names.
	Hosts, Headers []string
	Value          []byte
}

// Broker maps a brokered secret's placeholder to its value for the
// egress path: the supervisor's egress proxy (package egress) calls
// Substitute for each header of each request it forwards to a host some
// rule names.
type Broker struct {
	rules []BrokerRule
}

// NewBroker returns the broker of rules (nil when there are none).
func NewBroker(rules []BrokerRule) *Broker {
	if len(rules) == 0 {
		return nil
	}
	return &Broker{rules: rules}
}

// Substitute returns headerValue with each placeholder of a secret
// configured for host and header replaced by its value; ok reports
// whether anything was replaced. host is the request's host (with the
// port when the rule names one); header its name in any case. Placeholders
// for other hosts or headers are left as they are, and so is anything
// outside headers: the caller passes only header values here.
func (b *Broker) Substitute(host, header, headerValue string) (string, bool) {
	if b == nil {
		return headerValue, false
	}
	host = strings.ToLower(host)
	header = canonicalHeader(header)
	ok := false
	for _, r := range b.rules {
		if !slices.Contains(r.Headers, header) || !hostMatches(r.Hosts, host) || !strings.Contains(headerValue, r.Placeholder) {
			continue
		}
		headerValue = strings.ReplaceAll(headerValue, r.Placeholder, string(r.Value))
		ok = true
	}
	return headerValue, ok
}

// Hosts returns every host some rule names: those whose TLS the egress
// proxy must terminate.
func (b *Broker) Hosts() []string {
	if b == nil {
		return nil
	}
	var out []string
	for _, r := range b.rules {
		for _, h := range r.Hosts {
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// Covers reports whether the egress proxy brokers connections to name
// (a host name or address) on port: some rule names name with that port,
// or names it without a port and port is 80 (HTTP) or 443 (HTTPS).
func (b *Broker) Covers(name string, port int) bool {
	if b == nil {
		return false
	}
	name = strings.ToLower(name)
	withPort := net.JoinHostPort(name, strconv.Itoa(port))
	for _, r := range b.rules {
		for _, h := range r.Hosts {
			if h == withPort || (port == 80 || port == 443) && hostMatches([]string{h}, name) && !hasPort(h) {
				return true
			}
		}
	}
	return false
}

// hasPort reports whether a rule's host names a port.
func hasPort(h string) bool {
	_, _, err := net.SplitHostPort(h)
	return err == nil
}

// hostMatches reports whether host ("name" or "name:port") is in hosts; a
// rule without a port matches any port, "*.example.com" any subdomain.
func hostMatches(hosts []string, host string) bool {
	name := host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i+1:], "]") {
		name = host[:i]
	}
	for _, h := range hosts {
		switch {
		case h == host || h == name:
			return true
		case strings.HasPrefix(h, "*.") && strings.HasSuffix(name, h[1:]):
			return true
		}
	}
	return false
}

// Exposure is what the broker needs of a workspace's brokered secret (the
// fields of api.WorkspaceSecret, which the workspace record holds).
type Exposure struct {
	Name, Mode, Placeholder string
	Hosts, Headers          []string
}

// Broker returns the broker of a workspace's brokered exposures, with the
// values read from the store: for a process that has the workspace's
// record but no workspace.Manager (the supervisor).
func (s *Store) Broker(exps []Exposure) (*Broker, error) {
	var rules []BrokerRule
	for _, e := range exps {
		if e.Mode != ModeBrokered {
			continue
		}
		v, _, err := s.Get(e.Name)
		if err != nil {
			return nil, err
		}
		rules = append(rules, BrokerRule{Name: e.Name, Placeholder: e.Placeholder, Hosts: e.Hosts, Headers: e.Headers, Value: v})
	}
	return NewBroker(rules), nil
}
