package archive

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// WriteArchive validates an untrusted tar stream like Extract and writes it,
// re-encoded as a normalised PAX tar, to destFile. A name ending in ".gz" or
// ".tgz" is gzip-compressed; ".zip", ".xz", ".zst", ".bz2" and ".7z" are
// refused (only tar and tar.gz are written). An existing destFile is
// replaced only with opts.Force, and never if it is a directory. The file is
// written beside destFile and renamed into place at the end; on error
// nothing is left behind. Modes lose setuid, setgid, sticky and world-write
// unless opts.PreserveMode.
func WriteArchive(ctx context.Context, r io.Reader, destFile string, opts ExtractOptions) (*ExtractResult, error) {
	destFile, err := filepath.Abs(destFile)
	if err != nil {
		return nil, fmt.Errorf("archive destination %q: %w", destFile, err)
	}
	lower := strings.ToLower(destFile)
	for _, ext := range []string{".zip", ".xz", ".zst", ".bz2", ".7z"} {
		if strings.HasSuffix(lower, ext) {
			return nil, fmt.Errorf("archive destination %s: %q archives are not supported: %w (name it .tar or .tar.gz)", destFile, ext, errdefs.ErrInvalidArgument)
		}
	}
	if fi, err := os.Lstat(destFile); err == nil {
		if fi.IsDir() {
			return nil, fmt.Errorf("archive destination %s is a directory: %w (give a file name such as out.tar.gz)", destFile, errdefs.ErrAlreadyExists)
		}
		if !opts.Force {
			return nil, fmt.Errorf("archive destination %s already exists: %w (choose a new file name, or replace it with force)", destFile, errdefs.ErrAlreadyExists)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("archive destination %s: %w", destFile, err)
	}
	parent := filepath.Dir(destFile)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("archive destination %s: create parent directory: %w", destFile, err)
	}
	SweepStaging(destFile)
	tmp, err := os.CreateTemp(parent, StagingPattern(destFile))
	if err != nil {
		return nil, wrapWriteErr(destFile, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	var w io.Writer = bw
	if testWrapWriter != nil {
		w = testWrapWriter(bw)
	}
	var gz *gzip.Writer
	if strings.HasSuffix(lower, ".gz") || strings.HasSuffix(lower, ".tgz") {
		gz = gzip.NewWriter(w)
		w = gz
	}
	tw := tar.NewWriter(w)
	var res ExtractResult
	warn, err := Walk(ctx, r, opts, func(e *Entry, content io.Reader) error {
		e.Mode = hostMode(e.Mode, opts.PreserveMode)
		if err := tw.WriteHeader(entryHeader(e)); err != nil {
			return err
		}
		switch e.Type {
		case TypeDir:
			res.Dirs++
		case TypeSymlink:
			res.Symlinks++
		case TypeHardlink:
			res.Files++
		case TypeFile:
			n, err := io.Copy(tw, content)
			if err != nil {
				return err
			}
			res.Files++
			res.Bytes += n
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err != nil {
		return nil, wrapWriteErr(destFile, err)
	}
	if err := os.Rename(tmp.Name(), destFile); err != nil {
		return nil, wrapWriteErr(destFile, err)
	}
	done = true
	res.Warnings = warn
	return &res, nil
}

// entryHeader is the normalised PAX header for an entry: relative name,
// directories with a trailing slash, no owner.
func entryHeader(e *Entry) *tar.Header {
	h := &tar.Header{Name: e.Name, Mode: int64(e.Mode), ModTime: e.ModTime, Format: tar.FormatPAX}
	switch e.Type {
	case TypeDir:
		h.Typeflag, h.Name = tar.TypeDir, e.Name+"/"
	case TypeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.Linkname
	case TypeHardlink:
		h.Typeflag, h.Linkname = tar.TypeLink, e.Linkname
	default:
		h.Typeflag, h.Size = tar.TypeReg, e.Size
	}
	return h
}
