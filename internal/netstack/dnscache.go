package netstack

import (
	"sync"
	"time"
)

// dnsCache keeps upstream answers (A queries) by name for their TTL, at
// most maxCacheTTL; it holds at most max names.
type dnsCache struct {
	mu  sync.Mutex
	max int
	m   map[string]cached
}

type cached struct {
	rcode   int
	recs    []record
	expires time.Time
}

const maxCacheTTL = time.Minute

func newDNSCache(max int) *dnsCache { return &dnsCache{max: max, m: map[string]cached{}} }

func (c *dnsCache) get(name string) (int, []record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[name]
	if !ok || time.Now().After(e.expires) {
		delete(c.m, name)
		return 0, nil, false
	}
	return e.rcode, append([]record(nil), e.recs...), true
}

func (c *dnsCache) put(name string, rcode int, recs []record) {
	ttl := maxCacheTTL
	for _, r := range recs {
		if d := time.Duration(r.ttl) * time.Second; d < ttl {
			ttl = d
		}
	}
	if rcode != rcodeOK && rcode != rcodeNXDomain || ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k := range c.m { // drop an arbitrary entry
			delete(c.m, k)
			break
		}
	}
	c.m[name] = cached{rcode: rcode, recs: append([]record(nil), recs...), expires: time.Now().Add(ttl)}
}
