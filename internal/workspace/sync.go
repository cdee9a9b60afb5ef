package workspace

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// SyncOptions configure a push.
type SyncOptions struct {
	// Dest is the guest directory to push into (default /workspace; must
	// be under it).
	Dest string
	// Delete removes guest files under Dest that are gone from the source.
	Delete bool
}

// SyncResult says what a push did.
type SyncResult = api.SyncResult

// hostEntry is one entry of the source tree.
type hostEntry struct {
	rel    string
	abs    string
	info   fs.FileInfo
	target string
}

// SyncPush pushes a host directory into the workspace. Only entries whose
// type, mode, size, mtime or symlink target differ from the guest's cross;
// mtimes are kept, so a repeated push of an unchanged tree sends nothing.
// It changes the live tree, never the baseline, and touches no command log
// and no shell.
func (m *Manager) SyncPush(ctx context.Context, ref, src string, o SyncOptions) (*SyncResult, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	dest, err := guestPath(o.Dest)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sync source %s does not exist: %w", src, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("sync source %s: %w", src, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("sync source %s is not a directory: push a directory (use --seed at create for archives): %w", src, errdefs.ErrInvalidArgument)
	}
	c, err := m.client(rec)
	if err != nil {
		return nil, err
	}
	entries, warnings, err := walkHost(ctx, src)
	if err != nil {
		return nil, err
	}
	// What the guest has now (a missing destination is simply empty).
	have := map[string]guestproto.ManifestEntry{}
	if man, err := c.Manifest(ctx, dest, false, nil); err == nil {
		for _, e := range man.Entries {
			have[e.Path] = e
		}
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("list %s: %w", dest, err)
	}
	var send []hostEntry
	keep := make([]string, 0, len(entries))
	for _, e := range entries {
		keep = append(keep, e.rel)
		if !sameEntry(e, have[e.rel]) {
			send = append(send, e)
		}
	}
	res := &SyncResult{Source: src, Dest: dest, Scanned: len(entries), Warnings: warnings}
	if len(send) == 0 && !o.Delete {
		return res, nil
	}
	pr, pw := io.Pipe()
	go func() {
		n, err := writeTar(ctx, pw, send)
		res.Bytes = n
		pw.CloseWithError(err)
	}()
	r, err := c.TarIn(ctx, dest, pr, o.Delete, keep)
	pr.CloseWithError(err)
	if err != nil {
		return nil, fmt.Errorf("push %s to %s: %w", src, dest, err)
	}
	res.Sent, res.Deleted = len(send), r.Deleted
	res.Warnings = append(res.Warnings, r.Warnings...)
	return res, nil
}

// walkHost lists a host tree without following symlinks, sorted by path.
func walkHost(ctx context.Context, root string) ([]hostEntry, []string, error) {
	var out []hostEntry
	warnings := []string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		e := hostEntry{rel: rel, abs: p, info: info}
		switch {
		case info.Mode().IsRegular(), info.IsDir():
		case info.Mode()&fs.ModeSymlink != 0:
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			warnings = append(warnings, fmt.Sprintf("skipped %s: not a regular file, directory or symlink", rel))
			return nil
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("scan %s: %w", root, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, warnings, nil
}

func entryType(info fs.FileInfo) string {
	switch {
	case info.Mode().IsRegular():
		return "file"
	case info.IsDir():
		return "dir"
	case info.Mode()&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "other"
}

func permBits(info fs.FileInfo) uint32 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Mode & 0o7777
	}
	return uint32(info.Mode().Perm())
}

func sameEntry(h hostEntry, g guestproto.ManifestEntry) bool {
	if g.Path == "" || entryType(h.info) != g.Type {
		return false
	}
	switch g.Type {
	case "symlink":
		return h.target == g.Target
	case "dir":
		return permBits(h.info) == g.Mode
	}
	return permBits(h.info) == g.Mode && h.info.Size() == g.Size && h.info.ModTime().UnixNano() == g.MtimeNS
}

// writeTar streams entries as a tar; it returns the content bytes written.
func writeTar(ctx context.Context, w io.Writer, entries []hostEntry) (int64, error) {
	tw := tar.NewWriter(w)
	var n int64
	for _, e := range entries {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		hdr := &tar.Header{Name: e.rel, Mode: int64(permBits(e.info)), ModTime: e.info.ModTime(), Format: tar.FormatPAX}
		switch entryType(e.info) {
		case "dir":
			hdr.Typeflag, hdr.Name = tar.TypeDir, e.rel+"/"
		case "symlink":
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.target
		case "file":
			hdr.Typeflag, hdr.Size = tar.TypeReg, e.info.Size()
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return n, err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		f, err := os.Open(e.abs)
		if err != nil {
			return n, fmt.Errorf("read %s: %w", e.abs, err)
		}
		c, err := io.CopyN(tw, f, hdr.Size)
		f.Close()
		n += c
		if err != nil {
			return n, fmt.Errorf("read %s (did it change during the push?): %w", e.abs, err)
		}
	}
	return n, tw.Close()
}
