package agent

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/ignore"
)

// maxWarnings bounds the warnings one file operation reports.
const maxWarnings = 200

func init() {
	register(guestproto.OpTarOut, handleTarOut)
	register(guestproto.OpTarIn, handleTarIn)
	register(guestproto.OpManifest, handleManifest)
	register(guestproto.OpReadFile, handleReadFile)
}

// filesRequest validates a files request and returns its cleaned path.
func filesRequest(req *guestproto.Request) (string, *guestproto.FilesRequest, error) {
	fr := req.Files
	if fr == nil || fr.Path == "" {
		return "", nil, errorf(guestproto.CodeInvalid, "%s needs a path", req.Op)
	}
	if !filepath.IsAbs(fr.Path) || strings.ContainsRune(fr.Path, 0) {
		return "", nil, errorf(guestproto.CodeInvalid, "path %q must be an absolute guest path", fr.Path)
	}
	return filepath.Clean(fr.Path), fr, nil
}

// excludeMatcher compiles a request's exclude patterns.
func excludeMatcher(fr *guestproto.FilesRequest) (*ignore.Matcher, error) {
	m, err := ignore.Compile(fr.Exclude)
	if err != nil {
		return nil, errorf(guestproto.CodeInvalid, "%v", err)
	}
	return m, nil
}

// lstatRoot stats the root of an operation, mapping a missing path to
// not_found.
func lstatRoot(p string) (os.FileInfo, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(guestproto.CodeNotFound, "%s does not exist in the guest", p)
	}
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	return fi, nil
}

// warnings collects bounded warnings.
type warnings struct {
	list    *[]string
	dropped int
}

func (w *warnings) add(format string, args ...any) {
	if len(*w.list) < maxWarnings {
		*w.list = append(*w.list, fmt.Sprintf(format, args...))
		return
	}
	w.dropped++
}

func (w *warnings) finish() {
	if w.dropped > 0 {
		*w.list = append(*w.list, fmt.Sprintf("%d more warnings not shown", w.dropped))
	}
}

// dataWriter sends what is written to it as FrameData frames of at most
// guestproto.ChunkSize bytes.
type dataWriter struct{ st *Stream }

func (w dataWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), guestproto.ChunkSize)
		if err := w.st.WriteFrame(guestproto.FrameData, p[:c]); err != nil {
			return n, fmt.Errorf("send data to the host: %w", err)
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

// errStreamLost marks a host stream that ended in the middle of data.
var errStreamLost = errors.New("host stream ended before the end of the data")

// dataReader reads the host's FrameData frames up to FrameDataEOF.
type dataReader struct {
	st  *Stream
	buf []byte
	eof bool
}

func (r *dataReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		t, b, err := r.st.ReadFrame()
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errStreamLost, err)
		}
		switch t {
		case guestproto.FrameData:
			r.buf = b
		case guestproto.FrameDataEOF:
			r.eof = true
		case guestproto.FrameJSON:
			// Control messages have no meaning here.
		default:
			return 0, errorf(guestproto.CodeInvalid, "unexpected %v frame in a data stream", t)
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func handleTarOut(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	root, fr, err := filesRequest(req)
	if err != nil {
		return nil, err
	}
	excl, err := excludeMatcher(fr)
	if err != nil {
		return nil, err
	}
	fi, err := lstatRoot(root)
	if err != nil {
		return nil, err
	}
	res := &guestproto.FilesResult{}
	warn := &warnings{list: &res.Warnings}
	bw := bufio.NewWriterSize(dataWriter{st}, guestproto.ChunkSize)
	tw := tar.NewWriter(bw)
	switch {
	case !fi.IsDir() && excl.ExcludedSelf(filepath.Base(root), false):
	case !fi.IsDir():
		err = tarAdd(tw, root, filepath.Base(root), res, warn)
	default:
		rootDev := fileDev(fi)
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			rel, _ := filepath.Rel(root, p)
			if p != root && excl.ExcludedSelf(filepath.ToSlash(rel), d != nil && d.IsDir()) {
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if err != nil {
				if p == root {
					return fmt.Errorf("read %s: %w", root, err)
				}
				if errors.Is(err, fs.ErrNotExist) {
					warn.add("skipped %s: it vanished while being archived", rel)
				} else {
					warn.add("skipped %s: %v", rel, err)
				}
				return nil
			}
			if p == root {
				return nil
			}
			// Like the manifest, an archive does not cross into another file
			// system (a bind mount of /run/secrets, a tmpfs): its mount point
			// is archived empty.
			if d.IsDir() {
				if info, err := d.Info(); err == nil && fileDev(info) != rootDev {
					warn.add("not archiving the contents of %s: another file system is mounted there", rel)
					if err := tarAdd(tw, p, filepath.ToSlash(rel), res, warn); err != nil {
						return err
					}
					return fs.SkipDir
				}
			}
			return tarAdd(tw, p, filepath.ToSlash(rel), res, warn)
		})
	}
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = st.WriteFrame(guestproto.FrameDataEOF, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", root, err)
	}
	warn.finish()
	return &guestproto.Response{Files: res}, nil
}

// tarAdd writes one entry. Problems with the entry itself become warnings;
// errors writing the archive are returned.
func tarAdd(tw *tar.Writer, full, name string, res *guestproto.FilesResult, warn *warnings) error {
	fi, err := os.Lstat(full)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			warn.add("skipped %s: it vanished while being archived", name)
		} else {
			warn.add("skipped %s: %v", name, err)
		}
		return nil
	}
	uid, gid := fileOwner(fi)
	hdr := &tar.Header{Name: name, Mode: int64(permBits(fi)), Uid: uid, Gid: gid, ModTime: fi.ModTime(), Format: tar.FormatPAX}
	switch {
	case fi.Mode().IsRegular():
		f, err := os.OpenFile(full, os.O_RDONLY|openNoFollow, 0)
		if err != nil {
			warn.add("skipped %s: %v", name, err)
			return nil
		}
		defer f.Close()
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, rerr, werr := copyExactly(tw, f, hdr.Size)
		if werr != nil {
			return werr
		}
		if rerr != nil {
			warn.add("%s changed while being archived (%v): its archived content is incomplete", name, rerr)
		}
		res.Bytes += n
	case fi.IsDir():
		hdr.Typeflag = tar.TypeDir
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			warn.add("skipped %s: %v", name, err)
			return nil
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	default:
		warn.add("skipped %s: %s (devices, sockets and fifos are not archived)", name, fileKind(fi))
		return nil
	}
	res.Entries++
	return nil
}

// copyExactly copies n bytes from r to w, padding with zeros when r ends
// early (a file that shrank). It returns the bytes read, the read error, and
// the write error.
func copyExactly(w io.Writer, r io.Reader, n int64) (int64, error, error) {
	buf := make([]byte, guestproto.ChunkSize)
	var done int64
	var rerr error
	for done < n {
		c := int(min(int64(len(buf)), n-done))
		if rerr == nil {
			m, err := io.ReadFull(r, buf[:c])
			if err != nil {
				rerr = fmt.Errorf("read %d of %d bytes: %w", done+int64(m), n, err)
				clear(buf[m:c])
			}
		}
		if _, err := w.Write(buf[:c]); err != nil {
			return done, rerr, err
		}
		done += int64(c)
	}
	return done, rerr, nil
}

func fileKind(fi os.FileInfo) string {
	switch m := fi.Mode(); {
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}

func handleTarIn(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	root, fr, err := filesRequest(req)
	if err != nil {
		return nil, err
	}
	excl, err := excludeMatcher(fr)
	if err != nil {
		return nil, err
	}
	keep := make([]string, 0, len(fr.Keep))
	for _, k := range fr.Keep {
		rel, err := cleanRel(k)
		if err != nil {
			return nil, errorf(guestproto.CodeInvalid, "keep path %q: %v", k, err)
		}
		keep = append(keep, rel)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, errorf(guestproto.CodeInvalid, "create destination %s: %v", root, err)
	}
	x, err := newExtractor(root)
	if err != nil {
		return nil, err
	}
	defer x.close()
	dr := &dataReader{st: st}
	tr := tar.NewReader(dr)
	for {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = x.entry(hdr, tr)
		}
		if err != nil {
			var pe *protoError
			if errors.Is(err, errStreamLost) || errors.As(err, &pe) {
				return nil, err
			}
			if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
				// The guest's disk, not the archive: say so, with the kind
				// a full disk has everywhere else.
				return nil, errorf(guestproto.CodeLimit, "extract into %s: the workspace's disk is full (%v): free space in the guest, or create the workspace with a larger disk size", root, err)
			}
			return nil, errorf(guestproto.CodeInvalid, "extract into %s: bad archive: %v", root, err)
		}
	}
	if _, err := io.Copy(io.Discard, dr); err != nil { // up to FrameDataEOF
		return nil, err
	}
	if fr.Delete {
		if err := x.deleteOthers(keep, excl); err != nil {
			return nil, err
		}
	}
	if err := x.finishDirs(); err != nil {
		return nil, err
	}
	x.warn.finish()
	return &guestproto.Response{Files: x.res}, nil
}

// cleanRel validates a relative slash-separated path from the host: no
// absolute paths, no ".." components. "." and "" mean the root ("").
func cleanRel(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", errors.New("contains a NUL byte")
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute paths are not allowed")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New(`".." components are not allowed`)
		}
	}
	rel := filepath.ToSlash(filepath.Clean("/" + name))[1:]
	return rel, nil
}

func handleManifest(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	root, fr, err := filesRequest(req)
	if err != nil {
		return nil, err
	}
	excl, err := excludeMatcher(fr)
	if err != nil {
		return nil, err
	}
	fi, err := lstatRoot(root)
	if err != nil {
		return nil, err
	}
	m := &guestproto.Manifest{Root: root}
	warn := &warnings{list: &m.Warnings}
	hashAll := fr.Hash && len(fr.HashPaths) == 0
	hashSet := map[string]bool{}
	for _, p := range fr.HashPaths {
		if rel, err := cleanRel(p); err == nil {
			hashSet[rel] = true
		}
	}
	var entries []guestproto.ManifestEntry
	add := func(full, rel string, fi os.FileInfo) {
		e := manifestEntry(full, rel, fi, warn)
		if e.Type == "file" && (hashAll || hashSet[rel]) {
			sum, err := hashFile(full)
			if err != nil {
				warn.add("not hashed %s: %v", rel, err)
			}
			e.SHA256 = sum
		}
		entries = append(entries, e)
	}
	switch {
	case !fi.IsDir() && excl.ExcludedSelf(filepath.Base(root), false):
	case !fi.IsDir():
		add(root, filepath.Base(root), fi)
	default:
		rootDev := fileDev(fi)
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if p != root && excl.ExcludedSelf(rel, d != nil && d.IsDir()) {
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if err != nil {
				if p == root {
					return fmt.Errorf("read %s: %w", root, err)
				}
				warn.add("skipped %s: %v", rel, err)
				return nil
			}
			if p == root {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				warn.add("skipped %s: %v", rel, err)
				return nil
			}
			add(p, rel, fi)
			if fi.IsDir() && fileDev(fi) != rootDev {
				warn.add("not listing %s: another file system is mounted there", rel)
				return fs.SkipDir
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", root, err)
		}
	}
	slices.SortFunc(entries, func(a, b guestproto.ManifestEntry) int { return strings.Compare(a.Path, b.Path) })
	if err := streamManifest(st, entries); err != nil {
		return nil, err
	}
	m.Count = int64(len(entries))
	warn.finish()
	return &guestproto.Response{Manifest: m}, nil
}

func manifestEntry(full, rel string, fi os.FileInfo, warn *warnings) guestproto.ManifestEntry {
	e := guestproto.ManifestEntry{Path: rel, Mode: permBits(fi), MtimeNS: fi.ModTime().UnixNano(), Inode: fileIno(fi)}
	switch {
	case fi.Mode().IsRegular():
		e.Type, e.Size = "file", fi.Size()
	case fi.IsDir():
		e.Type = "dir"
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Type, e.Size = "symlink", fi.Size()
		target, err := os.Readlink(full)
		if err != nil {
			warn.add("cannot read symlink %s: %v", rel, err)
		}
		e.Target = target
	default:
		e.Type = "other"
	}
	return e
}

// manifestFrame is the size of the frames a manifest is sent in: larger
// than ChunkSize, since a big listing is bound by per-message costs.
const manifestFrame = 256 << 10

// streamManifest sends entries as FrameData frames of whole JSON lines.
// The lines are encoded by hand (the same JSON encoding/json would give
// for guestproto.ManifestEntry): listing a large tree is otherwise
// dominated by reflection under software emulation.
func streamManifest(st *Stream, entries []guestproto.ManifestEntry) error {
	buf := make([]byte, 0, manifestFrame+4096)
	for i := range entries {
		buf = appendManifestEntry(buf, &entries[i])
		if len(buf) >= manifestFrame {
			if err := st.WriteFrame(guestproto.FrameData, buf); err != nil {
				return fmt.Errorf("send manifest: %w", err)
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		if err := st.WriteFrame(guestproto.FrameData, buf); err != nil {
			return fmt.Errorf("send manifest: %w", err)
		}
	}
	return st.WriteFrame(guestproto.FrameDataEOF, nil)
}

// appendManifestEntry appends e as one JSON line.
func appendManifestEntry(b []byte, e *guestproto.ManifestEntry) []byte {
	b = append(b, `{"path":`...)
	b = appendJSONString(b, e.Path)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, e.Type)
	b = append(b, `,"mode":`...)
	b = strconv.AppendUint(b, uint64(e.Mode), 10)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, e.Size, 10)
	b = append(b, `,"mtime_ns":`...)
	b = strconv.AppendInt(b, e.MtimeNS, 10)
	if e.Inode != 0 {
		b = append(b, `,"inode":`...)
		b = strconv.AppendUint(b, e.Inode, 10)
	}
	if e.Target != "" {
		b = append(b, `,"target":`...)
		b = appendJSONString(b, e.Target)
	}
	if e.SHA256 != "" {
		b = append(b, `,"sha256":`...)
		b = appendJSONString(b, e.SHA256)
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string; plain ASCII (the common
// case) is copied as is, anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func hashFile(p string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|openNoFollow, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func handleReadFile(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	p, fr, err := filesRequest(req)
	if err != nil {
		return nil, err
	}
	if fr.Offset < 0 || fr.Length < 0 {
		return nil, errorf(guestproto.CodeInvalid, "offset %d and length %d must not be negative", fr.Offset, fr.Length)
	}
	fi, err := lstatRoot(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errorf(guestproto.CodeInvalid, "%s is a %s, not a regular file", p, fileKind(fi))
	}
	f, err := os.OpenFile(p, os.O_RDONLY|openNoFollow, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, errorf(guestproto.CodeInvalid, "%s is not a regular file", p)
	}
	var r io.Reader = io.NewSectionReader(f, fr.Offset, 1<<62)
	if fr.Length > 0 {
		r = io.LimitReader(r, fr.Length)
	}
	if fr.Count {
		var c lineCounter
		n, err := io.CopyBuffer(&c, r, make([]byte, guestproto.ChunkSize))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if err := st.WriteFrame(guestproto.FrameDataEOF, nil); err != nil {
			return nil, err
		}
		lines, binary := c.result()
		return &guestproto.Response{Files: &guestproto.FilesResult{Entries: 1, Bytes: n, Lines: lines, Binary: binary}}, nil
	}
	n, err := io.CopyBuffer(dataWriter{st}, r, make([]byte, guestproto.ChunkSize))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if err := st.WriteFrame(guestproto.FrameDataEOF, nil); err != nil {
		return nil, err
	}
	return &guestproto.Response{Files: &guestproto.FilesResult{Entries: 1, Bytes: n}}, nil
}

// lineCounter counts the lines of what is written to it and tells whether
// it is binary by fsdiff.IsBinary's rule: a NUL in the first 8000 bytes, or
// bytes that are not valid UTF-8.
type lineCounter struct {
	n       int64
	lines   int64
	last    byte
	nul     bool
	invalid bool
	carry   []byte // an incomplete UTF-8 sequence at the end of a write
}

func (c *lineCounter) Write(p []byte) (int, error) {
	if c.n < 8000 && bytes.IndexByte(p[:min(len(p), int(8000-c.n))], 0) >= 0 {
		c.nul = true
	}
	c.lines += int64(bytes.Count(p, []byte{'\n'}))
	if len(p) > 0 {
		c.last = p[len(p)-1]
	}
	c.n += int64(len(p))
	if !c.invalid {
		b := p
		if len(c.carry) > 0 {
			b = append(c.carry, p...)
		}
		// Keep back a final sequence that the next write may complete.
		cut := len(b)
		for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					cut = i
				}
				break
			}
		}
		c.invalid = !utf8.Valid(b[:cut])
		c.carry = append(c.carry[:0], b[cut:]...)
	}
	return len(p), nil
}

func (c *lineCounter) result() (lines int64, binary bool) {
	lines = c.lines
	if c.n > 0 && c.last != '\n' {
		lines++
	}
	return lines, c.nul || c.invalid || len(c.carry) > 0
}
