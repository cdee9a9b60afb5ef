// Package fsdiff computes a structured diff of a live workspace tree against
// its immutable baseline, both described as guest manifests
// ([]guestproto.ManifestEntry, sorted by path).
//
// The cost follows what changed. The flow is:
//
//  1. Changed(base, live) compares metadata only (type, mode, size, mtime,
//     inode) in one merge pass and returns the candidate paths, and among
//     them the regular files whose type and size are unchanged: only those
//     need a content hash from the guest, so a file that was touched but
//     not changed is not reported.
//  2. The caller fetches a live manifest with hashes for those paths
//     (guestproto.FilesRequest.HashPaths) and calls Compare, which yields
//     one Change per reported path.
//  3. Build turns the changes into a Result, loading file contents through a
//     Loader (only for files up to MaxPatchBytes that changed, a few at a
//     time) to produce unified patches and line counts; a "modified" file
//     whose loaded sides turn out to be byte-identical is dropped (or
//     becomes mode_changed). The patch text of a result is bounded by
//     MaxTotalPatchBytes. FormatGit and FormatStat render a Result like git
//     diff and git diff --stat.
//
// Reporting rules:
//   - added / deleted: the path exists on one side only. Directories are
//     reported only when they are empty on the side where they exist;
//     otherwise the files inside speak for them.
//   - type_changed: file, dir, symlink or other changed into another type.
//   - modified: a regular file whose content differs (by size or SHA-256;
//     a file whose stat changed but which has no hash on both sides counts
//     as modified, since equality cannot be shown), or a symlink whose
//     target changed. If the permission bits changed as well, both modes
//     are shown.
//   - mode_changed: only the permission bits differ (files, directories,
//     other entries; symlink modes are meaningless and ignored).
//
// Modes appear in JSON as four-digit octal strings of the permission bits
// ("0644", "4755"). Output is ordered by path (byte order).
package fsdiff

import "github.com/hearthvm/hearth/api"

// Status is the kind of a change (api.DiffStatus).
type Status = api.DiffStatus

// Statuses.
const (
	Added       = api.DiffAdded
	Modified    = api.DiffModified
	Deleted     = api.DiffDeleted
	TypeChanged = api.DiffTypeChanged
	ModeChanged = api.DiffModeChanged
)

// Reasons in File.PatchOmitted. With "too large" and "content
// unavailable" the content was not read, so Insertions, Deletions and
// Binary are unknown (zero); with the other two they are right.
const (
	OmittedTooLarge      = "too large"           // a side is larger than Options.MaxPatchBytes
	OmittedUnavailable   = "content unavailable" // the Loader could not provide content
	OmittedPatchTooLarge = "patch too large"     // the patch is longer than Options.MaxPatchBytes
	OmittedBudget        = "diff too large"      // the result's patches reached Options.MaxTotalPatchBytes
)

// File is one changed path (api.DiffFile).
type File = api.DiffFile

// CountsKnown reports whether f's Insertions and Deletions are its real
// line counts (false when its content could not be read).
func CountsKnown(f *File) bool {
	return f.PatchOmitted != OmittedTooLarge && f.PatchOmitted != OmittedUnavailable
}

// Summary counts the changes of a Result (api.DiffSummary).
type Summary = api.DiffSummary

// Result is a structured diff (api.DiffResult).
type Result = api.DiffResult
