package secrets

import "testing"

func TestBrokerSubstitute(t *testing.T) {
	b := NewBroker([]BrokerRule{{Name: "K", Placeholder: "ph-123", Hosts: []string{"api.example.com", "127.0.0.1:8443"}, Headers: []string{"Authorization"}, Value: []byte("real")}})
	for _, tc := range []struct {
		host, header, in, want string
		ok                     bool
	}{
		{"api.example.com", "authorization", "Bearer ph-123", "Bearer real", true},
		{"API.example.com:443", "Authorization", "Bearer ph-123", "Bearer real", true},
		{"127.0.0.1:8443", "Authorization", "ph-123", "real", true},
		{"127.0.0.1:9999", "Authorization", "ph-123", "ph-123", false},
		{"other.example.com", "Authorization", "Bearer ph-123", "Bearer ph-123", false},
		{"api.example.com", "X-Other", "ph-123", "ph-123", false},
	} {
		got, ok := b.Substitute(tc.host, tc.header, tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s %s %q: %q %v, want %q %v", tc.host, tc.header, tc.in, got, ok, tc.want, tc.ok)
		}
	}
	var nb *Broker
	if v, ok := nb.Substitute("h", "Authorization", "x"); v != "x" || ok {
		t.Fatal("nil broker substituted")
	}
}

func TestStoreBroker(t *testing.T) {
	s := Open(t.TempDir())
	if _, err := s.Set("K", []byte("real-value"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := s.Broker([]Exposure{{Name: "K", Mode: ModeBrokered, Placeholder: "ph-1", Hosts: []string{"h.example"}, Headers: []string{"Authorization"}}, {Name: "K", Mode: ModeEnv}})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := b.Substitute("h.example", "Authorization", "Bearer ph-1"); !ok || v != "Bearer real-value" {
		t.Fatalf("%q %v", v, ok)
	}
	if _, err := s.Broker([]Exposure{{Name: "GONE", Mode: ModeBrokered}}); err == nil {
		t.Fatal("unknown secret accepted")
	}
}

// TestBrokerCovers: a rule's host without a port covers HTTP and HTTPS
// (80, 443); with a port, that port only.
func TestBrokerCovers(t *testing.T) {
	b := NewBroker([]BrokerRule{
		{Name: "A", Placeholder: "p", Hosts: []string{"api.test", "*.wild.test", "10.9.8.7", "alt.test:8443"}, Headers: []string{"Authorization"}},
	})
	cases := []struct {
		name string
		port int
		want bool
	}{
		{"api.test", 443, true},
		{"API.test", 80, true},
		{"api.test", 22, false},
		{"x.wild.test", 443, true},
		{"wild.test", 443, false},
		{"10.9.8.7", 443, true},
		{"10.9.8.7", 8443, false},
		{"alt.test", 8443, true},
		{"alt.test", 443, false},
		{"other.test", 443, false},
	}
	for _, c := range cases {
		if got := b.Covers(c.name, c.port); got != c.want {
			t.Errorf("Covers(%s, %d) = %v, want %v", c.name, c.port, got, c.want)
		}
	}
	var none *Broker
	if none.Covers("api.test", 443) {
		t.Error("a nil broker covers a host")
	}
}
