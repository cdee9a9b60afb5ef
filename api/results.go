package api

// Results of operations that are not described in api.go.

// WorkspaceList is the result of `workspace_list`.
type WorkspaceList struct {
	Workspaces []Workspace `json:"workspaces"`
}

// CommandList is the result of `workspace_logs`: one page of the log.
type CommandList struct {
	Commands []Command `json:"commands"`
	// Total is the number of entries before paging; NextOffset is where
	// the next page starts (equal to Total on the last page).
	Total      int `json:"total"`
	NextOffset int `json:"next_offset"`
}

// ShellList is the result of `shell_list`.
type ShellList struct {
	Shells []Shell `json:"shells"`
}

// LogsPruneResult is the result of `workspace_logs_prune`.
type LogsPruneResult struct {
	// Pruned are the ids whose output was removed, oldest first.
	Pruned []string `json:"pruned"`
	// FreedBytes is the output removed.
	FreedBytes int64 `json:"freed_bytes"`
	// LogBytes is what the log takes on the host afterwards.
	LogBytes int64 `json:"log_bytes"`
	// QuotaBytes is the log's quota.
	QuotaBytes int64 `json:"quota_bytes"`
}

// SyncResult is the result of `workspace_sync_push`.
type SyncResult struct {
	Source   string   `json:"source"`
	Dest     string   `json:"dest"`
	Scanned  int      `json:"scanned"`
	Sent     int      `json:"sent"`
	Bytes    int64    `json:"bytes"`
	Deleted  int64    `json:"deleted"`
	Warnings []string `json:"warnings"`
}

// ExportResult is the result of `workspace_export`.
type ExportResult struct {
	GuestPath string   `json:"guest_path"`
	HostPath  string   `json:"host_path"`
	Archive   bool     `json:"archive"`
	Files     int      `json:"files"`
	Dirs      int      `json:"dirs"`
	Symlinks  int      `json:"symlinks"`
	Bytes     int64    `json:"bytes"`
	Warnings  []string `json:"warnings"`
}

// DiffStatus is the kind of a change.
type DiffStatus string

// Diff statuses.
const (
	DiffAdded       DiffStatus = "added"
	DiffModified    DiffStatus = "modified"
	DiffDeleted     DiffStatus = "deleted"
	DiffTypeChanged DiffStatus = "type_changed"
	DiffModeChanged DiffStatus = "mode_changed"
)

// DiffFile is one changed path of a DiffResult.
type DiffFile struct {
	Path   string     `json:"path"`
	Status DiffStatus `json:"status"`
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
	// PatchOmitted says why a text file has no patch ("too large",
	// "content unavailable", "patch too large", "diff too large", or an
	// MCP bound); empty when it has one, is binary, or no_patch was asked.
	PatchOmitted string `json:"patch_omitted,omitempty"`
	Insertions   int    `json:"insertions"`
	Deletions    int    `json:"deletions"`
	OldTarget    string `json:"old_target,omitempty"`
	NewTarget    string `json:"new_target,omitempty"`
}

// DiffSummary counts the changes of a DiffResult.
type DiffSummary struct {
	Added       int `json:"added"`
	Modified    int `json:"modified"`
	Deleted     int `json:"deleted"`
	TypeChanged int `json:"type_changed"`
	ModeChanged int `json:"mode_changed"`
	Files       int `json:"files"`
	Insertions  int `json:"insertions"`
	Deletions   int `json:"deletions"`
}

// DiffResult is the result of `workspace_diff`: the live /workspace
// against its create-time baseline, files in path order.
type DiffResult struct {
	Files []DiffFile `json:"files"`
	// Summary counts the files of this page.
	Summary DiffSummary `json:"summary"`
	// TotalFiles is the number of changed files in the whole diff, over
	// every page.
	TotalFiles int `json:"total_files"`
	// NextOffset is the offset of the next page; absent on the last.
	NextOffset int `json:"next_offset,omitempty"`
}
