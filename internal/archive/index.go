package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// TarIndex gives random access to the regular files of an uncompressed tar
// file (such as a stored seed or baseline written by PackSeed), so a diff can
// read the few files it needs without streaming the whole archive.
type TarIndex struct {
	r     io.ReaderAt
	files map[string]section
}

type section struct{ off, size int64 }

// positionReader tracks the offset of an io.ReadSeeker; it is itself a
// Seeker, so archive/tar skips file contents with Seek.
type positionReader struct {
	r   io.ReadSeeker
	pos int64
}

func (p *positionReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.pos += int64(n)
	return n, err
}

func (p *positionReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.r.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

// IndexTar reads the headers of the uncompressed tar in f (seeking over
// contents), validating names like Walk, and records where each regular
// file's content lies. Sparse entries are not indexed.
func IndexTar(ctx context.Context, f interface {
	io.ReadSeeker
	io.ReaderAt
}) (*TarIndex, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	pr := &positionReader{r: f}
	tr := tar.NewReader(pr)
	v := newValidator("archive entry", false)
	x := &TarIndex{r: f, files: map[string]section{}}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return x, nil
		}
		if err != nil {
			return nil, fmt.Errorf("index tar: %v: %w (the archive is damaged or not an uncompressed tar)", err, errdefs.ErrInvalidArgument)
		}
		e, skip, err := headerEntry(v, h, "")
		if err != nil {
			return nil, err
		}
		if skip != "" || e == nil {
			continue
		}
		if _, err := v.add(e.Name, kindOf(e.Type), e.Linkname); err != nil {
			return nil, err
		}
		sparse := h.Typeflag == tar.TypeGNUSparse
		for k := range h.PAXRecords {
			sparse = sparse || strings.HasPrefix(k, "GNU.sparse.")
		}
		switch {
		case e.Type == TypeFile && !sparse:
			x.files[e.Name] = section{pr.pos, e.Size}
		case e.Type == TypeHardlink:
			if s, ok := x.files[e.Linkname]; ok {
				x.files[e.Name] = s
			}
		}
	}
}

// Size returns the size of the regular file name, and whether it is indexed.
func (x *TarIndex) Size(name string) (int64, bool) {
	s, ok := x.files[name]
	return s.size, ok
}

// ReadFile returns the content of the regular file name. It fails with
// errdefs.ErrNotFound if the index lacks it and errdefs.ErrResourceExhausted
// if it is larger than limit bytes.
func (x *TarIndex) ReadFile(name string, limit int64) ([]byte, error) {
	s, ok := x.files[name]
	if !ok {
		return nil, fmt.Errorf("archive file %q: %w", name, errdefs.ErrNotFound)
	}
	if s.size > limit {
		return nil, fmt.Errorf("archive file %q is %d bytes, more than %d: %w", name, s.size, limit, errdefs.ErrResourceExhausted)
	}
	b := make([]byte, s.size)
	if _, err := x.r.ReadAt(b, s.off); err != nil {
		return nil, fmt.Errorf("archive file %q: %w", name, err)
	}
	return b, nil
}
