package netstack

import (
	"net/netip"
	"slices"
	"sync"
)

// pinTable remembers which names this workspace resolved to which
// addresses (DNS pins); domain rules match connections only through them.
// It keeps at most max addresses, forgetting the least recently pinned.
type pinTable struct {
	mu   sync.Mutex
	max  int
	seq  uint64
	byIP map[netip.Addr]*pin
}

type pin struct {
	names []string
	seq   uint64
}

func newPinTable(max int) *pinTable {
	return &pinTable{max: max, byIP: map[netip.Addr]*pin{}}
}

func (t *pinTable) add(ip netip.Addr, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	p := t.byIP[ip]
	if p == nil {
		if len(t.byIP) >= t.max {
			var oldest netip.Addr
			var min uint64 = ^uint64(0)
			for a, q := range t.byIP {
				if q.seq < min {
					oldest, min = a, q.seq
				}
			}
			delete(t.byIP, oldest)
		}
		p = &pin{}
		t.byIP[ip] = p
	}
	p.seq = t.seq
	if !slices.Contains(p.names, name) {
		p.names = append(p.names, name)
		if len(p.names) > 16 {
			p.names = p.names[1:]
		}
	}
}

func (t *pinTable) names(ip netip.Addr) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.byIP[ip]; p != nil {
		return slices.Clone(p.names)
	}
	return nil
}
