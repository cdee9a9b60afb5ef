package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/archive"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/fsdiff"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// WorkspaceRoot is the guest directory every workspace revolves around.
const WorkspaceRoot = "/workspace"

// checkSeed validates a seed on the host before any VM is booted: a seed
// that does not exist, cannot be read, or holds hostile entries fails here
// with nothing created.
func checkSeed(ctx context.Context, src string) error {
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--seed %s does not exist: give a directory or a .tar, .tar.gz, .tgz or .zip file: %w", src, errdefs.ErrNotFound)
		}
		return fmt.Errorf("--seed %s: %w: %w", src, err, errdefs.ErrInvalidArgument)
	}
	if _, err := archive.CheckSeed(ctx, src); err != nil {
		return fmt.Errorf("--seed %s: %w", src, err)
	}
	return nil
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
// diffs read the old side. Nothing writes these files again.
func (m *Manager) recordBaseline(ctx context.Context, rec *record) error {
	c, err := m.client(rec)
	if err != nil {
		return err
	}
	dir := m.baselineDir(rec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	man, err := c.Manifest(ctx, WorkspaceRoot, true, nil)
	if err != nil {
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
	if err := m.writeBaselineIndex(rec.ID); err != nil {
		return err
	}
	b, err := json.Marshal(man)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o400)
}

func (m *Manager) readBaseline(id string) (*guestproto.Manifest, error) {
	b, err := os.ReadFile(filepath.Join(m.baselineDir(id), "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("baseline of %s: %w", id, err)
	}
	var man guestproto.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, fmt.Errorf("baseline of %s is corrupt: %w", id, err)
	}
	return &man, nil
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
	// NoPatch leaves patches out (for --stat and cheap summaries).
	NoPatch bool
}

// DiffResult is a structured diff of /workspace against the baseline.
type DiffResult = fsdiff.Result

// Diff compares the live /workspace with the create-time baseline. It reads
// the guest but changes nothing: no command log entry, no shell touched.
// Its cost follows what changed: the guest lists metadata, and only files
// whose metadata changed are hashed or read.
func (m *Manager) Diff(ctx context.Context, ref string, o DiffOptions) (*DiffResult, error) {
	rec, err := m.resolve(ref)
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
	live, err := c.Manifest(ctx, WorkspaceRoot, false, nil)
	if err != nil {
		return nil, fmt.Errorf("list /workspace: %w", err)
	}
	if err := fsdiff.Validate(live.Entries); err != nil {
		return nil, fmt.Errorf("the guest sent a bad listing: %w", err)
	}
	_, needHash := fsdiff.Changed(base.Entries, live.Entries)
	needHash = filterPaths(needHash, filters)
	if len(needHash) > 0 {
		hashed, err := c.Manifest(ctx, WorkspaceRoot, false, needHash)
		if err != nil {
			return nil, fmt.Errorf("hash changed files: %w", err)
		}
		if err := fsdiff.Validate(hashed.Entries); err != nil {
			return nil, fmt.Errorf("the guest sent a bad listing: %w", err)
		}
		live = hashed
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
	var load fsdiff.Loader
	if !o.NoPatch {
		idx, err := m.openBaseline(rec.ID)
		if err != nil {
			return nil, fmt.Errorf("baseline of %s: %w", rec.ID, err)
		}
		defer idx.Close()
		fetched := prefetch(ctx, c, changes)
		load = func(ctx context.Context, side fsdiff.Side, p string) ([]byte, error) {
			if side == fsdiff.Old {
				return idx.ReadFile(p, fsdiff.DefaultMaxFileBytes)
			}
			if b, ok := fetched[p]; ok {
				return b, nil
			}
			var b limitedBuffer
			b.limit = fsdiff.DefaultMaxFileBytes
			if err := c.ReadFile(ctx, WorkspaceRoot+"/"+p, 0, fsdiff.DefaultMaxFileBytes+1, &b); err != nil {
				return nil, err
			}
			return b.buf, nil
		}
	}
	return fsdiff.Build(ctx, changes, load, fsdiff.Options{})
}

// prefetch reads the live content of the changed files a patch needs, a
// few at a time: each read is a round trip to the guest, and a diff of
// many files would otherwise pay them one after another.
func prefetch(ctx context.Context, c *guest.Client, changes []fsdiff.Change) map[string][]byte {
	var paths []string
	for _, ch := range changes {
		if ch.New != nil && ch.New.Type == "file" && ch.New.Size <= fsdiff.DefaultMaxFileBytes && ch.Status != fsdiff.Status("deleted") {
			paths = append(paths, ch.Path)
		}
	}
	out := make(map[string][]byte, len(paths))
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan string)
	for range min(4, len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				b := limitedBuffer{limit: fsdiff.DefaultMaxFileBytes}
				if err := c.ReadFile(ctx, WorkspaceRoot+"/"+p, 0, fsdiff.DefaultMaxFileBytes+1, &b); err == nil {
					mu.Lock()
					out[p] = b.buf
					mu.Unlock()
				}
			}
		}()
	}
	for _, p := range paths {
		work <- p
	}
	close(work)
	wg.Wait()
	return out
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
}

// ExportResult says what an export wrote.
type ExportResult = api.ExportResult

// Export copies a file or directory under /workspace to a new host
// directory (or an archive). The guest's tar stream is validated on the
// host; the destination appears whole or not at all; symlinks stay
// symlinks and are never written through; device nodes are skipped with a
// warning. It touches no command log and no shell.
func (m *Manager) Export(ctx context.Context, ref, guestSrc, hostDest string, o ExportOptions) (*ExportResult, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
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
	c, err := m.client(rec)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	var outRes *guestproto.FilesResult
	outErr := make(chan error, 1)
	go func() {
		r, err := c.TarOut(ctx, gp, pw)
		outRes = r
		pw.CloseWithError(err)
		outErr <- err
	}()
	var res *archive.ExtractResult
	if o.Archive {
		res, err = archive.WriteArchive(ctx, pr, dest, archive.ExtractOptions{Force: o.Force})
	} else {
		res, err = archive.Extract(ctx, pr, dest, archive.ExtractOptions{Force: o.Force})
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
