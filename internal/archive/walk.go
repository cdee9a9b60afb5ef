package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// maxWarnings bounds the warnings kept; the rest are counted.
const maxWarnings = 100

// warnings collects at most maxWarnings messages and counts the rest.
type warnings struct {
	list    []string
	dropped int
}

func (w *warnings) add(s string) {
	if s == "" {
		return
	}
	if len(w.list) < maxWarnings {
		w.list = append(w.list, s)
		return
	}
	w.dropped++
}

func (w *warnings) result() []string {
	if w.dropped > 0 {
		return append(w.list, fmt.Sprintf("... and %d more warnings", w.dropped))
	}
	return w.list
}

// WalkFunc receives each validated entry. content is non-nil for TypeFile
// and yields exactly e.Size bytes (fewer if the stream is truncated, which
// surfaces as an error); fn need not read it all.
type WalkFunc func(e *Entry, content io.Reader) error

// Walk reads an untrusted tar stream, validates every entry with the rules
// in the package comment, applies opts.Strip and calls fn for each entry in
// stream order, except those opts.Exclude matches. Skipped entries (device
// nodes, fifos, ...) and symlinks that point outside the tree produce
// warnings. It stops at the first invalid entry, fn error or ctx
// cancellation, and when the stream holds more than opts.MaxEntries names.
// Modes are passed on as found; opts.Force and opts.PreserveMode are for
// the callers.
func Walk(ctx context.Context, r io.Reader, opts ExtractOptions, fn WalkFunc) ([]string, error) {
	v := newValidatorMax("archive entry", false, opts.MaxEntries)
	var warn warnings
	strip := ""
	if opts.Strip != "" {
		s, err := v.cleanName(opts.Strip)
		if err != nil {
			return nil, fmt.Errorf("strip prefix: %w", err)
		}
		strip = s
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return warn.result(), err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return warn.result(), fmt.Errorf("read tar stream: %v: %w (the archive is damaged or not a tar)", err, errdefs.ErrInvalidArgument)
		}
		e, skip, err := headerEntry(v, h, strip)
		if err != nil {
			return warn.result(), err
		}
		if skip != "" {
			warn.add(skip)
			continue
		}
		if e == nil {
			continue // the root itself
		}
		w, err := v.add(e.Name, kindOf(e.Type), e.Linkname)
		if err != nil {
			return warn.result(), err
		}
		warn.add(w)
		if opts.Exclude.Excluded(e.Name, e.Type == TypeDir) {
			continue
		}
		if e.Type == TypeHardlink && opts.Exclude.Excluded(e.Linkname, false) {
			warn.add(fmt.Sprintf("skipped hard link %s: the file it links to, %s, is excluded", safeName(e.Name), safeName(e.Linkname)))
			continue
		}
		var content io.Reader
		if e.Type == TypeFile {
			content = &ctxReader{ctx: ctx, r: tr}
		}
		if err := fn(e, content); err != nil {
			return warn.result(), err
		}
	}
	return warn.result(), v.finish()
}

// headerEntry converts a tar header into an Entry with a cleaned, stripped
// name. It returns (nil, "", nil) for the root, or a warning for skipped
// entry types.
func headerEntry(v *validator, h *tar.Header, strip string) (*Entry, string, error) {
	e, skip := rawTarEntry(h)
	if skip != "" {
		return nil, skip, nil
	}
	e, err := v.normalize(e, strip)
	return e, "", err
}

// rawTarEntry maps a tar header to an Entry with the raw, unvalidated name
// and link name, or returns a warning for an entry type that is skipped.
func rawTarEntry(h *tar.Header) (*Entry, string) {
	e := &Entry{Name: h.Name, Mode: uint32(h.Mode) & 0o7777, ModTime: h.ModTime}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		e.Type, e.Size = TypeFile, h.Size
	case tar.TypeDir:
		e.Type = TypeDir
	case tar.TypeSymlink:
		e.Type, e.Linkname = TypeSymlink, h.Linkname
	case tar.TypeLink:
		e.Type, e.Linkname = TypeHardlink, h.Linkname
	case tar.TypeChar, tar.TypeBlock:
		return nil, fmt.Sprintf("skipped device node %s", safeName(h.Name))
	case tar.TypeFifo:
		return nil, fmt.Sprintf("skipped fifo %s", safeName(h.Name))
	default:
		return nil, fmt.Sprintf("skipped %s: unsupported tar entry type %q", safeName(h.Name), h.Typeflag)
	}
	return e, ""
}

// normalize cleans and strips e.Name (and a hard link's target) in place.
// It returns nil for the root entry.
func (v *validator) normalize(e *Entry, strip string) (*Entry, error) {
	name, err := v.cleanName(e.Name)
	if err != nil || name == "" {
		return nil, err
	}
	name, ok, err := v.strip(name, strip)
	if err != nil || !ok {
		return nil, err
	}
	e.Name = name
	if e.Size < 0 {
		return nil, v.reject(name, "negative size", "rebuild the archive")
	}
	if e.Type == TypeHardlink {
		fix := "replace the hard link with a copy of the file"
		t, err := v.cleanName(e.Linkname)
		if err != nil || t == "" {
			return nil, v.reject(name, fmt.Sprintf("hard link target %q is absolute or contains \"..\"", e.Linkname), fix)
		}
		if t, ok, err = v.strip(t, strip); err != nil || !ok {
			return nil, v.reject(name, fmt.Sprintf("hard link target %q is outside the tree", e.Linkname), fix)
		}
		e.Linkname = t
	}
	return e, nil
}

func kindOf(t EntryType) byte {
	switch t {
	case TypeDir:
		return kDir
	case TypeSymlink:
		return kSymlink
	case TypeHardlink:
		return kHardlink
	}
	return kFile
}

// ListTar validates an untrusted tar stream and returns its entries in
// stream order (file contents are read and discarded).
func ListTar(r io.Reader) ([]Entry, error) {
	var out []Entry
	_, err := Walk(context.Background(), r, ExtractOptions{}, func(e *Entry, _ io.Reader) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// ReadFiles reads the regular files named in paths (cleaned relative
// names) from an untrusted tar stream into memory, validating the stream
// like Walk. A file larger than limit bytes is left out of the map and
// listed in tooLarge; names the stream does not hold are simply absent.
// Memory use is bounded by len(paths)*limit.
func ReadFiles(ctx context.Context, r io.Reader, opts ExtractOptions, paths []string, limit int64) (files map[string][]byte, tooLarge []string, err error) {
	want := make(map[string]bool, len(paths))
	for _, p := range paths {
		want[p] = true
	}
	files = map[string][]byte{}
	_, err = Walk(ctx, r, opts, func(e *Entry, content io.Reader) error {
		if e.Type != TypeFile || !want[e.Name] {
			return nil
		}
		if e.Size > limit {
			tooLarge = append(tooLarge, e.Name)
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(content, e.Size))
		if err != nil {
			return fmt.Errorf("archive entry %q: %w", e.Name, err)
		}
		files[e.Name] = b
		return nil
	})
	return files, tooLarge, err
}

// safeName returns s, quoted if it holds characters that could disturb a
// terminal (guest names are untrusted).
func safeName(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
