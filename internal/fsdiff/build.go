package fsdiff

import (
	"bytes"
	"context"
	"fmt"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// Side selects the baseline (Old) or the live tree (New).
type Side int

// Sides.
const (
	Old Side = iota
	New
)

// Loader returns the whole content of the regular file at path on one
// side. Build calls it only for files no larger than Options.MaxFileBytes
// (by their manifest size) that take part in a change; an implementation
// should still refuse to return more than that many bytes.
type Loader func(ctx context.Context, side Side, path string) ([]byte, error)

// Options tunes Build.
type Options struct {
	// Context is the number of context lines in patches (default 3; set
	// NoContext for 0).
	Context   int
	NoContext bool
	// MaxFileBytes is the largest file that gets a patch (default 1 MiB);
	// larger ones are reported with PatchOmitted "too large".
	MaxFileBytes int64
}

// DefaultMaxFileBytes is the default Options.MaxFileBytes.
const DefaultMaxFileBytes = 1 << 20

// Build turns changes into a Result. With a nil load, files carry metadata
// only (no patch, Binary false). Errors from load are not fatal: the file
// is reported with PatchOmitted "content unavailable". Build stops early
// only when ctx is done.
func Build(ctx context.Context, changes []Change, load Loader, opts Options) (*Result, error) {
	if opts.Context == 0 && !opts.NoContext {
		opts.Context = 3
	}
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = DefaultMaxFileBytes
	}
	res := &Result{Files: make([]File, 0, len(changes))}
	for _, c := range changes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f := File{Path: c.Path, Status: c.Status}
		if c.Old != nil {
			f.Type, f.OldMode, f.OldSize = c.Old.Type, octal(c.Old.Mode), sizeOf(c.Old)
			if c.Old.Type == typeSymlink {
				f.OldTarget = c.Old.Target
			}
		}
		if c.New != nil {
			f.Type, f.NewMode, f.NewSize = c.New.Type, octal(c.New.Mode), sizeOf(c.New)
			if c.New.Type == typeSymlink {
				f.NewTarget = c.New.Target
			}
		}
		if c.Status == TypeChanged {
			f.OldType = c.Old.Type
		}
		switch {
		case (c.Status == Added || c.Status == Modified || c.Status == Deleted) && f.Type == typeSymlink:
			oldName, newName := names(c)
			f.Patch, f.Insertions, f.Deletions = unified(oldName, newName, []byte(f.OldTarget), []byte(f.NewTarget), opts.Context)
		case load != nil && (c.Status == Added || c.Status == Modified || c.Status == Deleted) && f.Type == typeFile:
			if same := patchFile(ctx, &f, c, load, opts); same {
				// Stat changed without a hash, but the bytes are equal.
				if c.Old.Mode == c.New.Mode {
					continue
				}
				f.Status, c.Status = ModeChanged, ModeChanged
			}
		}
		res.Files = append(res.Files, f)
		s := &res.Summary
		switch c.Status {
		case Added:
			s.Added++
		case Modified:
			s.Modified++
		case Deleted:
			s.Deleted++
		case TypeChanged:
			s.TypeChanged++
		case ModeChanged:
			s.ModeChanged++
		}
		s.Insertions += f.Insertions
		s.Deletions += f.Deletions
	}
	res.Summary.Files = len(res.Files)
	return res, nil
}

// patchFile loads both sides of a file change and fills Binary, Patch and
// the line counts. same reports a "modified" file whose two sides turned
// out to be byte-identical.
func patchFile(ctx context.Context, f *File, c Change, load Loader, opts Options) (same bool) {
	var oldB, newB []byte
	for _, side := range []struct {
		e   *guestproto.ManifestEntry
		s   Side
		dst *[]byte
	}{{c.Old, Old, &oldB}, {c.New, New, &newB}} {
		if side.e == nil {
			continue
		}
		if side.e.Size > opts.MaxFileBytes {
			f.PatchOmitted = OmittedTooLarge
			return false
		}
		b, err := load(ctx, side.s, c.Path)
		if err != nil {
			f.PatchOmitted = OmittedUnavailable
			return false
		}
		if int64(len(b)) > opts.MaxFileBytes {
			f.PatchOmitted = OmittedTooLarge
			return false
		}
		*side.dst = b
	}
	if c.Old != nil && c.New != nil && bytes.Equal(oldB, newB) {
		return true
	}
	if IsBinary(oldB) || IsBinary(newB) {
		f.Binary = true
		return false
	}
	oldName, newName := names(c)
	f.Patch, f.Insertions, f.Deletions = unified(oldName, newName, oldB, newB, opts.Context)
	return false
}

func octal(m uint32) string { return fmt.Sprintf("%04o", m&0o7777) }

func sizeOf(e *guestproto.ManifestEntry) *int64 {
	if e.Type != typeFile && e.Type != typeSymlink {
		return nil
	}
	s := e.Size
	if e.Type == typeSymlink && s == 0 {
		s = int64(len(e.Target))
	}
	return &s
}

// names are the patch header names of a change ("/dev/null" for a missing
// side).
func names(c Change) (oldName, newName string) {
	oldName, newName = "a/"+c.Path, "b/"+c.Path
	if c.Old == nil {
		oldName = "/dev/null"
	}
	if c.New == nil {
		newName = "/dev/null"
	}
	return oldName, newName
}
