package netstack

import (
	"bytes"
	"encoding/binary"
	"net"
	"strings"
)

// sniffName returns the server name the first bytes of a client's stream
// ask for: the TLS SNI of a ClientHello, or the Host header of an HTTP
// request. complete is false while more bytes could still change the
// answer.
func sniffName(b []byte) (name string, complete bool) {
	if len(b) == 0 {
		return "", false
	}
	if b[0] == 0x16 { // TLS handshake record
		return sniffSNI(b)
	}
	return sniffHost(b)
}

func sniffHost(b []byte) (string, bool) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	complete := end >= 0
	if !complete {
		end = len(b)
	}
	for _, line := range strings.Split(string(b[:end]), "\r\n")[1:] {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "host") {
			h := strings.TrimSpace(v)
			if host, _, err := net.SplitHostPort(h); err == nil {
				h = host
			}
			return strings.ToLower(strings.TrimSuffix(h, ".")), true
		}
	}
	return "", complete
}

// sniffSNI parses a TLS ClientHello (one record) for its server_name.
func sniffSNI(b []byte) (string, bool) {
	if len(b) < 5 {
		return "", false
	}
	n := int(binary.BigEndian.Uint16(b[3:]))
	if len(b) < 5+n {
		return "", false
	}
	h := b[5 : 5+n]
	if len(h) < 4 || h[0] != 1 { // ClientHello
		return "", true
	}
	p := h[4:]
	skip := func(k int) bool {
		if len(p) < k {
			return false
		}
		p = p[k:]
		return true
	}
	vec := func(lenBytes int) bool {
		if len(p) < lenBytes {
			return false
		}
		var l int
		if lenBytes == 1 {
			l = int(p[0])
		} else {
			l = int(binary.BigEndian.Uint16(p))
		}
		return skip(lenBytes + l)
	}
	if !skip(2+32) || !vec(1) || !vec(2) || !vec(1) || len(p) < 2 {
		return "", true
	}
	p = p[2:]
	for len(p) >= 4 {
		typ, l := binary.BigEndian.Uint16(p), int(binary.BigEndian.Uint16(p[2:]))
		if len(p) < 4+l {
			break
		}
		ext := p[4 : 4+l]
		p = p[4+l:]
		if typ != 0 || len(ext) < 5 {
			continue
		}
		if ext[2] == 0 {
			nl := int(binary.BigEndian.Uint16(ext[3:]))
			if len(ext) >= 5+nl {
				return strings.ToLower(strings.TrimSuffix(string(ext[5:5+nl]), ".")), true
			}
		}
	}
	return "", true
}
