package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/archive"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/ignore"
)

// SyncOptions configure a push.
type SyncOptions struct {
	// Dest is the guest directory to push into (default /workspace; must
	// be under it).
	Dest string
	// Delete removes guest files under Dest that are gone from the source.
	// Excluded paths are never deleted.
	Delete bool
	// Exclude leaves out paths matching these gitignore patterns, taken
	// relative to the source directory: they are not sent, and with Delete
	// the guest's copies of them are kept.
	Exclude []string
}

// SyncResult says what a push did.
type SyncResult = api.SyncResult

// SyncPush pushes a host directory into the workspace. Only entries whose
// type, mode, size, mtime or symlink target differ from the guest's cross;
// mtimes are kept, so a repeated push of an unchanged tree sends nothing.
// The source is read under the seed rules (package archive): a symlink
// that is absolute or leaves the source fails the push before anything is
// sent, unless excluded, and hard links stay hard links. It changes the
// live tree, never the baseline, and touches no command log and no shell.
func (m *Manager) SyncPush(ctx context.Context, ref, src string, o SyncOptions) (*SyncResult, error) {
	rec, release, err := m.beginCall(ctx, ref, "sync push")
	if err != nil {
		return nil, err
	}
	defer release()
	dest, err := guestPath(o.Dest)
	if err != nil {
		return nil, err
	}
	excl, err := ignore.Compile(o.Exclude)
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
		return nil, fmt.Errorf("sync source %s is not a directory: push a directory (an archive can seed a workspace at create): %w", src, errdefs.ErrInvalidArgument)
	}
	c, err := m.client(rec)
	if err != nil {
		return nil, err
	}
	// What the guest has now (a missing destination is simply empty).
	have := map[string]guestproto.ManifestEntry{}
	if man, err := c.ManifestExcluding(ctx, dest, false, nil, o.Exclude); err == nil {
		for _, e := range man.Entries {
			have[e.Path] = e
		}
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("list %s: %w", dest, err)
	}
	// Pass 1: validate the whole source and choose what to send.
	send := map[string]bool{}
	var keep []string
	scan, err := archive.ScanDir(ctx, src, archive.PackOptions{Exclude: excl}, func(e *archive.Entry) error {
		keep = append(keep, e.Name)
		if !sameEntry(e, have[e.Name]) {
			send[e.Name] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res := &SyncResult{Source: src, Dest: dest, Scanned: int(scan.Entries), Warnings: scan.Warnings}
	if res.Warnings == nil {
		res.Warnings = []string{}
	}
	if len(send) == 0 && !o.Delete {
		return res, nil
	}
	// Pass 2: send the chosen entries.
	pr, pw := io.Pipe()
	packed := make(chan *archive.PackResult, 1)
	go func() {
		r, err := archive.PackDir(ctx, src, pw, archive.PackOptions{Exclude: excl, Select: func(e *archive.Entry) bool { return send[e.Name] }})
		packed <- r
		pw.CloseWithError(err)
	}()
	// With Delete, the guest keeps what the patterns exclude.
	r, err := c.TarInExcluding(ctx, dest, pr, o.Delete, keep, o.Exclude)
	pr.CloseWithError(err)
	pk := <-packed
	if err != nil {
		return nil, fmt.Errorf("push %s to %s: %w", src, dest, err)
	}
	if pk == nil {
		// The guest finished while packing failed: not reached in
		// practice, since the guest sees the stream end early.
		return nil, fmt.Errorf("push %s to %s: packing failed: %w", src, dest, errdefs.ErrInternal)
	}
	res.Sent, res.Bytes, res.Deleted = int(pk.Entries), pk.Bytes, r.Deleted
	res.Warnings = append(res.Warnings, r.Warnings...)
	return res, nil
}

// sameEntry reports whether a source entry matches what the guest has.
func sameEntry(e *archive.Entry, g guestproto.ManifestEntry) bool {
	if g.Path == "" {
		return false
	}
	switch e.Type {
	case archive.TypeSymlink:
		return g.Type == "symlink" && e.Linkname == g.Target
	case archive.TypeDir:
		return g.Type == "dir" && e.Mode == g.Mode
	}
	// Files and hard links (a regular file in the guest).
	return g.Type == "file" && e.Mode == g.Mode && e.Size == g.Size && e.ModTime.UnixNano() == g.MtimeNS
}
