package diskfs

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// Inodes are read natively: one pread of the inode record, located
// through the superblock and the group descriptor table. Listing a large
// directory stats every entry, and one debugfs `stat` costs about half a
// millisecond; a pread costs microseconds. Directories and file contents
// (extent trees, htree directories) stay with debugfs. An image this
// reader does not understand (meta_bg) falls back to debugfs.

// inodeTable locates inode records in an image.
type inodeTable struct {
	path           string
	blockSize      int64
	inodesPerGroup uint32
	inodesCount    uint32
	inodeSize      int64
	descSize       int64
	gdtOffset      int64
	groups         uint32
	fileSize       int64
}

// Feature bits.
const (
	incompatMetaBG = 0x10
	incompat64Bit  = 0x80
	extentsFlag    = 0x80000
	inlineDataFlag = 0x10000000
)

// openInodeTable reads the superblock; nil when the layout is one it does
// not handle.
func openInodeTable(path string) (*inodeTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var sb [1024]byte
	if _, err := f.ReadAt(sb[:], 1024); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	t := &inodeTable{path: path, fileSize: fi.Size()}
	logBS := le.Uint32(sb[24:])
	if logBS > 6 {
		return nil, fmt.Errorf("block size 2^%d: %w", 10+logBS, errCorrupt)
	}
	t.blockSize = 1024 << logBS
	t.inodesCount = le.Uint32(sb[0:])
	t.inodesPerGroup = le.Uint32(sb[40:])
	firstData := int64(le.Uint32(sb[20:]))
	if le.Uint32(sb[76:]) >= 1 {
		t.inodeSize = int64(le.Uint16(sb[88:]))
	} else {
		t.inodeSize = 128
	}
	incompat := le.Uint32(sb[96:])
	if incompat&incompatMetaBG != 0 {
		return nil, nil
	}
	t.descSize = 32
	if incompat&incompat64Bit != 0 {
		t.descSize = int64(le.Uint16(sb[254:]))
	}
	if t.inodesPerGroup == 0 || t.inodeSize < 128 || t.inodeSize > t.blockSize || t.descSize < 32 {
		return nil, errCorrupt
	}
	t.groups = (t.inodesCount + t.inodesPerGroup - 1) / t.inodesPerGroup
	t.gdtOffset = (firstData + 1) * t.blockSize
	return t, nil
}

var errCorrupt = fmt.Errorf("inconsistent superblock or group descriptors: %w", errdefs.ErrFailedPrecondition)

// read returns the raw inode records of inos.
func (t *inodeTable) stat(inos []uint64) (map[uint64]*Inode, error) {
	f, err := os.Open(t.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	le := binary.LittleEndian
	tables := map[uint32]int64{}
	rec := make([]byte, t.inodeSize)
	out := make(map[uint64]*Inode, len(inos))
	for _, n := range inos {
		if n == 0 || n > uint64(t.inodesCount) {
			return nil, fmt.Errorf("inode %d out of range: %w", n, errCorrupt)
		}
		g := uint32((n - 1) / uint64(t.inodesPerGroup))
		tbl, ok := tables[g]
		if !ok {
			var d [64]byte
			if _, err := f.ReadAt(d[:t.descSize], t.gdtOffset+int64(g)*t.descSize); err != nil {
				return nil, fmt.Errorf("group descriptor %d: %w", g, errCorrupt)
			}
			blk := int64(le.Uint32(d[8:]))
			if t.descSize >= 64 {
				blk |= int64(le.Uint32(d[40:])) << 32
			}
			tbl = blk * t.blockSize
			if blk == 0 || tbl >= t.fileSize {
				return nil, fmt.Errorf("group %d has no inode table: %w", g, errCorrupt)
			}
			tables[g] = tbl
		}
		off := tbl + int64((n-1)%uint64(t.inodesPerGroup))*t.inodeSize
		if _, err := f.ReadAt(rec, off); err != nil {
			return nil, fmt.Errorf("inode %d: %w", n, errCorrupt)
		}
		in, err := t.decode(f, n, rec)
		if err != nil {
			return nil, err
		}
		out[n] = in
	}
	return out, nil
}

func (t *inodeTable) decode(f *os.File, n uint64, r []byte) (*Inode, error) {
	le := binary.LittleEndian
	in := &Inode{Ino: n, Xattrs: map[string]string{}}
	in.Mode = uint32(le.Uint16(r[0:]))
	in.UID = int(le.Uint16(r[2:])) | int(le.Uint16(r[0x78:]))<<16
	in.GID = int(le.Uint16(r[0x18:])) | int(le.Uint16(r[0x7A:]))<<16
	in.Size = int64(le.Uint32(r[4:])) | int64(le.Uint32(r[0x6C:]))<<32
	flags := le.Uint32(r[0x20:])
	sec := int64(int32(le.Uint32(r[0x10:])))
	var nsec int64
	extra := int64(0)
	if t.inodeSize > 128 {
		extra = int64(le.Uint16(r[0x80:]))
		if 128+extra > t.inodeSize {
			return nil, fmt.Errorf("inode %d: extra size %d: %w", n, extra, errCorrupt)
		}
		if extra >= 12 {
			e := le.Uint32(r[0x88:])
			sec += int64(e&3) << 32
			nsec = int64(e >> 2)
		}
	}
	in.Mtime = time.Unix(sec, nsec)
	blk := r[0x28 : 0x28+60]
	switch in.Mode & ModeType {
	case ModeLnk:
		if in.Size < 60 && flags&(extentsFlag|inlineDataFlag) == 0 {
			in.FastLink, in.HasFastLink = string(blk[:in.Size]), true
		}
	case ModeChr, 0o060000:
		if old := le.Uint32(blk[0:]); old != 0 {
			in.RdevMaj, in.RdevMin = (old>>8)&0xff, old&0xff
		} else {
			nw := le.Uint32(blk[4:])
			in.RdevMaj, in.RdevMin = (nw&0xfff00)>>8, (nw&0xff)|((nw>>12)&0xfff00)
		}
	}
	// Extended attributes: in the inode after its extra fields, and in
	// an external block.
	if t.inodeSize > 128 && 128+extra+4 <= t.inodeSize {
		body := r[128+extra:]
		if le.Uint32(body) == 0xEA020000 {
			parseXattrs(body[4:], body[4:], in.Xattrs)
		}
	}
	if acl := int64(le.Uint32(r[0x68:])) | int64(le.Uint16(r[0x76:]))<<32; acl != 0 {
		b := make([]byte, t.blockSize)
		if acl*t.blockSize >= t.fileSize {
			return nil, fmt.Errorf("inode %d: xattr block %d: %w", n, acl, errCorrupt)
		}
		if _, err := f.ReadAt(b, acl*t.blockSize); err == nil && le.Uint32(b) == 0xEA020000 {
			parseXattrs(b[32:], b, in.Xattrs)
		}
	}
	return in, nil
}

// xattrPrefix maps a name index to its prefix (the ones overlayfs uses).
var xattrPrefix = map[byte]string{1: "user.", 4: "trusted.", 6: "security."}

// parseXattrs reads xattr entries from ents; values are at offsets from
// base. Only short values are kept (overlay's markers are).
func parseXattrs(ents, base []byte, out map[string]string) {
	le := binary.LittleEndian
	for len(ents) >= 16 {
		nameLen := int(ents[0])
		if nameLen == 0 && ents[1] == 0 && le.Uint16(ents[2:]) == 0 {
			return // end of entries
		}
		if 16+nameLen > len(ents) {
			return
		}
		idx := ents[1]
		voff, vinum, vsize := int(le.Uint16(ents[2:])), le.Uint32(ents[4:]), int(le.Uint32(ents[8:]))
		name := xattrPrefix[idx] + string(ents[16:16+nameLen])
		if p, ok := xattrPrefix[idx]; ok && p != "" && vinum == 0 && vsize <= 256 && voff+vsize <= len(base) {
			out[name] = string(base[voff : voff+vsize])
		}
		ents = ents[(16+nameLen+3)&^3:]
	}
}
