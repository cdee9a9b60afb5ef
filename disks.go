package hearth

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/workspace"
)

// Reading files without booting, and named data disks.

type (
	// FileEntry is one entry of a files listing.
	FileEntry = api.FileEntry
	// FilesListResult is a directory listing: entries, where they were
	// read from, and warnings.
	FilesListResult = api.FilesListResult
	// FilesGetResult says what a files get or disk export wrote.
	FilesGetResult = api.FilesGetResult
	// Disk is a named data disk.
	Disk = api.Disk
	// DiskCheckResult is e2fsck's verdict on a disk.
	DiskCheckResult = api.DiskCheckResult
	// DiskAttachOptions attach a disk to a workspace (also CreateOptions.Disks).
	DiskAttachOptions = workspace.DiskAttachOptions
)

func diskSpecs(l []DiskAttachOptions) []string {
	var out []string
	for _, d := range l {
		out = append(out, d.String())
	}
	return out
}

// FilesList lists a directory of the workspace (relative paths from
// /workspace). A stopped workspace is read from its disks without booting.
func (w *Workspace) FilesList(ctx context.Context, path string) (*FilesListResult, error) {
	return invoke[FilesListResult](ctx, w.c, "workspace_files_list", &api.FilesListRequest{Workspace: w.ref, Path: path}, Streams{})
}

// FilesCat writes a file of the workspace to out (symlinks followed): n
// bytes from offset off (n 0: to the end). A stopped workspace is read
// from its disks without booting. It returns the bytes written.
func (w *Workspace) FilesCat(ctx context.Context, path string, off, n int64, out io.Writer) (int64, error) {
	return catRange(ctx, w.c, "workspace_files_cat", func(off, n int64) any {
		return &api.FilesCatRequest{Workspace: w.ref, Path: path, Offset: off, Limit: n}
	}, off, n, out)
}

// catRange reads [off, off+n) of a file (n 0: to the end): streamed
// in-process, paged by next_offset over HTTP.
func catRange(ctx context.Context, c *Client, op string, req func(off, n int64) any, off, n int64, out io.Writer) (int64, error) {
	start := off
	for {
		r, err := invoke[api.FilesCatResult](ctx, c, op, req(off, n), Streams{Stdout: out})
		if err != nil {
			return off - start, err
		}
		if r.Data == "" {
			return r.NextOffset - start, nil
		}
		b := []byte(r.Data)
		if r.Encoding == "base64" {
			if b, err = base64.StdEncoding.DecodeString(r.Data); err != nil {
				return off - start, fmt.Errorf("%s: bad base64 data: %w", op, errdefs.ErrInternal)
			}
		}
		if _, err := out.Write(b); err != nil {
			return off - start, err
		}
		got := r.NextOffset - off
		if !r.Truncated || got <= 0 {
			return r.NextOffset - start, nil
		}
		off = r.NextOffset
		if n > 0 {
			if n -= got; n <= 0 {
				return off - start, nil
			}
		}
	}
}

// FilesGet copies a file or directory of the workspace to a new host path.
func (w *Workspace) FilesGet(ctx context.Context, path, hostDest string, force bool) (*FilesGetResult, error) {
	req := api.FilesGetRequest{Workspace: w.ref, Path: path, HostDest: w.c.hostPath(hostDest), Force: force}
	return invoke[FilesGetResult](ctx, w.c, "workspace_files_get", &req, Streams{})
}

// AttachDisk attaches a data disk to the stopped workspace.
func (w *Workspace) AttachDisk(ctx context.Context, o DiskAttachOptions) (*WorkspaceInfo, error) {
	req := api.DiskAttachRequest{Workspace: w.ref, Disk: o.Disk, Path: o.Path, ReadOnly: o.ReadOnly}
	return invoke[WorkspaceInfo](ctx, w.c, "workspace_disk_attach", &req, Streams{})
}

// DetachDisk detaches a data disk from the stopped workspace.
func (w *Workspace) DetachDisk(ctx context.Context, disk string) (*WorkspaceInfo, error) {
	return invoke[WorkspaceInfo](ctx, w.c, "workspace_disk_detach", &api.DiskDetachRequest{Workspace: w.ref, Disk: disk}, Streams{})
}

// DiskCreateOptions configure a new data disk.
type DiskCreateOptions struct {
	Name string
	// Size in bytes (default 1 GiB).
	Size int64
	// From is a host directory or archive to fill it from.
	From string
}

// CreateDisk makes a named data disk.
func (c *Client) CreateDisk(ctx context.Context, o DiskCreateOptions) (*Disk, error) {
	req := api.DiskCreateRequest{Name: o.Name, Source: c.hostPath(o.From)}
	if o.Size > 0 {
		req.Size = strconv.FormatInt(o.Size, 10)
	}
	return invoke[Disk](ctx, c, "disk_create", &req, Streams{})
}

// ListDisks returns every data disk.
func (c *Client) ListDisks(ctx context.Context) ([]Disk, error) {
	l, err := invoke[api.DiskList](ctx, c, "disk_list", &api.DiskListRequest{}, Streams{})
	if err != nil {
		return nil, err
	}
	return l.Disks, nil
}

// Disk returns one data disk.
func (c *Client) Disk(ctx context.Context, name string) (*Disk, error) {
	return invoke[Disk](ctx, c, "disk_show", &api.DiskRequest{Disk: name}, Streams{})
}

// DeleteDisk removes a detached data disk.
func (c *Client) DeleteDisk(ctx context.Context, name string) (*Disk, error) {
	return invoke[Disk](ctx, c, "disk_delete", &api.DiskRequest{Disk: name}, Streams{})
}

// ResizeDisk grows a detached data disk to size bytes.
func (c *Client) ResizeDisk(ctx context.Context, name string, size int64) (*Disk, error) {
	return invoke[Disk](ctx, c, "disk_resize", &api.DiskResizeRequest{Disk: name, Size: strconv.FormatInt(size, 10)}, Streams{})
}

// ExportDisk copies a disk's files to a new host directory (or archive).
func (c *Client) ExportDisk(ctx context.Context, name, hostDest string, archive, force bool) (*FilesGetResult, error) {
	req := api.DiskExportRequest{Disk: name, HostDest: c.hostPath(hostDest), Archive: archive, Force: force}
	return invoke[FilesGetResult](ctx, c, "disk_export", &req, Streams{})
}

// ImportDisk replaces a detached disk's files with a host directory or archive.
func (c *Client) ImportDisk(ctx context.Context, name, source string) (*Disk, error) {
	return invoke[Disk](ctx, c, "disk_import", &api.DiskImportRequest{Disk: name, Source: c.hostPath(source)}, Streams{})
}

// CheckDisk runs e2fsck on a disk (repair: fix what is safe; detached only).
func (c *Client) CheckDisk(ctx context.Context, name string, repair bool) (*DiskCheckResult, error) {
	return invoke[DiskCheckResult](ctx, c, "disk_check", &api.DiskCheckRequest{Disk: name, Repair: repair}, Streams{})
}

// DiskFilesList lists a directory of a data disk.
func (c *Client) DiskFilesList(ctx context.Context, name, path string) (*FilesListResult, error) {
	return invoke[FilesListResult](ctx, c, "disk_files_list", &api.DiskFilesListRequest{Disk: name, Path: path}, Streams{})
}

// DiskFilesCat writes n bytes (0: all) from off of a file of a data disk to out.
func (c *Client) DiskFilesCat(ctx context.Context, name, path string, off, n int64, out io.Writer) (int64, error) {
	return catRange(ctx, c, "disk_files_cat", func(off, n int64) any {
		return &api.DiskFilesCatRequest{Disk: name, Path: path, Offset: off, Limit: n}
	}, off, n, out)
}

// DiskFilesGet copies a file or directory of a data disk to a new host path.
func (c *Client) DiskFilesGet(ctx context.Context, name, path, hostDest string, force bool) (*FilesGetResult, error) {
	req := api.DiskFilesGetRequest{Disk: name, Path: path, HostDest: c.hostPath(hostDest), Force: force}
	return invoke[FilesGetResult](ctx, c, "disk_files_get", &req, Streams{})
}

// ParseDiskSpec parses "NAME:/mnt/PATH[:ro]", the CLI's --disk.
func ParseDiskSpec(s string) (DiskAttachOptions, error) { return workspace.ParseDiskSpec(s) }
