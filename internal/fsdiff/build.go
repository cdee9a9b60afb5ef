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
// side. Build calls it only for files no larger than limit bytes (by their
// manifest size) that take part in a change; it must not return more than
// limit bytes (an error is fine: the file is then reported with
// PatchOmitted "content unavailable"). Build calls it from several
// goroutines at once.
type Loader func(ctx context.Context, side Side, path string, limit int64) ([]byte, error)

// Counter returns the line count of the regular file at path on one side,
// and whether it is binary (IsBinary's rule), without Build holding its
// content. With NoPatch, Build uses it for added and deleted files, whose
// line counts are their lines; limit is as for Loader.
type Counter func(ctx context.Context, side Side, path string, limit int64) (lines int, binary bool, err error)

// Options tunes Build.
type Options struct {
	// Context is the number of context lines in patches (default 3; set
	// NoContext for 0).
	Context   int
	NoContext bool
	// MaxPatchBytes bounds one file (default DefaultMaxPatchBytes): a file
	// larger than this on either side is not read (PatchOmitted "too
	// large", no line counts), and a patch longer than this is left out
	// (PatchOmitted "patch too large", line counts kept).
	MaxPatchBytes int64
	// MaxTotalPatchBytes bounds the patch text of the whole result
	// (default DefaultMaxTotalPatchBytes). Files past it keep their line
	// counts but not their patch (PatchOmitted "diff too large").
	MaxTotalPatchBytes int64
	// NoPatch leaves every patch out. Contents are still read (within
	// MaxPatchBytes) for line counts and binary detection.
	NoPatch bool
	// Workers is how many files are read and diffed at once (default 4).
	Workers int
	// Count, if set, counts the lines of added and deleted files when
	// NoPatch is set, instead of loading them.
	Count Counter
}

// Default bounds of a diff.
const (
	DefaultMaxPatchBytes      = 1 << 20
	DefaultMaxTotalPatchBytes = 16 << 20
)

// Build turns changes into a Result. With a nil load, files carry metadata
// only (no patch, no line counts, Binary false). Errors from load are not
// fatal: the file is reported with PatchOmitted "content unavailable".
// Build stops early only when ctx is done.
//
// Memory stays within a budget whatever the number of changes: at most
// Workers+2 files are in memory at once (each side at most MaxPatchBytes,
// plus the line tables of the diff), and the result keeps at most
// MaxTotalPatchBytes of patch text.
func Build(ctx context.Context, changes []Change, load Loader, opts Options) (*Result, error) {
	if opts.Context == 0 && !opts.NoContext {
		opts.Context = 3
	}
	if opts.MaxPatchBytes <= 0 {
		opts.MaxPatchBytes = DefaultMaxPatchBytes
	}
	if opts.MaxTotalPatchBytes <= 0 {
		opts.MaxTotalPatchBytes = DefaultMaxTotalPatchBytes
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	type built struct {
		f    File
		drop bool // a "modified" file whose bytes are equal after all
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// An ordered queue of results to come: its capacity bounds how many
	// files are in flight, and reading it in order keeps the output in
	// path order.
	queue := make(chan chan built, opts.Workers)
	go func() {
		defer close(queue)
		for _, c := range changes {
			fut := make(chan built, 1)
			select {
			case queue <- fut:
			case <-ctx.Done():
				return
			}
			go func() {
				f, drop := buildFile(ctx, c, load, opts)
				fut <- built{f, drop}
			}()
		}
	}()
	res := &Result{Files: make([]File, 0, len(changes))}
	var total int64
	for fut := range queue {
		var b built
		select {
		case b = <-fut:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if b.drop {
			continue
		}
		f := b.f
		if f.Patch != "" {
			if total+int64(len(f.Patch)) > opts.MaxTotalPatchBytes {
				f.Patch, f.PatchOmitted = "", OmittedBudget
			} else {
				total += int64(len(f.Patch))
			}
		}
		res.Files = append(res.Files, f)
		s := &res.Summary
		switch f.Status {
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
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Summary.Files = len(res.Files)
	return res, nil
}

// buildFile describes one change. drop reports a "modified" file whose two
// sides turned out byte-identical with the same mode.
func buildFile(ctx context.Context, c Change, load Loader, opts Options) (f File, drop bool) {
	f = File{Path: c.Path, Status: c.Status}
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
				return f, true
			}
			f.Status = ModeChanged
		}
	}
	if opts.NoPatch {
		f.Patch = ""
	}
	return f, false
}

// patchFile loads both sides of a file change and fills Binary, Patch and
// the line counts. same reports a "modified" file whose two sides turned
// out to be byte-identical.
func patchFile(ctx context.Context, f *File, c Change, load Loader, opts Options) (same bool) {
	if opts.NoPatch && opts.Count != nil && (c.Old == nil) != (c.New == nil) {
		e, side := c.New, New
		if e == nil {
			e, side = c.Old, Old
		}
		if e.Size > opts.MaxPatchBytes {
			f.PatchOmitted = OmittedTooLarge
			return false
		}
		n, binary, err := opts.Count(ctx, side, c.Path, opts.MaxPatchBytes)
		switch {
		case err != nil:
			f.PatchOmitted = OmittedUnavailable
		case binary:
			f.Binary = true
		case side == New:
			f.Insertions = n
		default:
			f.Deletions = n
		}
		return false
	}
	var oldB, newB []byte
	for _, side := range []struct {
		e   *guestproto.ManifestEntry
		s   Side
		dst *[]byte
	}{{c.Old, Old, &oldB}, {c.New, New, &newB}} {
		if side.e == nil {
			continue
		}
		if side.e.Size > opts.MaxPatchBytes {
			f.PatchOmitted = OmittedTooLarge
			return false
		}
		b, err := load(ctx, side.s, c.Path, opts.MaxPatchBytes)
		if err != nil {
			f.PatchOmitted = OmittedUnavailable
			return false
		}
		if int64(len(b)) > opts.MaxPatchBytes {
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
	if opts.NoPatch {
		f.Insertions, f.Deletions = countLines(oldB, newB)
		return false
	}
	oldName, newName := names(c)
	f.Patch, f.Insertions, f.Deletions = unified(oldName, newName, oldB, newB, opts.Context)
	if int64(len(f.Patch)) > opts.MaxPatchBytes {
		f.Patch, f.PatchOmitted = "", OmittedPatchTooLarge
	}
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
