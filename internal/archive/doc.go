// Package archive is the host side of moving file trees across the VM
// boundary.
//
// PackSeed turns a host directory or archive (tar, tar.gz, tar.bz2, zip) into
// a normalised tar stream for the guest. Extract and WriteArchive take an
// untrusted tar stream produced by the guest and write it to a new host
// directory or archive file. Walk is the validating reader both of them use;
// ListTar collects its entries and ReadFiles reads chosen files into memory
// (bounded per file). CheckSeed validates a seed without writing anything.
// IndexTar gives random access to the files of a stored uncompressed tar
// (a seed or baseline), for diffs that need a few old file contents.
//
// Everything that comes out of the guest is treated as hostile. The rules,
// applied by one validator to seeds and guest streams alike:
//
//   - Names are relative, slash-separated and cleaned: a leading "./" is
//     dropped, absolute names, ".." components and NUL bytes are rejected.
//   - An entry beneath a symlink entry ("link -> x" then "link/file") is
//     rejected, as is an entry beneath a non-directory.
//   - A name may appear twice only if both entries are directories;
//     any other duplicate is rejected as conflicting.
//   - Hard links must name a regular file that came earlier in the same
//     archive; anything else is rejected.
//   - Device nodes, fifos, sockets and unknown entry types are skipped with
//     one warning each (never created, never rejected).
//   - Symlinks are kept as symlinks. In a seed (PackSeed), a symlink whose
//     target is absolute or resolves outside the root (following the other
//     symlinks of the seed) rejects the seed. In a guest stream (Extract,
//     WriteArchive) such symlinks are kept with a warning: they are never
//     followed while writing, and refusing them would make ordinary trees
//     (Python virtualenvs, for example) impossible to export.
//
// Any rejection fails the whole operation with an error that names the entry,
// wraps errdefs.ErrInvalidArgument and says what to do. Extract and
// WriteArchive then leave no trace: they build their output beside the
// destination and rename it into place only when everything succeeded.
//
// Bounds: an archive may hold at most DefaultMaxEntries names, counting the
// directories its names imply (HEARTH_MAX_ARCHIVE_ENTRIES changes it; an
// option overrides both). Names and symlink targets are at most 4096 bytes.
// The validator remembers names by a keyed hash, so its memory is under 100
// bytes a name; Extract keeps a few words per directory. Work per entry is
// linear in the length of its name. Over the limit, the operation fails with
// errdefs.ErrResourceExhausted and an error that names the limit and how to
// raise it.
//
// Modes: PackSeed and PackDir keep all mode bits (0o7777): they write into
// the guest, which is the sandbox. Extract and WriteArchive write on the
// host, and drop setuid, setgid, sticky and the world-write bit unless
// ExtractOptions.PreserveMode is set. Ownership is never carried: packed
// entries are uid/gid 0 and extracted files belong to the calling user.
// Modification times are kept with nanosecond precision (PAX headers).
//
// Exclusions: ExtractOptions.Exclude and PackOptions.Exclude take gitignore
// patterns (package ignore), matched against the names relative to the root
// of the operation. Excluded entries are not written; inside a directory
// walk (PackDir, ScanDir) excluded directories are not even entered.
package archive

import (
	"time"

	"github.com/hearthvm/hearth/internal/ignore"
)

// PackResult summarises PackSeed.
type PackResult struct {
	// Entries is the number of entries written (directories, files,
	// symlinks, hard links).
	Entries int64 `json:"entries"`
	// Bytes is the total size of regular file contents written.
	Bytes int64 `json:"bytes"`
	// Warnings lists entries skipped (device nodes, fifos, sockets).
	Warnings []string `json:"warnings,omitempty"`
}

// ExtractOptions controls Extract and WriteArchive.
type ExtractOptions struct {
	// Force replaces an existing non-empty destination directory (Extract)
	// or an existing file (WriteArchive). The replacement is atomic.
	Force bool
	// Strip is an optional leading directory to remove from every name
	// ("src" turns "src/a.txt" into "a.txt"). The entry named Strip itself
	// is the root and is not written. Entries outside Strip are rejected.
	Strip string
	// PreserveMode keeps setuid, setgid, sticky and world-write bits, which
	// are dropped by default.
	PreserveMode bool
	// Exclude leaves out the entries it matches (names after Strip). They
	// are still validated, so a hostile stream fails the same way.
	Exclude *ignore.Matcher
	// MaxEntries bounds the names the stream may hold (0: the default,
	// see DefaultMaxEntries and MaxEntriesEnv).
	MaxEntries int
}

// hostMode is the mode an extraction writes for archive mode bits m.
func hostMode(m uint32, preserve bool) uint32 {
	if preserve {
		return m & 0o7777
	}
	return m & 0o775
}

// ExtractResult summarises Extract and WriteArchive.
type ExtractResult struct {
	Files    int      `json:"files"` // regular files and hard links
	Dirs     int      `json:"dirs"`
	Symlinks int      `json:"symlinks"`
	Bytes    int64    `json:"bytes"` // regular file content bytes
	Warnings []string `json:"warnings,omitempty"`
}

// EntryType is the kind of a validated archive entry.
type EntryType string

// Entry types.
const (
	TypeFile     EntryType = "file"
	TypeDir      EntryType = "dir"
	TypeSymlink  EntryType = "symlink"
	TypeHardlink EntryType = "hardlink"
)

// Entry is one validated archive entry.
type Entry struct {
	// Name is relative, slash-separated, cleaned, without a trailing slash.
	Name string    `json:"name"`
	Type EntryType `json:"type"`
	// Mode holds the mode bits as found in the archive (0o7777).
	Mode    uint32    `json:"mode"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	// Linkname is the symlink target (verbatim) or, for hard links, the
	// cleaned name of the earlier entry it links to.
	Linkname string `json:"linkname,omitempty"`
	// linked marks a regular file of a host directory with more than one
	// link (see walkDir).
	linked bool
}
