package ops

import (
	"context"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/workspace"
)

func init() {
	All = append(All, disksOps...)
	for k, v := range diskArgDocs {
		if _, ok := ArgDocs[k]; !ok {
			ArgDocs[k] = v
		}
	}
}

var diskArgDocs = map[string]string{
	"path":      "Path inside the workspace's file system (relative paths are taken from /workspace) or the disk (from its root); \"..\" may not climb above the root.",
	"disk":      "Data disk name (from disk_create or disk_list).",
	"size":      "Disk size (sparse) like \"8G\" or \"512M\".",
	"read_only": "Attach read-only: any number of workspaces may; a writable attachment is exclusive.",
	"repair":    "Fix what e2fsck -p can fix safely (the disk must be detached); without it the check changes nothing.",
	"disks":     "Named data disks to attach before the first boot, each \"NAME:/mnt/PATH\" or \"NAME:/mnt/PATH:ro\".",
}

const filesGuide = "Reads the workspace's files without booting it when it is stopped (its disks are read on the host, merged as the guest's overlay merges them: deleted files do not show), " +
	"and through its agent when it runs; source says which. "

var disksOps = []Op{
	{
		Name: "workspace_files_list", Summary: "List a directory of a workspace, booted or not",
		Guide: filesGuide + "Entries come in name order with type, octal mode, size, mtime and symlink targets. A path that is not a directory lists as itself.",
		CLI:   "workspace files ls", Go: "Workspace.FilesList", Python: "Workspace.files_list", Method: "GET", Path: "/v1/workspaces/{workspace}/files",
		Request: api.FilesListRequest{}, Result: api.FilesListResult{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.FilesListRequest, _ IO) (*api.FilesListResult, error) {
			return m.FilesList(ctx, r.Workspace, r.Path)
		}),
	},
	{
		Name: "workspace_files_cat", Summary: "Read a file of a workspace, booted or not",
		Guide: filesGuide + "Symlinks are followed. data holds at most 1 MiB from offset (base64 when not UTF-8); when truncated, continue from next_offset.",
		CLI:   "workspace files cat", Go: "Workspace.FilesCat", Python: "Workspace.files_cat", Method: "GET", Path: "/v1/workspaces/{workspace}/files/content",
		Request: api.FilesCatRequest{}, Result: api.FilesCatResult{}, ReadOnly: true, Idempotent: true,
		ArgsDoc: map[string]string{"limit": "Bytes to read at most (0: to the end; one result holds at most 1 MiB)."},
		local: bind(func(ctx context.Context, m *m, r api.FilesCatRequest, s IO) (*api.FilesCatResult, error) {
			return m.FilesCat(ctx, r.Workspace, r.Path, r.Offset, r.Limit, s.Stdout)
		}),
	},
	{
		Name: "workspace_files_get", Summary: "Copy a file or directory of a workspace to the host, booted or not",
		Guide: filesGuide + "A file lands at host_dest itself, a directory as the directory host_dest. The destination must be new or empty unless force; it appears whole or not at all, and nothing is written through a symlink.",
		CLI:   "workspace files get", Go: "Workspace.FilesGet", Python: "Workspace.files_get", Method: "POST", Path: "/v1/workspaces/{workspace}/files/get",
		Request: api.FilesGetRequest{}, Result: api.FilesGetResult{}, Destructive: true,
		ArgsDoc: map[string]string{"host_dest": "New host path to write: the file itself, or the directory.", "force": "Replace an existing non-empty destination, whole."},
		local: bind(func(ctx context.Context, m *m, r api.FilesGetRequest, _ IO) (*api.FilesGetResult, error) {
			return m.FilesGet(ctx, r.Workspace, r.Path, r.HostDest, r.Force)
		}),
	},
	{
		Name: "disk_create", Summary: "Create a named data disk (sparse ext4), optionally filled from the host",
		Guide: "A data disk outlives workspaces: attach it with workspace_disk_attach (or create's disks) writable to one workspace, or read-only to many.",
		CLI:   "disk create", Go: "Client.CreateDisk", Python: "Client.create_disk", Method: "POST", Path: "/v1/disks",
		Request: api.DiskCreateRequest{}, Result: api.Disk{},
		ArgsDoc: map[string]string{"name": "Name for the disk. Must be unique.",
			"source": "Host path (directory, .tar, .tar.gz, .tgz or .zip) on the machine hearth runs on whose files fill the disk; validated like a seed, so nothing is written if an entry leaves it (the CLI's --from)."},
		local: bind(func(ctx context.Context, m *m, r api.DiskCreateRequest, _ IO) (*api.Disk, error) {
			n, err := ParseSize(r.Size)
			if err != nil {
				return nil, errdefs.Arg("size", "%v", err)
			}
			return m.DiskCreate(ctx, workspace.DiskCreateOptions{Name: r.Name, Size: n, From: r.Source})
		}),
	},
	{
		Name: "disk_list", Summary: "List data disks", Guide: "Returns every data disk with its size, usage and attachments.",
		CLI: "disk list", Go: "Client.ListDisks", Python: "Client.list_disks", Method: "GET", Path: "/v1/disks",
		Request: api.DiskListRequest{}, Result: api.DiskList{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, _ api.DiskListRequest, _ IO) (*api.DiskList, error) {
			l, err := m.DiskList(ctx)
			if err != nil {
				return nil, err
			}
			return &api.DiskList{Disks: nonNil(l)}, nil
		}),
	},
	{
		Name: "disk_show", Summary: "Show one data disk", Guide: "Returns the disk's size, usage and attachments.",
		CLI: "disk show", Go: "Client.Disk", Python: "Client.disk", Method: "GET", Path: "/v1/disks/{disk}",
		Request: api.DiskRequest{}, Result: api.Disk{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.DiskRequest, _ IO) (*api.Disk, error) {
			return m.DiskGet(ctx, r.Disk)
		}),
	},
	{
		Name: "disk_delete", Summary: "Remove a data disk and its files",
		Guide: "Refused while it is attached (detach it first). This cannot be undone: copy what you need with disk_export.",
		CLI:   "disk rm", Go: "Client.DeleteDisk", Python: "Client.delete_disk", Method: "DELETE", Path: "/v1/disks/{disk}",
		Request: api.DiskRequest{}, Result: api.Disk{}, Destructive: true,
		local: bind(func(ctx context.Context, m *m, r api.DiskRequest, _ IO) (*api.Disk, error) {
			return m.DiskDelete(ctx, r.Disk)
		}),
	},
	{
		Name: "disk_resize", Summary: "Grow a detached data disk",
		Guide: "Grows the disk and its file system (e2fsck, then resize2fs). Disks only grow, and only while detached.",
		CLI:   "disk resize", Go: "Client.ResizeDisk", Python: "Client.resize_disk", Method: "POST", Path: "/v1/disks/{disk}/resize",
		Request: api.DiskResizeRequest{}, Result: api.Disk{}, Idempotent: true,
		ArgsDoc: map[string]string{"size": "New size, larger than the current one, like \"16G\"."},
		local: bind(func(ctx context.Context, m *m, r api.DiskResizeRequest, _ IO) (*api.Disk, error) {
			n, err := ParseSize(r.Size)
			if err != nil {
				return nil, errdefs.Arg("size", "%v", err)
			}
			return m.DiskResize(ctx, r.Disk, n)
		}),
	},
	{
		Name: "disk_export", Summary: "Copy a data disk's files to the host",
		Guide: "Writes the disk's whole tree to a new host directory, or a tar archive with archive=true; the destination appears whole or not at all.",
		CLI:   "disk export", Go: "Client.ExportDisk", Python: "Client.export_disk", Method: "POST", Path: "/v1/disks/{disk}/export",
		Request: api.DiskExportRequest{}, Result: api.FilesGetResult{}, Destructive: true,
		ArgsDoc: map[string]string{"force": "Replace an existing non-empty destination: everything at host_dest is removed and replaced, atomically."},
		local: bind(func(ctx context.Context, m *m, r api.DiskExportRequest, _ IO) (*api.FilesGetResult, error) {
			return m.DiskExport(ctx, r.Disk, r.HostDest, r.Archive, r.Force)
		}),
	},
	{
		Name: "disk_import", Summary: "Replace a detached data disk's files with a host directory or archive",
		Guide: "The source is validated like a seed before anything is written; the disk keeps its size. Refused while attached.",
		CLI:   "disk import", Go: "Client.ImportDisk", Python: "Client.import_disk", Method: "POST", Path: "/v1/disks/{disk}/import",
		Request: api.DiskImportRequest{}, Result: api.Disk{}, Destructive: true,
		ArgsDoc: map[string]string{"source": "Host directory or archive (.tar, .tar.gz, .tgz, .zip) on the machine hearth runs on whose files replace the disk's."},
		local: bind(func(ctx context.Context, m *m, r api.DiskImportRequest, _ IO) (*api.Disk, error) {
			return m.DiskImport(ctx, r.Disk, r.Source)
		}),
	},
	{
		Name: "disk_check", Summary: "Check a data disk's file system (e2fsck)",
		Guide: "Runs e2fsck -n, which changes nothing; repair=true runs e2fsck -p on a detached disk. output holds e2fsck's report.",
		CLI:   "disk check", Go: "Client.CheckDisk", Python: "Client.check_disk", Method: "POST", Path: "/v1/disks/{disk}/check",
		Request: api.DiskCheckRequest{}, Result: api.DiskCheckResult{},
		local: bind(func(ctx context.Context, m *m, r api.DiskCheckRequest, _ IO) (*api.DiskCheckResult, error) {
			return m.DiskCheck(ctx, r.Disk, r.Repair)
		}),
	},
	{
		Name: "disk_files_list", Summary: "List a directory of a data disk",
		Guide: "Reads the disk on the host (through the agent of the running workspace it is attached writable to, if any). Entries in name order.",
		CLI:   "disk files ls", Go: "Client.DiskFilesList", Python: "Client.disk_files_list", Method: "GET", Path: "/v1/disks/{disk}/files",
		Request: api.DiskFilesListRequest{}, Result: api.FilesListResult{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.DiskFilesListRequest, _ IO) (*api.FilesListResult, error) {
			return m.DiskFilesList(ctx, r.Disk, r.Path)
		}),
	},
	{
		Name: "disk_files_cat", Summary: "Read a file of a data disk",
		Guide: "Like workspace_files_cat, for a data disk: data holds at most 1 MiB from offset; continue from next_offset.",
		CLI:   "disk files cat", Go: "Client.DiskFilesCat", Python: "Client.disk_files_cat", Method: "GET", Path: "/v1/disks/{disk}/files/content",
		Request: api.DiskFilesCatRequest{}, Result: api.FilesCatResult{}, ReadOnly: true, Idempotent: true,
		ArgsDoc: map[string]string{"limit": "Bytes to read at most (0: to the end; one result holds at most 1 MiB)."},
		local: bind(func(ctx context.Context, m *m, r api.DiskFilesCatRequest, s IO) (*api.FilesCatResult, error) {
			return m.DiskFilesCat(ctx, r.Disk, r.Path, r.Offset, r.Limit, s.Stdout)
		}),
	},
	{
		Name: "disk_files_get", Summary: "Copy a file or directory of a data disk to the host",
		Guide: "Like workspace_files_get, for a data disk.",
		CLI:   "disk files get", Go: "Client.DiskFilesGet", Python: "Client.disk_files_get", Method: "POST", Path: "/v1/disks/{disk}/files/get",
		Request: api.DiskFilesGetRequest{}, Result: api.FilesGetResult{}, Destructive: true,
		ArgsDoc: map[string]string{"host_dest": "New host path to write: the file itself, or the directory.", "force": "Replace an existing non-empty destination, whole."},
		local: bind(func(ctx context.Context, m *m, r api.DiskFilesGetRequest, _ IO) (*api.FilesGetResult, error) {
			return m.DiskFilesGet(ctx, r.Disk, r.Path, r.HostDest, r.Force)
		}),
	},
	{
		Name: "workspace_disk_attach", Summary: "Attach a data disk to a stopped workspace",
		Guide: "The guest mounts it at path (default /mnt/DISK) from the next workspace_start on; attachments survive stop and start. " +
			"A disk is attached writable to one workspace or read-only to many: a conflicting attach fails naming the holder. Hot-attach to a running workspace is not supported.",
		CLI: "workspace disk attach", Go: "Workspace.AttachDisk", Python: "Workspace.attach_disk", Method: "POST", Path: "/v1/workspaces/{workspace}/disks",
		Request: api.DiskAttachRequest{}, Result: api.Workspace{},
		ArgsDoc: map[string]string{"path": "Guest path to mount the disk at, like /mnt/data (default /mnt/DISK)."},
		local: bind(func(ctx context.Context, m *m, r api.DiskAttachRequest, _ IO) (*api.Workspace, error) {
			return m.DiskAttach(ctx, r.Workspace, workspace.DiskAttachOptions{Disk: r.Disk, Path: r.Path, ReadOnly: r.ReadOnly})
		}),
	},
	{
		Name: "workspace_disk_detach", Summary: "Detach a data disk from a stopped workspace",
		Guide: "The disk and its files stay; attach it elsewhere with workspace_disk_attach.",
		CLI:   "workspace disk detach", Go: "Workspace.DetachDisk", Python: "Workspace.detach_disk", Method: "POST", Path: "/v1/workspaces/{workspace}/disks/detach",
		Request: api.DiskDetachRequest{}, Result: api.Workspace{}, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.DiskDetachRequest, _ IO) (*api.Workspace, error) {
			return m.DiskDetach(ctx, r.Workspace, r.Disk)
		}),
	},
}

// parseDisks parses workspace_create's disks.
func parseDisks(specs []string) ([]workspace.DiskAttachOptions, error) {
	var out []workspace.DiskAttachOptions
	for _, s := range specs {
		d, err := workspace.ParseDiskSpec(s)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
