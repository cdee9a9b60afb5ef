package reliability

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// corpusItem is one hostile input: an archive file, a directory, or both.
type corpusItem struct {
	name string
	// archive is a .tar, .tar.gz or .zip file (seed, disk import); dir a
	// host directory (sync push, and seed and disk import too).
	archive, dir string
	// escapeName: entries whose name contains it must not appear outside
	// the target (host or guest).
}

const escapeMark = "hearth-escape"

// canary is a host directory hostile inputs aim at.
type canary struct {
	dir   string
	state string
}

func newCanary(dir string) (*canary, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		return nil, err
	}
	for _, f := range []string{"canary.txt", "sub/secret.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("canary "+f+" "+time.Now().String()), 0o644); err != nil {
			return nil, err
		}
	}
	c := &canary{dir: dir}
	c.state = c.snapshot()
	return c, nil
}

// snapshot lists every name under the canary with its size, mode, mtime
// and contents' hash.
func (c *canary) snapshot() string {
	var b strings.Builder
	filepath.Walk(c.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			fmt.Fprintf(&b, "%s error %v\n", p, err)
			return nil
		}
		data := ""
		if fi.Mode().IsRegular() {
			d, _ := os.ReadFile(p)
			data = fmt.Sprintf("%x", d)
		}
		fmt.Fprintf(&b, "%s %v %d %d %s\n", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), data)
		return nil
	})
	return b.String()
}

// changed says what differs from the first snapshot ("" when nothing).
func (c *canary) changed() string {
	now := c.snapshot()
	if now == c.state {
		return ""
	}
	return fmt.Sprintf("canary changed:\nbefore:\n%s\nafter:\n%s", c.state, now)
}

// corpus generates the hostile inputs under dir, aimed at canary dir cd.
func corpus(dir, cd string, cfg config) ([]corpusItem, error) {
	var items []corpusItem
	rel := strings.Repeat("../", 24) + strings.TrimPrefix(cd, "/")
	type ent struct {
		h    tar.Header
		data []byte
	}
	file := func(name, data string) ent {
		return ent{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1e9, 0)}, []byte(data)}
	}
	link := func(typ byte, name, target string) ent {
		return ent{h: tar.Header{Typeflag: typ, Name: name, Linkname: target, Mode: 0o777, ModTime: time.Unix(1e9, 0)}}
	}
	special := func(typ byte, name string, major, minor int64) ent {
		return ent{h: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor, ModTime: time.Unix(1e9, 0)}}
	}
	tars := []struct {
		name string
		ents []ent
	}{
		{"traversal", []ent{file("ok.txt", "ok"), file(rel+"/"+escapeMark+"-trav", "escaped")}},
		{"traversal-inner", []ent{file("a/../../"+escapeMark+"-inner", "escaped")}},
		{"absolute-path", []ent{file("ok.txt", "ok"), file(cd+"/"+escapeMark+"-abs", "escaped")}},
		{"symlink-out-abs-then-write", []ent{link(tar.TypeSymlink, "out", cd), file("out/"+escapeMark+"-via-link", "escaped")}},
		{"symlink-out-rel-then-write", []ent{link(tar.TypeSymlink, "up", strings.Repeat("../", 24)), file("up/"+strings.TrimPrefix(cd, "/")+"/"+escapeMark+"-via-rel", "escaped")}},
		{"symlink-out-abs", []ent{file("ok.txt", "ok"), link(tar.TypeSymlink, "passwd", "/etc/passwd")}},
		{"symlink-out-rel", []ent{link(tar.TypeSymlink, "up", "../../../../../../../../etc")}},
		{"hardlink-out-abs", []ent{link(tar.TypeLink, "hl", cd+"/canary.txt")}},
		{"hardlink-out-rel", []ent{link(tar.TypeLink, "hl", rel+"/canary.txt")}},
		{"hardlink-then-write", []ent{file("f", "x"), link(tar.TypeLink, "hl", cd+"/canary.txt"), file("hl", "overwritten")}},
		{"device-nodes", []ent{file("ok.txt", "ok"), special(tar.TypeChar, "null2", 1, 3), special(tar.TypeBlock, "vda2", 254, 0), special(tar.TypeChar, "mem", 1, 1)}},
		{"fifo", []ent{file("ok.txt", "ok"), special(tar.TypeFifo, "pipe", 0, 0)}},
		{"non-utf8-names", []ent{file("caf\xe9.txt", "latin-1"), file("\xff\xfe\x80bin", "bytes"), file("ok.txt", "ok")}},
		{"duplicate-file-vs-dir", []ent{file("d", "file"), {h: tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o755}}, file("d/x", "x")}},
	}
	for _, t := range tars {
		p := filepath.Join(dir, t.name+".tar")
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range t.ents {
			h := e.h
			h.Format = tar.FormatPAX
			if err := tw.WriteHeader(&h); err != nil {
				return nil, fmt.Errorf("corpus %s: %w", t.name, err)
			}
			tw.Write(e.data)
		}
		tw.Close()
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		items = append(items, corpusItem{name: t.name, archive: p})
	}
	// A huge single file: the header promises 1 TiB, the data stops short.
	{
		p := filepath.Join(dir, "huge-file-truncated.tar")
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "huge", Mode: 0o644, Size: 1 << 40})
		tw.Write(make([]byte, 1<<20))
		os.WriteFile(p, buf.Bytes(), 0o644) // no Close: the archive is cut
		items = append(items, corpusItem{name: "huge-file-truncated (1 TiB declared)", archive: p})
	}
	// Zip entries: traversal, absolute, symlink out (zip symlinks are
	// entries with the symlink mode whose content is the target).
	{
		p := filepath.Join(dir, "zip-hostile.zip")
		f, err := os.Create(p)
		if err != nil {
			return nil, err
		}
		zw := zip.NewWriter(f)
		w, _ := zw.Create("../../" + escapeMark + "-zip-trav")
		w.Write([]byte("escaped"))
		w, _ = zw.Create(cd + "/" + escapeMark + "-zip-abs")
		w.Write([]byte("escaped"))
		zw.Close()
		f.Close()
		items = append(items, corpusItem{name: "zip-traversal-absolute", archive: p})
		p = filepath.Join(dir, "zip-symlink.zip")
		f, _ = os.Create(p)
		zw = zip.NewWriter(f)
		h := &zip.FileHeader{Name: "out", Method: zip.Store}
		h.SetMode(os.ModeSymlink | 0o777)
		w, _ = zw.CreateHeader(h)
		w.Write([]byte(cd))
		w, _ = zw.Create("out/" + escapeMark + "-zip-link")
		w.Write([]byte("escaped"))
		zw.Close()
		f.Close()
		items = append(items, corpusItem{name: "zip-symlink-out-then-write", archive: p})
	}
	// Bombs: zip and gzip whose one file expands to BombMiB of zeros.
	bomb := int64(cfg.BombMiB) << 20
	if p, err := zipBomb(filepath.Join(dir, "zip-bomb.zip"), bomb); err != nil {
		return nil, err
	} else {
		items = append(items, corpusItem{name: fmt.Sprintf("zip-bomb (%d MiB)", cfg.BombMiB), archive: p})
	}
	if p, err := zipBombDeclaring(filepath.Join(dir, "zip-bomb-lying.zip"), bomb, 1<<20); err != nil {
		return nil, err
	} else {
		items = append(items, corpusItem{name: fmt.Sprintf("zip-bomb declaring 1 MiB (%d MiB)", cfg.BombMiB), archive: p})
	}
	if p, err := gzipBomb(filepath.Join(dir, "gzip-bomb.tar.gz"), bomb); err != nil {
		return nil, err
	} else {
		items = append(items, corpusItem{name: fmt.Sprintf("gzip-bomb (%d MiB)", cfg.BombMiB), archive: p})
	}
	// Many entries (a tar.gz of empty files).
	if cfg.Entries > 0 {
		p := filepath.Join(dir, "many-entries.tar.gz")
		f, err := os.Create(p)
		if err != nil {
			return nil, err
		}
		gz, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
		tw := tar.NewWriter(gz)
		for i := range cfg.Entries {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("d%03d/f%07d", i%1000, i), Mode: 0o644})
		}
		tw.Close()
		gz.Close()
		f.Close()
		items = append(items, corpusItem{name: fmt.Sprintf("many-entries (%d)", cfg.Entries), archive: p})
	}
	// Directories (sync push takes only directories; seed and disk import
	// take them too).
	mkdir := func(name string, fill func(d string) error) error {
		d := filepath.Join(dir, "dir-"+name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		os.WriteFile(filepath.Join(d, "ok.txt"), []byte("ok"), 0o644)
		if err := fill(d); err != nil {
			return fmt.Errorf("corpus dir %s: %w", name, err)
		}
		items = append(items, corpusItem{name: "dir " + name, dir: d})
		return nil
	}
	dirs := []struct {
		name string
		fill func(d string) error
	}{
		{"symlink-out-abs", func(d string) error { return os.Symlink(cd, filepath.Join(d, "out")) }},
		{"symlink-out-rel", func(d string) error { return os.Symlink(strings.Repeat("../", 24)+"etc", filepath.Join(d, "up")) }},
		{"hardlink-to-outside", func(d string) error { return os.Link(filepath.Join(cd, "canary.txt"), filepath.Join(d, "hl")) }},
		{"device-node", func(d string) error {
			return syscall.Mknod(filepath.Join(d, "null2"), syscall.S_IFCHR|0o666, 1<<8|3)
		}},
		{"fifo", func(d string) error { return syscall.Mkfifo(filepath.Join(d, "pipe"), 0o644) }},
		{"socket", func(d string) error {
			fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				return err
			}
			defer syscall.Close(fd)
			return syscall.Bind(fd, &syscall.SockaddrUnix{Name: filepath.Join(d, "sock")})
		}},
		{"non-utf8-names", func(d string) error {
			return os.WriteFile(filepath.Join(d, "caf\xe9-\xff.txt"), []byte("latin-1"), 0o644)
		}},
	}
	for _, x := range dirs {
		if err := mkdir(x.name, x.fill); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// bombByte fills the bombs: not zero, so that no sparse-file shortcut
// (holes) makes them cheap to store.
const bombByte = 'A'

func filled(n int64) []byte { return bytes.Repeat([]byte{bombByte}, int(n)) }

// zipBomb writes a zip whose one file inflates to size bytes of one
// repeated byte: a deflate segment, flushed so that segments concatenate,
// repeated, then a final empty block.
func zipBomb(p string, size int64) (string, error) { return zipBombDeclaring(p, size, size) }

// zipBombDeclaring is zipBomb whose directory declares declared bytes (a
// zip that lies about its size).
func zipBombDeclaring(p string, size, declared int64) (string, error) {
	const seg = 64 << 20
	chunk := filled(seg)
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestCompression)
	fw.Write(chunk)
	fw.Flush()
	segment := comp.Bytes()
	n := size / seg
	rest := filled(size - n*seg)
	var restComp bytes.Buffer
	fw, _ = flate.NewWriter(&restComp, flate.BestCompression)
	fw.Write(rest)
	fw.Close() // its last block is final
	crc := uint32(0)
	for range n {
		crc = crc32.Update(crc, crc32.IEEETable, chunk)
	}
	crc = crc32.Update(crc, crc32.IEEETable, rest)
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "bomb.bin", Method: zip.Deflate, CRC32: crc,
		CompressedSize64: uint64(int64(len(segment))*n + int64(restComp.Len())), UncompressedSize64: uint64(declared)})
	if err != nil {
		return "", err
	}
	for range n {
		if _, err := w.Write(segment); err != nil {
			return "", err
		}
	}
	w.Write(restComp.Bytes())
	return p, zw.Close()
}

// gzipBomb writes a tar.gz whose one file is size bytes of one repeated
// byte, as concatenated gzip members (the header, then the content).
func gzipBomb(p string, size int64) (string, error) {
	const seg = 64 << 20
	member := func(b []byte) []byte {
		var out bytes.Buffer
		gz, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
		gz.Write(b)
		gz.Close()
		return out.Bytes()
	}
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bomb.bin", Mode: 0o644, Size: size})
	chunk := member(filled(seg))
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(member(hdr.Bytes())); err != nil {
		return "", err
	}
	n := size / seg
	for range n {
		if _, err := f.Write(chunk); err != nil {
			return "", err
		}
	}
	// The rest of the file, its padding to 512 bytes, and the two zero
	// blocks that end a tar.
	rest := size - n*seg
	tail := append(filled(rest), make([]byte, (512-size%512)%512+1024)...)
	if _, err := f.Write(member(tail)); err != nil {
		return "", err
	}
	return p, nil
}
