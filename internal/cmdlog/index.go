package cmdlog

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync/atomic"
)

// The index (commands.idx) lets a read find the newest journal line of
// one command without parsing the journal. It is derived data: any
// inconsistency (a crash mid-write, a journal rewritten by a prune) is
// detected and the index rebuilt from the journal.
//
// Layout, little endian, 16-byte slots:
//
//	slot 0:  magic "HCX1", 4 bytes reserved, covered (uint64): the journal
//	         length the index accounts for
//	slot n:  for command cmd-<n>: offset (uint64) and length (uint32) of
//	         its newest journal line (without the newline), and the
//	         line's CRC-32 (uint32); all zero when there is no such command
const (
	slotSize   = 16
	indexMagic = "HCX1"
)

var errStale = errors.New("command log index is stale")

// linesIndexed counts journal lines parsed to build or extend an index
// (tests check that reads of a current index parse none).
var linesIndexed atomic.Int64

type slot struct {
	off int64
	n   uint32
	crc uint32
}

type index struct{ f *os.File }

func openIndex(path string, write bool) (*index, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR | os.O_CREATE
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	return &index{f: f}, nil
}

func (x *index) Close() error { return x.f.Close() }

// covered returns how much of the journal the index accounts for, or
// errStale when the index is not one we can trust.
func (x *index) covered() (int64, error) {
	st, err := x.f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Size() < slotSize || st.Size()%slotSize != 0 {
		return 0, errStale
	}
	var h [slotSize]byte
	if _, err := x.f.ReadAt(h[:], 0); err != nil {
		return 0, errStale
	}
	if string(h[:4]) != indexMagic {
		return 0, errStale
	}
	return int64(binary.LittleEndian.Uint64(h[8:])), nil
}

// maxID is the highest command number with a slot.
func (x *index) maxID() (int64, error) {
	st, err := x.f.Stat()
	if err != nil {
		return 0, err
	}
	return max(st.Size()/slotSize-1, 0), nil
}

func (x *index) slot(n int64) (slot, error) {
	var b [slotSize]byte
	_, err := x.f.ReadAt(b[:], n*slotSize)
	if errors.Is(err, io.EOF) {
		return slot{}, nil
	}
	if err != nil {
		return slot{}, err
	}
	return slot{off: int64(binary.LittleEndian.Uint64(b[0:])), n: binary.LittleEndian.Uint32(b[8:]), crc: binary.LittleEndian.Uint32(b[12:])}, nil
}

func (x *index) setSlot(n int64, s slot) error {
	var b [slotSize]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(s.off))
	binary.LittleEndian.PutUint32(b[8:], s.n)
	binary.LittleEndian.PutUint32(b[12:], s.crc)
	_, err := x.f.WriteAt(b[:], n*slotSize)
	return err
}

func (x *index) setCovered(n int64) error {
	var h [slotSize]byte
	copy(h[:], indexMagic)
	binary.LittleEndian.PutUint64(h[8:], uint64(n))
	_, err := x.f.WriteAt(h[:], 0)
	return err
}

// reset empties the index.
func (x *index) reset() error {
	if err := x.f.Truncate(0); err != nil {
		return err
	}
	return x.setCovered(0)
}

// catchUp indexes the journal's complete lines from the covered offset on.
// A trailing line without its newline (a writer killed mid-line) is left
// uncovered; the next append terminates it and it is then skipped as
// garbage. The caller holds the log lock.
func (x *index) catchUp(journal string) error {
	from, err := x.covered()
	if err != nil {
		return err
	}
	f, err := os.Open(journal)
	if errors.Is(err, os.ErrNotExist) {
		if from != 0 {
			return errStale
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if from > st.Size() {
		return errStale
	}
	if from == st.Size() {
		return nil
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	off := from
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // a partial line, or none
		}
		if err != nil {
			return err
		}
		body := line[:len(line)-1]
		linesIndexed.Add(1)
		var e entry
		if json.Unmarshal(body, &e) == nil {
			if n, ok := parseID(e.ID); ok {
				if err := x.setSlot(n, slot{off: off, n: uint32(len(body)), crc: crc32.ChecksumIEEE(body)}); err != nil {
					return err
				}
			}
		}
		off += int64(len(line))
	}
	return x.setCovered(off)
}

// rebuild indexes the whole journal again.
func (x *index) rebuild(journal string) error {
	if err := x.reset(); err != nil {
		return err
	}
	return x.catchUp(journal)
}

// readLine reads and checks the journal line a slot points to.
func readLine(j *os.File, s slot, n int64) (*entry, error) {
	if s.n == 0 {
		return nil, nil
	}
	b := make([]byte, s.n)
	if _, err := j.ReadAt(b, s.off); err != nil {
		return nil, fmt.Errorf("%w: %v", errStale, err)
	}
	if crc32.ChecksumIEEE(b) != s.crc {
		return nil, errStale
	}
	var e entry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, errStale
	}
	if m, ok := parseID(e.ID); !ok || m != n {
		return nil, errStale
	}
	return &e, nil
}
