package fsdiff

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// Entry types as used in guestproto.ManifestEntry.Type.
const (
	typeFile    = "file"
	typeDir     = "dir"
	typeSymlink = "symlink"
)

// Change is one reported path with its baseline (Old) and live (New)
// entries; one of them is nil for added and deleted paths.
type Change struct {
	Path   string
	Status Status
	Old    *guestproto.ManifestEntry
	New    *guestproto.ManifestEntry
}

// Validate checks a manifest that came from the guest: paths relative,
// clean, without "..", unique and sorted; types known. The error wraps
// errdefs.ErrInvalidArgument and names the first bad entry.
func Validate(entries []guestproto.ManifestEntry) error {
	for i, e := range entries {
		p := e.Path
		bad := p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "." || p == ".." ||
			strings.HasPrefix(p, "../") || strings.IndexByte(p, 0) >= 0
		if bad {
			return fmt.Errorf("manifest entry %q: path is not a clean relative path: %w", p, errdefs.ErrInvalidArgument)
		}
		switch e.Type {
		case typeFile, typeDir, typeSymlink, "other":
		default:
			return fmt.Errorf("manifest entry %q: unknown type %q: %w", p, e.Type, errdefs.ErrInvalidArgument)
		}
		if e.Size < 0 {
			return fmt.Errorf("manifest entry %q: negative size: %w", p, errdefs.ErrInvalidArgument)
		}
		if i > 0 && entries[i-1].Path >= p {
			return fmt.Errorf("manifest entry %q: not sorted or duplicated after %q: %w", p, entries[i-1].Path, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// sorted returns entries sorted by path without duplicates (first wins),
// copying only when needed.
func sorted(entries []guestproto.ManifestEntry) []guestproto.ManifestEntry {
	ok := true
	for i := 1; i < len(entries); i++ {
		if entries[i-1].Path >= entries[i].Path {
			ok = false
			break
		}
	}
	if ok {
		return entries
	}
	c := append([]guestproto.ManifestEntry(nil), entries...)
	sort.SliceStable(c, func(i, j int) bool { return c[i].Path < c[j].Path })
	out := c[:0]
	for i := range c {
		if i == 0 || c[i].Path != c[i-1].Path {
			out = append(out, c[i])
		}
	}
	return out
}

// merge calls fn for every path of base and live in order, with the entry of
// each side (nil when absent).
func merge(base, live []guestproto.ManifestEntry, fn func(b, l *guestproto.ManifestEntry)) {
	i, j := 0, 0
	for i < len(base) || j < len(live) {
		switch {
		case j >= len(live) || (i < len(base) && base[i].Path < live[j].Path):
			fn(&base[i], nil)
			i++
		case i >= len(base) || live[j].Path < base[i].Path:
			fn(nil, &live[j])
			j++
		default:
			fn(&base[i], &live[j])
			i++
			j++
		}
	}
}

// statChanged reports whether the metadata of two entries of one path
// differs in a way that may hide a change.
func statChanged(b, l *guestproto.ManifestEntry) bool {
	return b.Type != l.Type || b.Mode != l.Mode || b.Size != l.Size || b.MtimeNS != l.MtimeNS ||
		b.Target != l.Target || (b.Inode != 0 && l.Inode != 0 && b.Inode != l.Inode)
}

// Changed compares metadata only. candidates lists, in path order, every
// path added, deleted or whose type, mode, size, mtime, inode or symlink
// target differs. needHash is the subset of regular files present on both
// sides with equal size: the caller asks the guest for their SHA-256 before
// calling Compare (a file whose size changed is modified anyway).
func Changed(base, live []guestproto.ManifestEntry) (candidates, needHash []string) {
	merge(sorted(base), sorted(live), func(b, l *guestproto.ManifestEntry) {
		switch {
		case b == nil:
			candidates = append(candidates, l.Path)
		case l == nil:
			candidates = append(candidates, b.Path)
		case statChanged(b, l):
			candidates = append(candidates, b.Path)
			if b.Type == typeFile && l.Type == typeFile && b.Size == l.Size {
				needHash = append(needHash, b.Path)
			}
		}
	})
	return candidates, needHash
}

// sameContent reports whether two regular-file entries hold the same bytes,
// as far as the manifests show.
func sameContent(b, l *guestproto.ManifestEntry) bool {
	if b.Size != l.Size {
		return false
	}
	if b.SHA256 != "" && l.SHA256 != "" {
		return strings.EqualFold(b.SHA256, l.SHA256)
	}
	return b.MtimeNS == l.MtimeNS && (b.Inode == 0 || l.Inode == 0 || b.Inode == l.Inode)
}

// hasChildren reports whether sorted entries hold a path beneath dir.
func hasChildren(entries []guestproto.ManifestEntry, dir string) bool {
	prefix := dir + "/"
	i := sort.Search(len(entries), func(i int) bool { return entries[i].Path >= prefix })
	return i < len(entries) && strings.HasPrefix(entries[i].Path, prefix)
}

// Compare returns the changes between the baseline and the live manifest,
// ordered by path, following the rules in the package comment. Live
// entries should carry SHA-256 for the paths Changed put in needHash.
func Compare(base, live []guestproto.ManifestEntry) []Change {
	base, live = sorted(base), sorted(live)
	var out []Change
	add := func(p string, s Status, b, l *guestproto.ManifestEntry) {
		out = append(out, Change{Path: p, Status: s, Old: b, New: l})
	}
	merge(base, live, func(b, l *guestproto.ManifestEntry) {
		switch {
		case b == nil:
			if l.Type != typeDir || !hasChildren(live, l.Path) {
				add(l.Path, Added, nil, l)
			}
		case l == nil:
			if b.Type != typeDir || !hasChildren(base, b.Path) {
				add(b.Path, Deleted, b, nil)
			}
		case b.Type != l.Type:
			add(b.Path, TypeChanged, b, l)
		case b.Type == typeFile:
			if !sameContent(b, l) {
				add(b.Path, Modified, b, l)
			} else if b.Mode != l.Mode {
				add(b.Path, ModeChanged, b, l)
			}
		case b.Type == typeSymlink:
			if b.Target != l.Target {
				add(b.Path, Modified, b, l)
			}
		default:
			if b.Mode != l.Mode {
				add(b.Path, ModeChanged, b, l)
			}
		}
	})
	return out
}
