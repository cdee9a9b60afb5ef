// Package dnstest is a small DNS server for tests of the guest network: it
// listens on 127.0.0.1, answers A queries for the names it is given, and
// records every name it was asked, so a test can assert that a denied name
// never reached it.
package dnstest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// Server is a test resolver.
type Server struct {
	// Addr is its host:port on 127.0.0.1 (UDP).
	Addr  string
	conn  net.PacketConn
	mu    sync.Mutex
	names map[string]netip.Addr
	asked []string
}

// Start serves names (lower case, no trailing dot) until the test ends.
func Start(t testing.TB, names map[string]netip.Addr) *Server {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: c.LocalAddr().String(), conn: c, names: map[string]netip.Addr{}}
	for k, v := range names {
		s.names[k] = v
	}
	go s.serve()
	t.Cleanup(func() { c.Close() })
	return s
}

// Set adds or changes a name.
func (s *Server) Set(name string, a netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names[name] = a
}

// Asked returns every name asked so far, in order.
func (s *Server) Asked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

// AskedAbout reports whether any name asked ends with suffix.
func (s *Server) AskedAbout(suffix string) bool {
	for _, n := range s.Asked() {
		if n == suffix || strings.HasSuffix(n, "."+suffix) {
			return true
		}
	}
	return false
}

func (s *Server) serve() {
	buf := make([]byte, 4096)
	for {
		k, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if reply := s.answer(buf[:k]); reply != nil {
			s.conn.WriteTo(reply, from)
		}
	}
}

func (s *Server) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	var labels []string
	off := 12
	for off < len(q) && q[off] != 0 {
		l := int(q[off])
		if off+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[off+1:off+1+l]))
		off += 1 + l
	}
	off++
	if off+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[off:])
	name := strings.ToLower(strings.Join(labels, "."))
	s.mu.Lock()
	s.asked = append(s.asked, name)
	a, ok := s.names[name]
	s.mu.Unlock()
	r := append([]byte(nil), q[:off+4]...)
	r[2] = 0x80 | q[2]&0x01
	r[3] = 0x80
	binary.BigEndian.PutUint16(r[6:], 0)
	binary.BigEndian.PutUint16(r[8:], 0)
	binary.BigEndian.PutUint16(r[10:], 0)
	if !ok {
		r[3] |= 3 // NXDOMAIN
		return r
	}
	if qtype != 1 {
		return r
	}
	binary.BigEndian.PutUint16(r[6:], 1)
	r = append(r, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4)
	ip := a.As4()
	return append(r, ip[:]...)
}
