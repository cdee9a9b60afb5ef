package workspace

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// baselineIndex maps each regular file of the baseline tar to where its
// content lies, so a diff reads the old side of a few files without
// scanning 20,000 headers. It is written once, next to the tar, at create.
type baselineIndex map[string][2]int64 // path -> {offset, size}

// countingReader tracks the offset of a tar stream that is also seekable,
// so archive/tar skips file contents by seeking.
type countingReader struct {
	f   *os.File
	pos int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.pos += int64(n)
	return n, err
}

func (c *countingReader) Seek(off int64, whence int) (int64, error) {
	n, err := c.f.Seek(off, whence)
	if err == nil {
		c.pos = n
	}
	return n, err
}

// indexTar scans a tar's headers.
func indexTar(path string) (baselineIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := &countingReader{f: f}
	tr := tar.NewReader(cr)
	idx := baselineIndex{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return idx, nil
		}
		if err != nil {
			return nil, fmt.Errorf("index baseline %s: %w", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			idx[strings.TrimPrefix(h.Name, "./")] = [2]int64{cr.pos, h.Size}
		}
	}
}

func (m *Manager) writeBaselineIndex(id string) error {
	dir := m.baselineDir(id)
	idx, err := indexTar(filepath.Join(dir, "tree.tar"))
	if err != nil {
		return err
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "index.json"), b, 0o400)
}

// baselineReader reads old-side file contents for a diff.
type baselineReader struct {
	f   *os.File
	idx baselineIndex
}

func (m *Manager) openBaseline(id string) (*baselineReader, error) {
	dir := m.baselineDir(id)
	var idx baselineIndex
	if b, err := os.ReadFile(filepath.Join(dir, "index.json")); err == nil {
		if err := json.Unmarshal(b, &idx); err != nil {
			idx = nil
		}
	}
	if idx == nil { // a baseline recorded before indexes existed
		var err error
		if idx, err = indexTar(filepath.Join(dir, "tree.tar")); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(filepath.Join(dir, "tree.tar"))
	if err != nil {
		return nil, err
	}
	return &baselineReader{f: f, idx: idx}, nil
}

func (r *baselineReader) Close() error { return r.f.Close() }

// ReadFile returns a baseline file's content, refusing files over limit.
func (r *baselineReader) ReadFile(p string, limit int64) ([]byte, error) {
	loc, ok := r.idx[p]
	if !ok {
		return nil, fmt.Errorf("%s is not a file of the baseline: %w", p, errdefs.ErrNotFound)
	}
	if loc[1] > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", p, limit, errdefs.ErrResourceExhausted)
	}
	b := make([]byte, loc[1])
	if _, err := r.f.ReadAt(b, loc[0]); err != nil {
		return nil, fmt.Errorf("read %s from the baseline: %w", p, err)
	}
	return b, nil
}
