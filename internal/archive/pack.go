package archive

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ignore"
)

// yieldFunc receives one raw (unvalidated) entry of a seed source, or a
// warning for a skipped one. open returns the content of a TypeFile entry.
type yieldFunc func(e *Entry, skip string, open func() (io.ReadCloser, error)) error

// iterFunc walks a seed source once.
type iterFunc func(ctx context.Context, yield yieldFunc) error

// PackSeed writes the host directory or archive src to w as a normalised
// PAX tar stream: relative names without "./", directories with a trailing
// slash, mode bits, symlinks, hard links, empty directories and mtimes kept,
// no owners.
//
// src may be a directory (walked without following symlinks) or a tar,
// tar.gz, tar.bz2 or zip archive, recognised by its content (the extension is
// only a hint for old tars without a magic number). The whole seed is
// validated in a first pass that writes nothing, so a rejected seed leaves w
// untouched; content is streamed in a second pass and never held in memory.
// Device nodes, fifos and sockets are skipped with a warning. A missing src
// is errdefs.ErrNotFound; an invalid entry is errdefs.ErrInvalidArgument
// naming the entry. If an I/O error interrupts the second pass, what was
// written to w is incomplete and must be discarded.
func PackSeed(ctx context.Context, src string, w io.Writer) (*PackResult, error) {
	iter, err := seedSource(src)
	if err != nil {
		return nil, err
	}
	// Pass 1: validate everything, write nothing.
	if _, err := checkSeed(ctx, src, iter); err != nil {
		return nil, err
	}
	// Pass 2: validate again (a directory may have changed) and write.
	v := newValidator("seed entry", true)
	var warn warnings
	res := &PackResult{}
	tw := tar.NewWriter(w)
	err = iter(ctx, func(e *Entry, skip string, open func() (io.ReadCloser, error)) error {
		if skip != "" {
			warn.add(skip)
			return nil
		}
		e, err := v.normalize(e, "")
		if err != nil || e == nil {
			return err
		}
		if _, err := v.add(e.Name, kindOf(e.Type), e.Linkname); err != nil {
			return err
		}
		if err := tw.WriteHeader(entryHeader(e)); err != nil {
			return err
		}
		res.Entries++
		if e.Type != TypeFile {
			return nil
		}
		rc, err := open()
		if err != nil {
			return err
		}
		defer rc.Close()
		n, err := io.CopyN(tw, &ctxReader{ctx: ctx, r: rc}, e.Size)
		res.Bytes += n
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("seed entry %q: file shrank while packing (%d of %d bytes); retry when it is not being written", e.Name, n, e.Size)
		}
		if err != nil {
			return err
		}
		// The content must end where its size said: a zip whose directory
		// understates a file (validated, and counted against the disk, by
		// that size) or a file that grew is refused, not cut silently. At
		// the end a zip entry's checksum is verified too.
		var one [1]byte
		switch m, err := io.ReadFull(rc, one[:]); {
		case m > 0:
			return fmt.Errorf("seed entry %q: holds more than its recorded size of %d bytes (the archive lies about its sizes, or the file grew while packing): %w", e.Name, e.Size, errdefs.ErrInvalidArgument)
		case err != nil && !errors.Is(err, io.EOF):
			return fmt.Errorf("seed entry %q: %v: %w (the archive is damaged)", e.Name, err, errdefs.ErrInvalidArgument)
		}
		return nil
	})
	if err == nil {
		err = v.finish()
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", src, err)
	}
	res.Warnings = warn.result()
	return res, nil
}

// CheckSeed validates src as PackSeed would, without writing anything, so
// a bad seed can be refused before a VM boots. The result counts what
// PackSeed would write.
func CheckSeed(ctx context.Context, src string) (*PackResult, error) {
	iter, err := seedSource(src)
	if err != nil {
		return nil, err
	}
	return checkSeed(ctx, src, iter)
}

// checkSeed is PackSeed's validation pass. For directories it also opens
// every regular file once, so unreadable files are reported before any
// byte is written.
func checkSeed(ctx context.Context, src string, iter iterFunc) (*PackResult, error) {
	v := newValidator("seed entry", true)
	res := &PackResult{}
	var warn warnings
	dirSource := isDirSource(src)
	err := iter(ctx, func(e *Entry, skip string, open func() (io.ReadCloser, error)) error {
		if skip != "" {
			warn.add(skip)
			return nil
		}
		e, err := v.normalize(e, "")
		if err != nil || e == nil {
			return err
		}
		if _, err := v.add(e.Name, kindOf(e.Type), e.Linkname); err != nil {
			return err
		}
		res.Entries++
		if e.Type != TypeFile {
			return nil
		}
		res.Bytes += e.Size
		if dirSource {
			rc, err := open()
			if err != nil {
				return err
			}
			rc.Close()
		}
		return nil
	})
	if err == nil {
		err = v.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", src, err)
	}
	res.Warnings = warn.result()
	return res, nil
}

func isDirSource(src string) bool {
	fi, err := os.Stat(src)
	return err == nil && fi.IsDir()
}

// seedSource recognises src and returns an iterator over its entries.
func seedSource(src string) (iterFunc, error) {
	fi, err := os.Stat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("seed %s: %w (check the path)", src, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", src, err)
	}
	if fi.IsDir() {
		return func(ctx context.Context, y yieldFunc) error { return walkDir(ctx, src, dirWalk{what: "seed"}, y) }, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seed %s is neither a directory nor an archive file: %w", src, errdefs.ErrInvalidArgument)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", src, err)
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	f.Close()
	head = head[:n]
	lower := strings.ToLower(src)
	unsupported := func(kind string) error {
		return fmt.Errorf("seed %s is a %s archive, which is not supported: %w (use a directory, .tar, .tar.gz or .zip)", src, kind, errdefs.ErrInvalidArgument)
	}
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return tarSource(src, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }), nil
	case bytes.HasPrefix(head, []byte("BZh")):
		return tarSource(src, func(r io.Reader) (io.Reader, error) { return bzip2.NewReader(r), nil }), nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return func(ctx context.Context, y yieldFunc) error { return walkZip(ctx, src, y) }, nil
	case bytes.HasPrefix(head, []byte("\xfd7zXZ\x00")):
		return nil, unsupported("xz")
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, unsupported("zstd")
	case len(head) >= 262 && string(head[257:262]) == "ustar", strings.HasSuffix(lower, ".tar"):
		return tarSource(src, nil), nil
	}
	return nil, fmt.Errorf("seed %s is neither a directory nor a tar, tar.gz or zip archive: %w (pass a directory or one of those archives)", src, errdefs.ErrInvalidArgument)
}

// tarSource iterates a tar file, optionally decompressed by wrap.
func tarSource(src string, wrap func(io.Reader) (io.Reader, error)) iterFunc {
	return func(ctx context.Context, y yieldFunc) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		var r io.Reader = bufio.NewReaderSize(f, 256<<10)
		if wrap != nil {
			if r, err = wrap(r); err != nil {
				return fmt.Errorf("decompress: %v: %w (the archive is damaged)", err, errdefs.ErrInvalidArgument)
			}
		}
		tr := tar.NewReader(r)
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read archive: %v: %w (the archive is damaged or not a tar)", err, errdefs.ErrInvalidArgument)
			}
			e, skip := rawTarEntry(h)
			open := func() (io.ReadCloser, error) { return io.NopCloser(tr), nil }
			if err := y(e, skip, open); err != nil {
				return err
			}
		}
	}
}

// walkZip iterates a zip file in its central-directory order.
func walkZip(ctx context.Context, src string, y yieldFunc) error {
	// The zip reader loads the whole central directory: check its size
	// first.
	if n, err := zipEntryCount(src); err == nil && n > uint64(maxEntries(0)) {
		return tooManyEntries("seed", maxEntries(0))
	}
	zr, err := zip.OpenReader(src)
	if err != nil {
		return fmt.Errorf("read zip: %v: %w (the archive is damaged)", err, errdefs.ErrInvalidArgument)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi := f.FileInfo()
		unixMade := f.CreatorVersion>>8 == 3 || f.CreatorVersion>>8 == 19
		e := &Entry{Name: f.Name, ModTime: f.Modified, Mode: unixMode(fi.Mode())}
		switch {
		case fi.IsDir() || strings.HasSuffix(f.Name, "/"):
			e.Type = TypeDir
			if !unixMade {
				e.Mode = 0o755
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			rc, err := f.Open()
			if err != nil {
				return fmt.Errorf("seed entry %q: %v: %w", f.Name, err, errdefs.ErrInvalidArgument)
			}
			t, err := io.ReadAll(io.LimitReader(rc, 4097))
			rc.Close()
			if err != nil || len(t) > 4096 {
				return fmt.Errorf("seed entry %q: unreadable or oversized symlink target: %w", f.Name, errdefs.ErrInvalidArgument)
			}
			e.Type, e.Linkname = TypeSymlink, string(t)
		case fi.Mode().IsRegular():
			e.Type, e.Size = TypeFile, int64(f.UncompressedSize64)
			if !unixMade {
				e.Mode = 0o644
			}
		default:
			if err := y(nil, fmt.Sprintf("skipped %s: special file in zip", f.Name), nil); err != nil {
				return err
			}
			continue
		}
		f := f
		open := func() (io.ReadCloser, error) { return f.Open() }
		if err := y(e, "", open); err != nil {
			return err
		}
	}
	return nil
}

// dirWalk says how walkDir lists a host directory.
type dirWalk struct {
	// what names the input in errors ("seed", "sync source").
	what string
	// exclude leaves matching entries out; excluded directories are not
	// entered.
	exclude *ignore.Matcher
}

// walkDir iterates a host directory in lexical order without following
// symlinks. Hard-linked files after the first are hard links to it; they
// carry their size and content too (Entry.linked marks a group's files),
// so a writer that leaves the first one out can send a copy.
func walkDir(ctx context.Context, root string, o dirWalk, y yieldFunc) error {
	type key struct{ dev, ino uint64 }
	links := map[key]string{}
	root, err := filepath.EvalSymlinks(root) // the root path itself may be a symlink
	if err != nil {
		return err
	}
	fix := "fix its permissions or remove it from the " + o.what
	if o.exclude != nil {
		fix += ", or exclude it"
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel, rerr := filepath.Rel(root, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && o.exclude.ExcludedSelf(rel, d != nil && d.IsDir()) {
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s entry %q cannot be read: %w (%s)", o.what, rel, err, fix)
		}
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("%s entry %q cannot be read: %w (%s)", o.what, rel, err, fix)
		}
		e := &Entry{Name: rel, Mode: unixMode(fi.Mode()), ModTime: fi.ModTime()}
		var open func() (io.ReadCloser, error)
		switch m := fi.Mode(); {
		case m.IsDir():
			e.Type = TypeDir
		case m&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("%s entry %q cannot be read: %w", o.what, rel, err)
			}
			e.Type, e.Linkname = TypeSymlink, t
		case m.IsRegular():
			e.Type, e.Size = TypeFile, fi.Size()
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				e.linked = true
				k := key{uint64(st.Dev), uint64(st.Ino)}
				if first, seen := links[k]; seen {
					e.Type, e.Linkname = TypeHardlink, first
				} else {
					links[k] = rel
				}
			}
			open = func() (io.ReadCloser, error) {
				f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
				if err != nil {
					return nil, fmt.Errorf("%s file %q cannot be read: %w (%s)", o.what, rel, err, fix)
				}
				return f, nil
			}
		default:
			return y(nil, fmt.Sprintf("skipped %s: %s is not a regular file, directory or symlink", rel, m.Type()), nil)
		}
		return y(e, "", open)
	})
}

// unixMode converts an fs.FileMode to Unix mode bits (0o7777).
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// zipEntryCount reads the number of entries a zip file declares in its
// end of central directory record (zip64 aware).
func zipEntryCount(name string) (uint64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	n := min(size, 65535+22)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil {
		return 0, err
	}
	i := bytes.LastIndex(buf, []byte("PK\x05\x06"))
	if i < 0 || len(buf)-i < 22 {
		return 0, errors.New("no end of central directory")
	}
	count := uint64(binary.LittleEndian.Uint16(buf[i+10:]))
	if count != 0xffff || i < 20 || !bytes.Equal(buf[i-20:i-16], []byte("PK\x06\x07")) {
		return count, nil
	}
	off := int64(binary.LittleEndian.Uint64(buf[i-20+8:]))
	rec := make([]byte, 56)
	if _, err := f.ReadAt(rec, off); err != nil || !bytes.Equal(rec[:4], []byte("PK\x06\x06")) {
		return count, nil
	}
	return binary.LittleEndian.Uint64(rec[32:]), nil
}
