package netpolicy

import (
	"net/netip"
	"testing"
)

func TestParseMatch(t *testing.T) {
	for _, tc := range []struct {
		in     string
		domain string
		prefix string
		lo, hi uint16
		proto  string
		bad    bool
	}{
		{in: "example.com", domain: "example.com"},
		{in: "*.Example.com", domain: "*.example.com"},
		{in: "example.com:443", domain: "example.com", lo: 443, hi: 443},
		{in: "example.com:8000-8100/tcp", domain: "example.com", lo: 8000, hi: 8100, proto: "tcp"},
		{in: "127.0.0.2", prefix: "127.0.0.2/32"},
		{in: "10.1.2.3/8:53/udp", prefix: "10.0.0.0/8", lo: 53, hi: 53, proto: "udp"},
		{in: "[::1]/128:22", prefix: "::1/128", lo: 22, hi: 22},
		{in: "fc00::/7", prefix: "fc00::/7"},
		{in: "example.com:0", bad: true},
		{in: "example.com:90-80", bad: true},
		{in: "exa mple.com", bad: true},
		{in: "", bad: true},
		{in: "*", bad: true},
		{in: "a..b", bad: true},
	} {
		m, err := parseMatch(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: parsed, want an error", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if m.domain != tc.domain || (tc.prefix != "" && m.prefix.String() != tc.prefix) || m.lo != tc.lo || m.hi != tc.hi || m.proto != tc.proto {
			t.Errorf("%q: got %+v", tc.in, m)
		}
	}
}

func mustPolicy(t *testing.T, p Policy) *Policy {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestNameAndConn(t *testing.T) {
	pub := netip.MustParseAddr("93.184.216.34")
	lo2 := netip.MustParseAddr("127.0.0.2")
	lo1 := netip.MustParseAddr("127.0.0.1")
	meta := netip.MustParseAddr("169.254.169.254")
	egress := mustPolicy(t, Policy{Mode: ModeEgress, Rules: []Rule{
		Deny("bad.allowed.test"), Allow("*.allowed.test"), Allow("allowed.test:80/tcp"), Allow("127.0.0.2/32"),
	}})
	open := mustPolicy(t, Policy{Mode: ModeOpen, Rules: []Rule{Deny("denied.test"), Deny("93.184.0.0/16:22")}})
	none := mustPolicy(t, Policy{})

	names := []struct {
		p     *Policy
		name  string
		allow bool
	}{
		{egress, "allowed.test", true},
		{egress, "x.allowed.test", true},
		{egress, "bad.allowed.test", false},
		{egress, "denied.test", false},
		{egress, "aaaa.denied.test", false},
		{open, "anything.example", true},
		{open, "denied.test", false},
		{none, "allowed.test", false},
	}
	for _, tc := range names {
		if d := tc.p.Name(tc.name); d.Allow != tc.allow {
			t.Errorf("%s: Name(%s) = %+v, want allow=%v", tc.p, tc.name, d, tc.allow)
		}
	}

	conns := []struct {
		p       *Policy
		ip      netip.Addr
		port    uint16
		proto   string
		domains []string
		allow   bool
		domain  bool
	}{
		{egress, lo2, 80, "tcp", []string{"allowed.test"}, true, true},
		{egress, lo2, 81, "tcp", nil, true, false}, // the CIDR rule names it
		{egress, lo1, 80, "tcp", []string{"allowed.test"}, false, false},
		{egress, pub, 80, "tcp", nil, false, false}, // IP literal, no pin
		{egress, pub, 80, "tcp", []string{"allowed.test"}, true, true},
		{egress, pub, 80, "udp", []string{"allowed.test"}, false, false},
		{egress, pub, 443, "tcp", []string{"a.allowed.test"}, true, true},
		{egress, pub, 443, "tcp", []string{"bad.allowed.test"}, false, false},
		{egress, meta, 80, "tcp", nil, false, false},
		{open, pub, 443, "tcp", nil, true, false},
		{open, pub, 22, "tcp", nil, false, false},
		{open, lo1, 80, "tcp", nil, false, false},
		{open, meta, 80, "tcp", nil, false, false},
		{open, netip.MustParseAddr("192.168.1.1"), 80, "tcp", nil, false, false},
		{none, pub, 80, "tcp", nil, false, false},
	}
	for _, tc := range conns {
		d := tc.p.Conn(tc.ip, tc.port, tc.proto, tc.domains)
		if d.Allow != tc.allow || (d.Domain != nil) != tc.domain {
			t.Errorf("%s: Conn(%s:%d/%s %v) = %+v, want allow=%v domain=%v", tc.p, tc.ip, tc.port, tc.proto, tc.domains, d, tc.allow, tc.domain)
		}
	}
	if egress.AnswerAllowed(lo1) || !egress.AnswerAllowed(lo2) || !egress.AnswerAllowed(pub) {
		t.Error("AnswerAllowed: want only public answers and 127.0.0.2 (named by a rule)")
	}
}

func TestHostAndValidate(t *testing.T) {
	p := mustPolicy(t, Policy{Mode: ModeEgress, AllowHost: []int{8080}})
	if !p.Host(8080).Allow || p.Host(8081).Allow {
		t.Error("Host: want only 8080")
	}
	for _, bad := range []Policy{
		{Mode: "closed"},
		{Mode: ModeNone, Rules: []Rule{Allow("a.test")}},
		{Mode: ModeEgress, Rules: []Rule{{Action: "maybe", Match: "a.test"}}},
		{Mode: ModeEgress, AllowHost: []int{0}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: valid, want an error", bad)
		}
	}
}
