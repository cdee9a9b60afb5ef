package netstack

import (
	"net/netip"
	"sync"
)

// A guest cannot reach the host's loopback by address: 127.0.0.0/8 is its
// own. When a rule names a loopback range and an allowed name resolves
// into it, the stack gives the guest a stand-in address from LoopbackPool
// instead (routed to the gateway like any other) and maps connections to
// it back to the host's loopback address. The policy is always decided on
// the real address.

// LoopbackPool holds the guest's stand-ins for host loopback addresses.
var LoopbackPool = netip.MustParsePrefix("198.18.0.0/16")

type loopMap struct {
	mu     sync.Mutex
	toSyn  map[netip.Addr]netip.Addr
	toReal map[netip.Addr]netip.Addr
	next   uint32
}

func newLoopMap() *loopMap {
	return &loopMap{toSyn: map[netip.Addr]netip.Addr{}, toReal: map[netip.Addr]netip.Addr{}}
}

// guestAddr returns the stand-in for a host loopback address.
func (m *loopMap) guestAddr(real netip.Addr) netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.toSyn[real]; ok {
		return s
	}
	m.next++
	if m.next >= 1<<16-1 {
		m.next = 1
	}
	base := LoopbackPool.Addr().As4()
	s := netip.AddrFrom4([4]byte{base[0], base[1], byte(m.next >> 8), byte(m.next)})
	if old, ok := m.toReal[s]; ok {
		delete(m.toSyn, old)
	}
	m.toSyn[real], m.toReal[s] = s, real
	return s
}

// hostAddr maps a stand-in back to the host loopback address.
func (m *loopMap) hostAddr(a netip.Addr) (netip.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.toReal[a]
	return r, ok
}
