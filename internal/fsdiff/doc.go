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

// Status is the kind of a change.
type Status string

// Statuses.
const (
	Added       Status = "added"
	Modified    Status = "modified"
	Deleted     Status = "deleted"
	TypeChanged Status = "type_changed"
	ModeChanged Status = "mode_changed"
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

// CountsKnown reports whether f's Insertions and Deletions are its real
// line counts (false when its content could not be read).
func (f *File) CountsKnown() bool {
	return f.PatchOmitted != OmittedTooLarge && f.PatchOmitted != OmittedUnavailable
}

// File is one changed path.
type File struct {
	Path   string `json:"path"`
	Status Status `json:"status"`
	// Type is the entry type now ("file", "dir", "symlink", "other"); for a
	// deleted entry, the type it had. OldType is set for type_changed.
	Type    string `json:"type"`
	OldType string `json:"old_type,omitempty"`
	// OldMode and NewMode are octal permission strings ("0644") of the
	// sides that exist.
	OldMode string `json:"old_mode,omitempty"`
	NewMode string `json:"new_mode,omitempty"`
	// OldSize and NewSize are set for files and symlinks on the sides that
	// exist.
	OldSize *int64 `json:"old_size,omitempty"`
	NewSize *int64 `json:"new_size,omitempty"`
	// Binary is set when either side's content is binary (see IsBinary).
	Binary bool `json:"binary"`
	// Patch is a unified diff ("--- a/p", "+++ b/p", hunks) for text files
	// and symlink targets; empty for binary files, with no_patch, and when
	// omitted.
	Patch string `json:"patch,omitempty"`
	// PatchOmitted says why a text file has no patch (see the Omitted
	// constants); empty when it has one, is binary, or no_patch was asked.
	PatchOmitted string `json:"patch_omitted,omitempty"`
	Insertions   int    `json:"insertions"`
	Deletions    int    `json:"deletions"`
	OldTarget    string `json:"old_target,omitempty"`
	NewTarget    string `json:"new_target,omitempty"`
}

// Summary counts the changes of a Result.
type Summary struct {
	Added       int `json:"added"`
	Modified    int `json:"modified"`
	Deleted     int `json:"deleted"`
	TypeChanged int `json:"type_changed"`
	ModeChanged int `json:"mode_changed"`
	Files       int `json:"files"`
	Insertions  int `json:"insertions"`
	Deletions   int `json:"deletions"`
}

// Result is a structured diff.
type Result struct {
	Files   []File  `json:"files"`
	Summary Summary `json:"summary"`
}
