package workspace

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/archive"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/fsdiff"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/ignore"
)

// WorkspaceRoot is the guest directory every workspace revolves around.
const WorkspaceRoot = "/workspace"

// checkSeed validates a seed on the host before any VM is booted: a seed
// that does not exist, cannot be read, or holds hostile entries fails here
// with nothing created.
// A seed whose files hold more bytes than the workspace's disk is refused
// here too (before the boot, instead of a "no space" after writing a
// disk's worth: an archive bomb).
func checkSeed(ctx context.Context, src string, diskSize int64) error {
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("seed %s does not exist: give a directory or a .tar, .tar.gz, .tgz or .zip file: %w", src, errdefs.ErrNotFound)
		}
		return fmt.Errorf("seed %s: %w: %w", src, err, errdefs.ErrInvalidArgument)
	}
	// The archive's errors already start with "seed SRC: ".
	res, err := archive.CheckSeed(ctx, src)
	if err != nil {
		return err
	}
	return fitsIn(src, res.Bytes, diskSize, "workspace's disk size", "give a larger --disk-size")
}

// seed copies a host directory or archive into /workspace.
func (m *Manager) seed(ctx context.Context, rec *record, src string) error {
	c, err := m.client(rec)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := archive.PackSeed(ctx, src, pw)
		pw.CloseWithError(err)
	}()
	_, err = c.TarIn(ctx, WorkspaceRoot, pr, false, nil)
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("seed /workspace from %s: %w", src, err)
	}
	return nil
}

func (m *Manager) baselineDir(id string) string { return filepath.Join(m.dir(id), "baseline") }

// recordBaseline stores the immutable create-time baseline of /workspace on
// the host: its manifest (with hashes) and a tar of its content, from which
// diffs read the old side. Nothing writes these files again. The manifest
// is written and read entry by entry, so a large tree costs its entries
// and not also a copy of their JSON.
func (m *Manager) recordBaseline(ctx context.Context, rec *record) error {
	c, err := m.client(rec)
	if err != nil {
		return err
	}
	dir := m.baselineDir(rec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The manifest's entries are let go before the tar is indexed.
	if err := recordManifest(ctx, c, filepath.Join(dir, "manifest.json")); err != nil {
		return err
	}
	tf, err := os.OpenFile(filepath.Join(dir, "tree.tar"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o400)
	if err != nil {
		return err
	}
	_, err = c.TarOut(ctx, WorkspaceRoot, tf)
	if cerr := tf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return m.writeBaselineIndex(rec.ID)
}

func recordManifest(ctx context.Context, c *guest.Client, p string) error {
	man, err := c.Manifest(ctx, WorkspaceRoot, true, nil)
	if err != nil {
		return err
	}
	return writeManifest(p, man)
}

// writeManifest writes man as JSON, one entry at a time.
func writeManifest(p string, man *guestproto.Manifest) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o400)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	enc := func(v any) {
		b, e := json.Marshal(v)
		if err == nil {
			err = e
		}
		w.Write(b)
	}
	w.WriteString(`{"root":`)
	enc(man.Root)
	w.WriteString(`,"entries":[`)
	for i := range man.Entries {
		if i > 0 {
			w.WriteByte(',')
		}
		enc(&man.Entries[i])
	}
	w.WriteString("]")
	if len(man.Warnings) > 0 {
		w.WriteString(`,"warnings":`)
		enc(man.Warnings)
	}
	w.WriteString("}\n")
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func (m *Manager) readBaseline(id string) (*guestproto.Manifest, error) {
	man, err := readManifestFile(filepath.Join(m.baselineDir(id), "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("baseline of %s: %w", id, err)
	}
	return man, nil
}

func readManifestFile(p string) (*guestproto.Manifest, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	man, err := readManifest(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", p, err)
	}
	return man, nil
}

// readManifest decodes a manifest's JSON one entry at a time.
func readManifest(r io.Reader) (*guestproto.Manifest, error) {
	dec := json.NewDecoder(r)
	man := &guestproto.Manifest{}
	expect := func(want json.Delim) error {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); !ok || d != want {
			return fmt.Errorf("want %v, found %v", want, t)
		}
		return nil
	}
	if err := expect('{'); err != nil {
		return nil, err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch t {
		case "entries":
			if err := expect('['); err != nil {
				return nil, err
			}
			for dec.More() {
				var e guestproto.ManifestEntry
				if err := dec.Decode(&e); err != nil {
					return nil, err
				}
				man.Entries = append(man.Entries, e)
			}
			if err := expect(']'); err != nil {
				return nil, err
			}
		case "root":
			err = dec.Decode(&man.Root)
		case "warnings":
			err = dec.Decode(&man.Warnings)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return nil, err
		}
	}
	return man, expect('}')
}

// guestPath turns a user's path into a clean absolute path inside
// /workspace: relative paths are taken from /workspace; anything that
// leaves it is refused.
func guestPath(p string) (string, error) {
	if p == "" {
		return WorkspaceRoot, nil
	}
	if !strings.HasPrefix(p, "/") {
		p = WorkspaceRoot + "/" + p
	}
	clean := path.Clean(p)
	if clean != WorkspaceRoot && !strings.HasPrefix(clean, WorkspaceRoot+"/") {
		return "", fmt.Errorf("guest path %q is outside /workspace: only paths under /workspace cross to the host: %w", p, errdefs.ErrInvalidArgument)
	}
	return clean, nil
}

// DiffOptions select what a diff reports.
type DiffOptions struct {
	// Paths limit the diff to these files or directories (relative to
	// /workspace, or absolute under it).
	Paths []string
	// NoPatch leaves patch text out. Changed files are still read (within
	// MaxPatchBytes) for line counts and binary detection, as for --stat.
	NoPatch bool
	// Exclude leaves out paths matching these gitignore patterns, taken
	// relative to /workspace ("__pycache__/", "*.log", "/build").
	Exclude []string
	// MaxPatchBytes bounds one file (0: fsdiff.DefaultMaxPatchBytes, 1 MiB):
	// a file larger than this is not read (patch_omitted "too large"), and
	// a longer patch is left out (patch_omitted "patch too large").
	MaxPatchBytes int64
	// MaxTotalPatchBytes bounds the patch text of the whole result (0:
	// fsdiff.DefaultMaxTotalPatchBytes, 16 MiB); later files keep their line
	// counts (patch_omitted "diff too large").
	MaxTotalPatchBytes int64
	// Offset and Limit page through the changed files in path order: at
	// most Limit (0: all) from Offset. Only the page's files are read.
	Offset, Limit int
}

// DiffResult is a structured diff of /workspace against the baseline.
type DiffResult = fsdiff.Result

// Diff compares the live /workspace with the create-time baseline. It reads
// the guest but changes nothing: no command log entry, no shell touched.
// Its cost follows what changed: the guest lists metadata, and only files
// whose metadata changed are hashed or read. Its memory does not grow with
// the size of the change: files are read a few at a time, as the patches
// are made, within MaxPatchBytes each, and the result holds at most
// MaxTotalPatchBytes of patches.
func (m *Manager) Diff(ctx context.Context, ref string, o DiffOptions) (*DiffResult, error) {
	rec, release, err := m.beginCall(ctx, ref, "diff")
	if err != nil {
		return nil, err
	}
	defer release()
	if o.MaxPatchBytes < 0 || o.MaxTotalPatchBytes < 0 {
		return nil, fmt.Errorf("max_patch_bytes and max_total_patch_bytes must not be negative (0 means the default): %w", errdefs.ErrInvalidArgument)
	}
	excl, err := ignore.Compile(o.Exclude)
	if err != nil {
		return nil, err
	}
	var filters []string
	for _, p := range o.Paths {
		gp, err := guestPath(p)
		if err != nil {
			return nil, err
		}
		filters = append(filters, strings.TrimPrefix(strings.TrimPrefix(gp, WorkspaceRoot), "/"))
	}
	c, err := m.client(rec)
	if err != nil {
		return nil, err
	}
	base, err := m.readBaseline(rec.ID)
	if err != nil {
		return nil, err
	}
	// The guest leaves excluded paths out too (and does not enter excluded
	// directories), so a big cache costs nothing to list.
	live, err := c.ManifestExcluding(ctx, WorkspaceRoot, false, nil, o.Exclude)
	if err != nil {
		return nil, fmt.Errorf("list /workspace: %w", err)
	}
	if err := fsdiff.Validate(live.Entries); err != nil {
		return nil, fmt.Errorf("the guest sent a bad listing: %w", err)
	}
	base.Entries = excludeEntries(base.Entries, excl)
	live.Entries = excludeEntries(live.Entries, excl)
	_, needHash := fsdiff.Changed(base.Entries, live.Entries)
	needHash = filterPaths(needHash, filters)
	if len(needHash) > 0 {
		hashed, err := c.ManifestExcluding(ctx, WorkspaceRoot, false, needHash, o.Exclude)
		if err != nil {
			return nil, fmt.Errorf("hash changed files: %w", err)
		}
		if err := fsdiff.Validate(hashed.Entries); err != nil {
			return nil, fmt.Errorf("the guest sent a bad listing: %w", err)
		}
		live = hashed
		live.Entries = excludeEntries(live.Entries, excl)
	}
	changes := fsdiff.Compare(base.Entries, live.Entries)
	if len(filters) > 0 {
		kept := changes[:0]
		for _, ch := range changes {
			if matchAny(ch.Path, filters) {
				kept = append(kept, ch)
			}
		}
		changes = kept
	}
	if o.Offset < 0 || o.Limit < 0 {
		return nil, errdefs.Arg("offset", "offset and limit must not be negative")
	}
	total, next := len(changes), 0
	changes = changes[min(o.Offset, total):]
	if o.Limit > 0 && len(changes) > o.Limit {
		changes, next = changes[:o.Limit], o.Offset+o.Limit
	}
	idx, err := m.openBaseline(rec.ID)
	if err != nil {
		return nil, fmt.Errorf("baseline of %s: %w", rec.ID, err)
	}
	defer idx.Close()
	load := func(ctx context.Context, side fsdiff.Side, p string, limit int64) ([]byte, error) {
		if side == fsdiff.Old {
			return idx.ReadFile(p, limit)
		}
		b := limitedBuffer{limit: int(limit)}
		if err := c.ReadFile(ctx, WorkspaceRoot+"/"+p, 0, limit+1, &b); err != nil {
			return nil, err
		}
		return b.buf, nil
	}
	// Without patches, the guest counts the lines of added files itself,
	// so their content does not cross.
	count := func(ctx context.Context, side fsdiff.Side, p string, limit int64) (int, bool, error) {
		if side == fsdiff.Old {
			b, err := idx.ReadFile(p, limit)
			if err != nil {
				return 0, false, err
			}
			return fsdiff.CountLines(b), fsdiff.IsBinary(b), nil
		}
		n, binary, err := c.CountLines(ctx, WorkspaceRoot+"/"+p, limit)
		return int(n), binary, err
	}
	res, err := fsdiff.Build(ctx, changes, load, fsdiff.Options{NoPatch: o.NoPatch, MaxPatchBytes: o.MaxPatchBytes, MaxTotalPatchBytes: o.MaxTotalPatchBytes, Count: count})
	if err != nil {
		return nil, err
	}
	res.TotalFiles, res.NextOffset = total, next
	return res, nil
}

// excludeEntries drops the manifest entries excl matches, in place.
func excludeEntries(entries []guestproto.ManifestEntry, excl *ignore.Matcher) []guestproto.ManifestEntry {
	if excl == nil {
		return entries
	}
	kept := entries[:0]
	for _, e := range entries {
		if !excl.Excluded(e.Path, e.Type == "dir") {
			kept = append(kept, e)
		}
	}
	return kept
}

type limitedBuffer struct {
	buf   []byte
	limit int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > b.limit {
		return 0, fmt.Errorf("file larger than %d bytes: %w", b.limit, errdefs.ErrResourceExhausted)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func matchAny(p string, filters []string) bool {
	for _, f := range filters {
		if f == "" || p == f || strings.HasPrefix(p, f+"/") {
			return true
		}
	}
	return false
}

func filterPaths(ps, filters []string) []string {
	if len(filters) == 0 {
		return ps
	}
	var out []string
	for _, p := range ps {
		if matchAny(p, filters) {
			out = append(out, p)
		}
	}
	return out
}

// ExportOptions configure an export.
type ExportOptions struct {
	// Archive writes a tar (or .tar.gz/.tgz by the destination's name)
	// instead of a directory.
	Archive bool
	// Force replaces a non-empty destination (atomically).
	Force bool
	// PreserveMode keeps setuid, setgid, sticky and world-write bits, which
	// an export drops by default.
	PreserveMode bool
	// Exclude leaves out paths matching these gitignore patterns, taken
	// relative to the exported directory.
	Exclude []string
}

// ExportResult says what an export wrote.
type ExportResult = api.ExportResult

// Export copies a file or directory under /workspace to a new host
// directory (or an archive). The guest's tar stream is validated on the
// host; the destination appears whole or not at all; symlinks stay
// symlinks and are never written through; device nodes are skipped with a
// warning; setuid, setgid, sticky and world-write bits are dropped unless
// PreserveMode. It touches no command log and no shell.
func (m *Manager) Export(ctx context.Context, ref, guestSrc, hostDest string, o ExportOptions) (*ExportResult, error) {
	rec, release, err := m.beginCall(ctx, ref, "export")
	if err != nil {
		return nil, err
	}
	defer release()
	gp, err := guestPath(guestSrc)
	if err != nil {
		return nil, err
	}
	if hostDest == "" {
		return nil, fmt.Errorf("no host destination given: %w", errdefs.ErrInvalidArgument)
	}
	dest, err := filepath.Abs(hostDest)
	if err != nil {
		return nil, err
	}
	excl, err := ignore.Compile(o.Exclude)
	if err != nil {
		return nil, err
	}
	c, err := m.client(rec)
	if err != nil {
		return nil, err
	}
	xo := archive.ExtractOptions{Force: o.Force, PreserveMode: o.PreserveMode, Exclude: excl}
	pr, pw := io.Pipe()
	var outRes *guestproto.FilesResult
	outErr := make(chan error, 1)
	go func() {
		r, err := c.TarOutExcluding(ctx, gp, o.Exclude, pw)
		outRes = r
		pw.CloseWithError(err)
		outErr <- err
	}()
	var res *archive.ExtractResult
	if o.Archive {
		res, err = archive.WriteArchive(ctx, pr, dest, xo)
	} else {
		res, err = archive.Extract(ctx, pr, dest, xo)
	}
	pr.CloseWithError(errors.New("export ended"))
	gerr := <-outErr
	if err != nil {
		// The guest's own failure (a missing path, say) reaches the
		// extractor through the pipe; report it as the cause.
		if gerr != nil && errors.Is(err, gerr) {
			return nil, fmt.Errorf("export %s: %w", gp, gerr)
		}
		return nil, fmt.Errorf("export %s to %s: %w", gp, dest, err)
	}
	if gerr != nil {
		return nil, fmt.Errorf("export %s: %w", gp, gerr)
	}
	out := &ExportResult{GuestPath: gp, HostPath: dest, Archive: o.Archive, Files: res.Files, Dirs: res.Dirs, Symlinks: res.Symlinks, Bytes: res.Bytes, Warnings: res.Warnings}
	if outRes != nil {
		out.Warnings = append(out.Warnings, outRes.Warnings...)
	}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	return out, nil
}
