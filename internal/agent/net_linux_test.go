package agent

import (
	"testing"
	"unsafe"
)

func TestParseNetArg(t *testing.T) {
	c, err := parseNetArg("10.0.2.15/24,10.0.2.2,10.0.2.3")
	if err != nil || c.Addr.String() != "10.0.2.15/24" || c.Gateway.String() != "10.0.2.2" || c.DNS.String() != "10.0.2.3" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"", "10.0.2.15/24,10.0.2.2", "x/24,10.0.2.2,10.0.2.3", "::1/64,::2,::3"} {
		if _, err := parseNetArg(bad); err == nil {
			t.Errorf("%q: parsed", bad)
		}
	}
	if got := parseCmdline("hearth.root=/dev/vda hearth.net=10.0.2.15/24,10.0.2.2,10.0.2.3").Net; got != "10.0.2.15/24,10.0.2.2,10.0.2.3" {
		t.Errorf("cmdline net %q", got)
	}
}

// struct rtentry is 120 bytes on 64-bit Linux, with rt_dev at offset 88.
func TestRtentryLayout(t *testing.T) {
	var r rtentry
	if s := unsafe.Sizeof(r); s != 120 {
		t.Errorf("sizeof rtentry %d, want 120", s)
	}
	if o := unsafe.Offsetof(r.flags); o != 56 {
		t.Errorf("rt_flags at %d, want 56", o)
	}
	if o := unsafe.Offsetof(r.dev); o != 88 {
		t.Errorf("rt_dev at %d, want 88", o)
	}
}
