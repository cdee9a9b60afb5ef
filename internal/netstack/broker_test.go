package netstack

import (
	"net/netip"
	"testing"

	"github.com/hearthvm/hearth/internal/egress"
	"github.com/hearthvm/hearth/internal/secrets"
)

// TestBrokerName: a connection is brokered only for a covered name this
// workspace resolved to the connection's address, or a covered address
// the guest dialled with no other name.
func TestBrokerName(t *testing.T) {
	brk := &egress.Proxy{Broker: secrets.NewBroker([]secrets.BrokerRule{
		{Name: "K", Placeholder: "p", Hosts: []string{"api.test", "10.9.8.7", "alt.test:8443"}, Headers: []string{"Authorization"}},
	})}
	addr := netip.MustParseAddr("10.1.1.1")
	cases := []struct {
		what    string
		got     string
		domains []string
		dst     netip.Addr
		port    uint16
		want    string
		ok      bool
	}{
		{"pinned covered name", "api.test", []string{"api.test"}, addr, 443, "api.test", true},
		{"plain HTTP", "api.test", []string{"other.test", "api.test"}, addr, 80, "api.test", true},
		{"name claimed, not resolved to this address", "api.test", []string{"other.test"}, addr, 443, "", false},
		{"covered name on another port", "api.test", []string{"api.test"}, addr, 22, "", false},
		{"port the rule names", "alt.test", []string{"alt.test"}, addr, 8443, "alt.test", true},
		{"uncovered name", "other.test", []string{"other.test"}, addr, 443, "", false},
		{"covered address, no SNI", "", nil, netip.MustParseAddr("10.9.8.7"), 443, "10.9.8.7", true},
		{"covered address, Host is the address", "10.9.8.7", nil, netip.MustParseAddr("10.9.8.7"), 80, "10.9.8.7", true},
		{"covered address, another name asked", "evil.test", []string{"evil.test"}, netip.MustParseAddr("10.9.8.7"), 443, "", false},
		{"nothing sniffed", "", []string{"api.test"}, addr, 443, "", false},
	}
	for _, c := range cases {
		name, ok := brokerName(brk, c.got, c.domains, c.dst, c.port)
		if name != c.want || ok != c.ok {
			t.Errorf("%s: got %q %v, want %q %v", c.what, name, ok, c.want, c.ok)
		}
	}
}
