package api

import "time"

// Reading files without booting, and named data disks (issue 15).

// FileEntry is one entry of a files listing.
type FileEntry struct {
	Name string `json:"name"`
	// Type is "file", "dir", "symlink" or "other".
	Type string `json:"type"`
	// Mode is the octal permission string ("0644").
	Mode   string    `json:"mode"`
	Size   int64     `json:"size"`
	Mtime  time.Time `json:"mtime"`
	Target string    `json:"target,omitempty"`
}

// Where a files operation read from.
const (
	// FilesFromDisk: the disks were read on the host (the workspace was
	// stopped, or a data disk); nothing booted.
	FilesFromDisk = "disk"
	// FilesFromGuest: the workspace was running; its agent read the files.
	FilesFromGuest = "guest"
)

// FilesListResult is the result of `workspace_files_list` and
// `disk_files_list`: the entries of a directory in name order (a path that
// is not a directory lists as itself).
type FilesListResult struct {
	Path    string      `json:"path"`
	Source  string      `json:"source"`
	Entries []FileEntry `json:"entries"`
	// Warnings say when the view may be stale (a disk whose journal was
	// not replayed: its VM was killed rather than stopped).
	Warnings []string `json:"warnings"`
}

// FilesCatResult is the result of `workspace_files_cat` and
// `disk_files_cat`. When the bytes stream (the CLI, HTTP NDJSON) Data is
// empty; otherwise it holds at most OutputLimit bytes from Offset
// (Truncated says more remain: continue from NextOffset).
type FilesCatResult struct {
	Path   string `json:"path"`
	Source string `json:"source"`
	// Size is the whole file's size.
	Size int64 `json:"size"`
	// Data is UTF-8 text, or base64 when Encoding is "base64".
	Data       string `json:"data"`
	Encoding   string `json:"encoding,omitempty"`
	Offset     int64  `json:"offset"`
	NextOffset int64  `json:"next_offset"`
	Truncated  bool   `json:"truncated"`
	// Warnings: as in FilesListResult.
	Warnings []string `json:"warnings"`
}

// FilesGetResult is the result of `workspace_files_get` and
// `disk_files_get`.
type FilesGetResult struct {
	Path     string   `json:"path"`
	HostPath string   `json:"host_path"`
	Source   string   `json:"source"`
	Files    int      `json:"files"`
	Dirs     int      `json:"dirs"`
	Symlinks int      `json:"symlinks"`
	Bytes    int64    `json:"bytes"`
	Warnings []string `json:"warnings"`
}

// FilesListRequest is the request of `workspace_files_list`.
type FilesListRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Path is a guest path; relative paths are taken from /workspace.
	Path string `json:"path,omitempty" cli:"arg" default:"/workspace"`
}

// FilesCatRequest is the request of `workspace_files_cat`.
type FilesCatRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Path      string `json:"path" cli:"arg"`
	Offset    int64  `json:"offset,omitempty"`
	// Limit reads at most this many bytes (0: to the end; a result that
	// does not stream holds at most OutputLimit).
	Limit int64 `json:"limit,omitempty"`
}

// FilesGetRequest is the request of `workspace_files_get`.
type FilesGetRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Path      string `json:"path" cli:"arg"`
	// HostDest is a new host path on the machine hearth runs on: the file
	// itself for a file, the directory for a directory.
	HostDest string `json:"host_dest" cli:"arg" host:"write"`
	// Force replaces an existing non-empty destination, whole.
	Force bool `json:"force,omitempty"`
}

// Disk is a named data disk.
type Disk struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// SizeBytes is the disk's size; UsedBytes what its file takes on the
	// host (it is sparse).
	SizeBytes int64 `json:"size_bytes"`
	UsedBytes int64 `json:"used_bytes"`
	// FSUsedBytes and FSFreeBytes are the ext4 file system's own figures.
	FSUsedBytes int64 `json:"fs_used_bytes"`
	FSFreeBytes int64 `json:"fs_free_bytes"`
	// From is the host directory or archive it was filled from, if any.
	From        string       `json:"from,omitempty"`
	Attachments []Attachment `json:"attachments"`
}

// Attachment is a disk attached to a workspace.
type Attachment struct {
	Disk      string `json:"disk"`
	Workspace string `json:"workspace"`
	// WorkspaceID is the workspace's id.
	WorkspaceID string `json:"workspace_id"`
	// Path is where the guest mounts it.
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only"`
}

// DiskList is the result of `disk_list`.
type DiskList struct {
	Disks []Disk `json:"disks"`
}

// DiskCheckResult is the result of `disk_check`.
type DiskCheckResult struct {
	Disk string `json:"disk"`
	// Clean is true when e2fsck found nothing wrong (or, with repair,
	// everything it found was fixed).
	Clean    bool   `json:"clean"`
	Repaired bool   `json:"repaired"`
	Output   string `json:"output"`
}

// DiskCreateRequest is the request of `disk_create`.
type DiskCreateRequest struct {
	Name string `json:"name" cli:"arg"`
	// Size is like "8G" or "512M".
	Size string `json:"size,omitempty" default:"1G" format:"size"`
	// Source is a host directory or archive (.tar, .tar.gz, .tgz, .zip) to
	// fill the disk from, validated like a seed (the CLI's --from).
	Source string `json:"source,omitempty" cli:"from" host:"read"`
}

// DiskRequest names a disk.
type DiskRequest struct {
	Disk string `json:"disk" path:"true" cli:"arg"`
}

// DiskListRequest is the request of `disk_list`.
type DiskListRequest struct{}

// DiskResizeRequest is the request of `disk_resize`.
type DiskResizeRequest struct {
	Disk string `json:"disk" path:"true" cli:"arg"`
	// Size is the new size: larger than the current one.
	Size string `json:"size" format:"size"`
}

// DiskExportRequest is the request of `disk_export`.
type DiskExportRequest struct {
	Disk string `json:"disk" path:"true" cli:"arg"`
	// HostDest is a new host directory, or an archive with archive=true.
	HostDest string `json:"host_dest" cli:"arg" host:"write"`
	Archive  bool   `json:"archive,omitempty"`
	Force    bool   `json:"force,omitempty"`
}

// DiskImportRequest is the request of `disk_import`.
type DiskImportRequest struct {
	Disk string `json:"disk" path:"true" cli:"arg"`
	// Source is a host directory or archive; it replaces the disk's
	// contents.
	Source string `json:"source" cli:"arg" host:"read"`
}

// DiskCheckRequest is the request of `disk_check`.
type DiskCheckRequest struct {
	Disk string `json:"disk" path:"true" cli:"arg"`
	// Repair fixes what can be fixed safely (e2fsck -p); the disk must be
	// detached.
	Repair bool `json:"repair,omitempty"`
}

// DiskFilesListRequest is the request of `disk_files_list`.
type DiskFilesListRequest struct {
	Disk string `json:"disk" path:"true" cli:"arg"`
	Path string `json:"path,omitempty" cli:"arg" default:"/"`
}

// DiskFilesCatRequest is the request of `disk_files_cat`.
type DiskFilesCatRequest struct {
	Disk   string `json:"disk" path:"true" cli:"arg"`
	Path   string `json:"path" cli:"arg"`
	Offset int64  `json:"offset,omitempty"`
	Limit  int64  `json:"limit,omitempty"`
}

// DiskFilesGetRequest is the request of `disk_files_get`.
type DiskFilesGetRequest struct {
	Disk     string `json:"disk" path:"true" cli:"arg"`
	Path     string `json:"path" cli:"arg"`
	HostDest string `json:"host_dest" cli:"arg" host:"write"`
	Force    bool   `json:"force,omitempty"`
}

// DiskAttachRequest is the request of `workspace_disk_attach`.
type DiskAttachRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Disk      string `json:"disk" cli:"arg"`
	// Path is where the guest mounts it (default /mnt/DISK).
	Path     string `json:"path,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty" cli:"ro"`
}

// DiskDetachRequest is the request of `workspace_disk_detach`.
type DiskDetachRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Disk      string `json:"disk" cli:"arg"`
}
