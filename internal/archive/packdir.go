package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ignore"
)

// PackOptions control ScanDir and PackDir.
type PackOptions struct {
	// Exclude leaves out the entries it matches (names relative to the
	// root); excluded directories are not entered, so nothing inside them
	// is read or validated.
	Exclude *ignore.Matcher
	// Select chooses the entries PackDir writes (nil: all). Entries it
	// declines are validated all the same.
	Select func(e *Entry) bool
	// MaxEntries bounds the entries (0: the default, see
	// DefaultMaxEntries).
	MaxEntries int
}

// ScanDir validates the host directory root under the seed rules (see the
// package comment: symlinks must stay inside the tree, hard links become
// links to the first file of their group) and calls fn for each entry that
// is not excluded, in lexical order. It reads no file content. It is the
// check pass before PackDir: nothing is written until the whole tree
// passed.
func ScanDir(ctx context.Context, root string, o PackOptions, fn func(e *Entry) error) (*PackResult, error) {
	if err := checkDirRoot(root); err != nil {
		return nil, err
	}
	v := newValidatorMax("sync source entry", true, o.MaxEntries)
	v.hint = ", or exclude it"
	res := &PackResult{}
	var warn warnings
	err := walkDir(ctx, root, dirWalk{what: "sync source", exclude: o.Exclude}, func(e *Entry, skip string, _ func() (io.ReadCloser, error)) error {
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
		if e.Type == TypeFile {
			res.Bytes += e.Size
		}
		return fn(e)
	})
	if err == nil {
		err = v.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("sync source %s: %w", root, err)
	}
	res.Warnings = warn.result()
	return res, nil
}

// PackDir writes the entries of the host directory root that o.Select
// chooses to w as a normalised PAX tar, like PackSeed, validating the whole
// tree as it goes. A chosen hard link whose first file was not chosen is
// written as a copy of the file. Run ScanDir first: PackDir fails at the
// first bad entry, after writing what came before it. The result counts
// what was written.
func PackDir(ctx context.Context, root string, w io.Writer, o PackOptions) (*PackResult, error) {
	if err := checkDirRoot(root); err != nil {
		return nil, err
	}
	v := newValidatorMax("sync source entry", true, o.MaxEntries)
	v.hint = ", or exclude it"
	res := &PackResult{}
	var warn warnings
	// Files of hard-link groups that were written, so a later link of the
	// group can point at them.
	written := map[string]bool{}
	tw := tar.NewWriter(w)
	err := walkDir(ctx, root, dirWalk{what: "sync source", exclude: o.Exclude}, func(e *Entry, skip string, open func() (io.ReadCloser, error)) error {
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
		if o.Select != nil && !o.Select(e) {
			return nil
		}
		out := *e
		if out.Type == TypeHardlink && !written[out.Linkname] {
			out.Type, out.Linkname = TypeFile, ""
		}
		if err := tw.WriteHeader(entryHeader(&out)); err != nil {
			return err
		}
		res.Entries++
		if out.Type != TypeFile {
			return nil
		}
		if e.linked {
			written[e.Name] = true
		}
		rc, err := open()
		if err != nil {
			return err
		}
		defer rc.Close()
		n, err := io.CopyN(tw, &ctxReader{ctx: ctx, r: rc}, out.Size)
		res.Bytes += n
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("sync source file %q shrank while being sent (%d of %d bytes): %w (retry when it is not being written)", e.Name, n, out.Size, errdefs.ErrConflict)
		}
		return err
	})
	if err == nil {
		err = v.finish()
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("sync source %s: %w", root, err)
	}
	res.Warnings = warn.result()
	return res, nil
}

func checkDirRoot(root string) error {
	fi, err := os.Stat(root)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sync source %s does not exist: %w", root, errdefs.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sync source %s: %w", root, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("sync source %s is not a directory: %w (push a directory)", root, errdefs.ErrInvalidArgument)
	}
	return nil
}
