package netstack

import (
	"encoding/binary"
	"errors"
	"strings"
)

// A minimal DNS codec: enough to read a guest's question, ask an upstream
// resolver for A records and rebuild a filtered answer.

// DNS constants.
const (
	typeA     = 1
	typeCNAME = 5
	typeAAAA  = 28
	classIN   = 1

	rcodeOK       = 0
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeRefused  = 5
)

type question struct {
	id     uint16
	flags  uint16
	name   string // lower case, no trailing dot
	qtype  uint16
	qclass uint16
}

type record struct {
	name  string
	rtype uint16
	ttl   uint32
	data  []byte // A: 4 bytes
	cname string // CNAME target
}

var errShort = errors.New("dns: message too short")

// readName reads a (possibly compressed) name at off; it returns the name
// and the offset just past it in the original position.
func readName(msg []byte, off int) (string, int, error) {
	var labels []string
	end := -1
	for hops := 0; ; hops++ {
		if off >= len(msg) || hops > 64 {
			return "", 0, errShort
		}
		l := int(msg[off])
		switch {
		case l == 0:
			if end < 0 {
				end = off + 1
			}
			name := strings.ToLower(strings.Join(labels, "."))
			if len(name) > 253 {
				return "", 0, errors.New("dns: name too long")
			}
			return name, end, nil
		case l&0xc0 == 0xc0:
			if off+1 >= len(msg) {
				return "", 0, errShort
			}
			if end < 0 {
				end = off + 2
			}
			off = int(binary.BigEndian.Uint16(msg[off:]) & 0x3fff)
		case l > 63:
			return "", 0, errors.New("dns: bad label")
		default:
			if off+1+l > len(msg) {
				return "", 0, errShort
			}
			labels = append(labels, string(msg[off+1:off+1+l]))
			off += 1 + l
		}
	}
}

func appendName(b []byte, name string) []byte {
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	return append(b, 0)
}

// parseQuestion reads a query's header and first question.
func parseQuestion(msg []byte) (*question, error) {
	if len(msg) < 12 {
		return nil, errShort
	}
	q := &question{id: binary.BigEndian.Uint16(msg), flags: binary.BigEndian.Uint16(msg[2:])}
	if q.flags&0x8000 != 0 {
		return nil, errors.New("dns: not a query")
	}
	if binary.BigEndian.Uint16(msg[4:]) != 1 {
		return nil, errors.New("dns: want exactly one question")
	}
	name, off, err := readName(msg, 12)
	if err != nil {
		return nil, err
	}
	if off+4 > len(msg) {
		return nil, errShort
	}
	q.name, q.qtype, q.qclass = name, binary.BigEndian.Uint16(msg[off:]), binary.BigEndian.Uint16(msg[off+2:])
	return q, nil
}

// query builds a recursive query for q.name/q.qtype with the given id.
func (q *question) query(id uint16) []byte {
	b := make([]byte, 12, 64)
	binary.BigEndian.PutUint16(b, id)
	binary.BigEndian.PutUint16(b[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(b[4:], 1)
	b = appendName(b, q.name)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, q.qtype), classIN)
}

// reply builds the guest's answer to q.
func (q *question) reply(rcode int, answers []record) []byte {
	b := make([]byte, 12, 512)
	binary.BigEndian.PutUint16(b, q.id)
	flags := uint16(0x8000|0x0080) | q.flags&0x7900 | uint16(rcode) // QR, RA, opcode+RD from the query
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], 1)
	binary.BigEndian.PutUint16(b[6:], uint16(len(answers)))
	b = appendName(b, q.name)
	b = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, q.qtype), q.qclass)
	for _, r := range answers {
		b = appendName(b, r.name)
		b = binary.BigEndian.AppendUint16(b, r.rtype)
		b = binary.BigEndian.AppendUint16(b, classIN)
		b = binary.BigEndian.AppendUint32(b, r.ttl)
		data := r.data
		if r.rtype == typeCNAME {
			data = appendName(nil, r.cname)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
		b = append(b, data...)
	}
	return b
}

// parseAnswer reads an upstream response: its id, rcode and A and CNAME
// answers (other records are ignored).
func parseAnswer(msg []byte) (id uint16, rcode int, recs []record, err error) {
	if len(msg) < 12 {
		return 0, 0, nil, errShort
	}
	id = binary.BigEndian.Uint16(msg)
	flags := binary.BigEndian.Uint16(msg[2:])
	if flags&0x8000 == 0 {
		return 0, 0, nil, errors.New("dns: not a response")
	}
	if flags&0x0200 != 0 {
		return 0, 0, nil, errors.New("dns: truncated response")
	}
	rcode = int(flags & 0xf)
	qd, an := int(binary.BigEndian.Uint16(msg[4:])), int(binary.BigEndian.Uint16(msg[6:]))
	off := 12
	for i := 0; i < qd; i++ {
		if _, off, err = readName(msg, off); err != nil {
			return 0, 0, nil, err
		}
		off += 4
	}
	for i := 0; i < an; i++ {
		var r record
		if r.name, off, err = readName(msg, off); err != nil {
			return 0, 0, nil, err
		}
		if off+10 > len(msg) {
			return 0, 0, nil, errShort
		}
		r.rtype = binary.BigEndian.Uint16(msg[off:])
		class := binary.BigEndian.Uint16(msg[off+2:])
		r.ttl = binary.BigEndian.Uint32(msg[off+4:])
		n := int(binary.BigEndian.Uint16(msg[off+8:]))
		off += 10
		if off+n > len(msg) {
			return 0, 0, nil, errShort
		}
		if class == classIN {
			switch {
			case r.rtype == typeA && n == 4:
				r.data = append([]byte(nil), msg[off:off+4]...)
				recs = append(recs, r)
			case r.rtype == typeCNAME:
				if r.cname, _, err = readName(msg, off); err != nil {
					return 0, 0, nil, err
				}
				recs = append(recs, r)
			}
		}
		off += n
	}
	return id, rcode, recs, nil
}
