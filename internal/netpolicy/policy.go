// Package netpolicy is a workspace's guest network policy: a mode (none,
// egress, open), ordered allow and deny rules on domains, CIDRs, ports and
// protocols, and the host loopback ports the guest may reach. It decides
// DNS names and connections; package netstack enforces the decisions.
//
// Addresses that are not public (loopback, private ranges, link-local and
// cloud metadata, CGNAT, multicast, the host) are denied in every mode
// unless an allow rule names them with a CIDR inside such a range.
package netpolicy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// Mode is a workspace's network mode.
type Mode string

// Modes.
const (
	// ModeNone gives the guest no network interface at all (the default).
	ModeNone Mode = "none"
	// ModeEgress denies everything but what the rules allow.
	ModeEgress Mode = "egress"
	// ModeOpen allows all public egress.
	ModeOpen Mode = "open"
)

// HostName is the guest's name for the host; with AllowHost it resolves
// to the stack's gateway address, which forwards to the host's 127.0.0.1.
const HostName = "host.hearth.internal"

// Policy is a workspace's network policy, persisted with the workspace.
type Policy struct {
	Mode Mode `json:"mode"`
	// Rules are evaluated in order; the first that matches decides.
	Rules []Rule `json:"rules,omitempty"`
	// AllowHost lists the host loopback ports the guest may reach at
	// HostName (the gateway address).
	AllowHost []int `json:"allow_host,omitempty"`
}

// Rule is one allow or deny rule.
type Rule struct {
	// Action is "allow" or "deny".
	Action string `json:"action"`
	// Match is DOMAIN, *.DOMAIN or CIDR (or one address), with an optional
	// :PORT or :PORT-PORT and an optional /tcp or /udp.
	Match string `json:"match"`

	m *matcher
}

// String is the rule as the CLI spells it ("allow example.com:443/tcp").
func (r Rule) String() string { return r.Action + " " + r.Match }

type matcher struct {
	domain   string // "example.com" or "*.example.com", lower case
	prefix   netip.Prefix
	lo, hi   uint16 // 0,0 = any port
	proto    string // "", "tcp", "udp"
	isPrefix bool
}

// Allow and Deny build rules.
func Allow(match string) Rule { return Rule{Action: "allow", Match: match} }

// Deny builds a deny rule.
func Deny(match string) Rule { return Rule{Action: "deny", Match: match} }

// ParseMatch parses a rule's match text.
func parseMatch(s string) (*matcher, error) {
	orig := s
	s = strings.TrimSpace(strings.ToLower(s))
	m := &matcher{}
	for _, p := range []string{"tcp", "udp"} {
		if strings.HasSuffix(s, "/"+p) {
			m.proto = p
			s = strings.TrimSuffix(s, "/"+p)
		}
	}
	host, ports := s, ""
	switch {
	case strings.HasPrefix(s, "["): // [IPv6]/bits:port
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return nil, fmt.Errorf("rule %q: unclosed '['", orig)
		}
		host = s[1:end]
		rest := s[end+1:]
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			host, ports = host+rest[:i], rest[i+1:]
		} else {
			host += rest
		}
	case strings.Count(s, ":") == 1:
		host, ports, _ = strings.Cut(s, ":")
	}
	if ports != "" || strings.HasSuffix(s, ":") {
		lo, hi, ok := strings.Cut(ports, "-")
		if !ok {
			hi = lo
		}
		l, err1 := strconv.ParseUint(lo, 10, 16)
		h, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil || l == 0 || h < l {
			return nil, fmt.Errorf("rule %q: port %q: want PORT or PORT-PORT, 1 to 65535", orig, ports)
		}
		m.lo, m.hi = uint16(l), uint16(h)
	}
	if host == "" {
		return nil, fmt.Errorf("rule %q: no domain or CIDR", orig)
	}
	if p, err := netip.ParsePrefix(host); err == nil {
		m.prefix, m.isPrefix = p.Masked(), true
		return m, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		m.prefix, m.isPrefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), true
		return m, nil
	}
	d := strings.TrimSuffix(host, ".")
	if err := validDomain(strings.TrimPrefix(d, "*.")); err != nil {
		return nil, fmt.Errorf("rule %q: %v: want DOMAIN, *.DOMAIN or CIDR with optional :PORT[-PORT] and /tcp or /udp", orig, err)
	}
	m.domain = d
	return m, nil
}

func validDomain(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("domain %q: empty or too long", d)
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("domain %q: empty or over-long label", d)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("domain %q: character %q", d, c)
			}
		}
	}
	return nil
}

// Validate checks the policy and prepares its rules for matching. Errors
// name the argument ("network", "allow"/"deny", "allow_host").
func (p *Policy) Validate() error {
	switch p.Mode {
	case "":
		p.Mode = ModeNone
	case ModeNone, ModeEgress, ModeOpen:
	default:
		return errdefs.Arg("network", "mode %q: want none, egress or open", p.Mode)
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Action != "allow" && r.Action != "deny" {
			return errdefs.Arg("rules", "rule %d: action %q: want allow or deny", i+1, r.Action)
		}
		m, err := parseMatch(r.Match)
		if err != nil {
			return errdefs.Arg(r.Action, "%v", err)
		}
		r.m = m
	}
	for _, port := range p.AllowHost {
		if port < 1 || port > 65535 {
			return errdefs.Arg("allow_host", "port %d: want 1 to 65535", port)
		}
	}
	if p.Mode == ModeNone && (len(p.Rules) > 0 || len(p.AllowHost) > 0) {
		return errdefs.Arg("network", "rules and allowed host ports need mode egress or open, not none")
	}
	return nil
}

// Enabled reports whether the guest gets a network interface.
func (p *Policy) Enabled() bool { return p != nil && p.Mode != "" && p.Mode != ModeNone }

// String summarizes the policy on one line.
func (p *Policy) String() string {
	if p == nil {
		return string(ModeNone)
	}
	parts := []string{string(p.Mode)}
	for _, r := range p.Rules {
		parts = append(parts, r.String())
	}
	for _, h := range p.AllowHost {
		parts = append(parts, "allow-host "+strconv.Itoa(h))
	}
	return strings.Join(parts, ", ")
}

// Load reads a policy file; a missing file is mode none.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return &Policy{Mode: ModeNone}, nil
	}
	if err != nil {
		return nil, err
	}
	var p Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("network policy %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("network policy %s: %w", path, err)
	}
	return &p, nil
}

// Save writes a policy file atomically.
func Save(path string, p *Policy) error {
	return atomicfile.WriteJSON(path, p, 0o600)
}

// Decision is the outcome of a check.
type Decision struct {
	Allow bool
	// Rule is the rule that decided ("allow example.com"), or a built-in
	// reason ("default deny", "network off", "not public").
	Rule string
	// Domain is set when a domain rule allowed a connection: ports 80 and
	// 443 must then name a domain that matches it (HTTP Host, TLS SNI).
	Domain *matcher
}

// Built-in reasons.
const (
	ReasonNone        = "network off"
	ReasonDefault     = "default deny"
	ReasonOpen        = "open mode"
	ReasonNotPublic   = "not public (loopback, private, link-local or metadata) and no rule names it"
	ReasonHostDenied  = "host port not opened with allow_host"
	ReasonHostAllowed = "allow_host"
)

// MatchDomain reports whether name matches pattern ("a.b" or "*.a.b";
// "*.a.b" does not match "a.b" itself).
func MatchDomain(pattern, name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if suf, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(name, "."+suf)
	}
	return name == pattern
}

// MatchName reports whether this rule's domain pattern matches name.
func (m *matcher) MatchName(name string) bool {
	return m != nil && m.domain != "" && MatchDomain(m.domain, name)
}

func (m *matcher) portProto(port uint16, proto string) bool {
	if m.proto != "" && m.proto != proto {
		return false
	}
	return m.lo == 0 || port >= m.lo && port <= m.hi
}

// names reports whether m's CIDR names a non-public range that holds ip.
func (m *matcher) namesSpecial(ip netip.Addr) bool {
	return m.isPrefix && m.prefix.Contains(ip) && m.prefix.Bits() > 0 && !IsPublic(m.prefix.Addr())
}

// Name decides a DNS name: whether the stack may resolve it upstream.
// The first domain rule matching the name decides (ports and protocols
// are not looked at: they apply to connections).
func (p *Policy) Name(name string) Decision {
	if !p.Enabled() {
		return Decision{Rule: ReasonNone}
	}
	for _, r := range p.Rules {
		if r.m.MatchName(name) {
			return Decision{Allow: r.Action == "allow", Rule: r.String()}
		}
	}
	if p.Mode == ModeOpen {
		return Decision{Allow: true, Rule: ReasonOpen}
	}
	return Decision{Rule: ReasonDefault}
}

// AnswerAllowed reports whether a DNS answer address may be given to the
// guest: public addresses always, others only when an allow rule names
// their range (DNS rebinding protection).
func (p *Policy) AnswerAllowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	if IsPublic(ip) {
		return true
	}
	for _, r := range p.Rules {
		if r.Action == "allow" && r.m.namesSpecial(ip) {
			return true
		}
	}
	return false
}

// Conn decides a connection (or UDP flow) to ip:port over proto ("tcp"
// or "udp"). domains are the names this workspace resolved to ip (its DNS
// pins); a domain rule matches only through them.
func (p *Policy) Conn(ip netip.Addr, port uint16, proto string, domains []string) Decision {
	if !p.Enabled() {
		return Decision{Rule: ReasonNone}
	}
	ip = ip.Unmap()
	public := IsPublic(ip)
	for _, r := range p.Rules {
		m := r.m
		if !m.portProto(port, proto) {
			continue
		}
		var byDomain bool
		switch {
		case m.isPrefix:
			if !m.prefix.Contains(ip) {
				continue
			}
		case slices.ContainsFunc(domains, m.MatchName):
			byDomain = true
		default:
			continue
		}
		if r.Action == "deny" {
			return Decision{Rule: r.String()}
		}
		if !public && !p.AnswerAllowed(ip) {
			return Decision{Rule: ReasonNotPublic}
		}
		d := Decision{Allow: true, Rule: r.String()}
		if byDomain {
			d.Domain = m
		}
		return d
	}
	if !public {
		return Decision{Rule: ReasonNotPublic}
	}
	if p.Mode == ModeOpen {
		return Decision{Allow: true, Rule: ReasonOpen}
	}
	return Decision{Rule: ReasonDefault}
}

// Host decides a connection to the host's loopback port through the
// gateway address.
func (p *Policy) Host(port uint16) Decision {
	if p.Enabled() && slices.Contains(p.AllowHost, int(port)) {
		return Decision{Allow: true, Rule: ReasonHostAllowed + " " + strconv.Itoa(int(port))}
	}
	return Decision{Rule: ReasonHostDenied}
}

var notPublic = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b::/96", "100::/64", "fc00::/7", "fe80::/10", "ff00::/8",
		"fd00:ec2::254/128",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// IsPublic reports whether ip is a public unicast address: not loopback,
// private, CGNAT, link-local (cloud metadata), benchmarking (198.18.0.0/15,
// where the guest's stand-ins for host loopback addresses live), multicast
// or reserved. Documentation ranges count as public: some sites serve
// package mirrors from them.
func IsPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
