package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/archive"
	"github.com/hearthvm/hearth/internal/diskfs"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// Reading a workspace's files: from its disks on the host while it is
// stopped (package diskfs merges them as the guest's overlay does; nothing
// boots), through its agent while it runs. Both give the same entries.

// fileReader is one way of reading a tree: disks on the host, or an agent.
type fileReader interface {
	source() string
	// warnings say when what it reads may be stale.
	warnings() []string
	list(ctx context.Context, p string) ([]api.FileEntry, error)
	// stat follows symlinks; it returns the resolved path.
	stat(ctx context.Context, p string) (api.FileEntry, string, error)
	// cat writes [off, off+n) (n < 0: to the end) of the regular file p.
	cat(ctx context.Context, p string, off, n int64, w io.Writer) (int64, error)
	// tar writes a tar of directory p (entries relative to it).
	tar(ctx context.Context, p string, w io.Writer) ([]string, error)
}

// viewReader reads a diskfs view.
type viewReader struct {
	v     *diskfs.View
	warns []string
}

func (viewReader) source() string       { return api.FilesFromDisk }
func (r viewReader) warnings() []string { return r.warns }

// staleWarnings names the images whose journal holds unreplayed writes.
func staleWarnings(imgs map[string]*diskfs.Image) []string {
	var out []string
	for what, im := range imgs {
		if im != nil && im.NeedsRecovery() {
			out = append(out, what+" was not shut down cleanly (its VM was killed): its journal was not replayed, so the last writes may be missing here; start the workspace to recover it")
		}
	}
	sort.Strings(out)
	return out
}

func fileEntry(e *diskfs.Entry) api.FileEntry {
	return api.FileEntry{Name: e.Name, Type: e.Type, Mode: fmt.Sprintf("%04o", e.Mode), Size: e.Size, Mtime: e.Mtime, Target: e.Target}
}

func (r viewReader) list(ctx context.Context, p string) ([]api.FileEntry, error) {
	es, err := r.v.List(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]api.FileEntry, len(es))
	for i := range es {
		out[i] = fileEntry(&es[i])
	}
	return out, nil
}

func (r viewReader) stat(ctx context.Context, p string) (api.FileEntry, string, error) {
	e, err := r.v.Stat(ctx, p, true)
	if err != nil {
		return api.FileEntry{}, "", err
	}
	return fileEntry(e), p, nil
}

func (r viewReader) cat(ctx context.Context, p string, off, n int64, w io.Writer) (int64, error) {
	_, c, err := r.v.Cat(ctx, p, off, n, w)
	return c, err
}

func (r viewReader) tar(ctx context.Context, p string, w io.Writer) ([]string, error) {
	var warns []string
	tw := tar.NewWriter(w)
	err := r.v.Walk(ctx, p, func(rel string, e *diskfs.Entry) error {
		if rel == "" {
			return nil
		}
		h := &tar.Header{Name: rel, Mode: int64(e.Mode), ModTime: e.Mtime, Format: tar.FormatPAX}
		switch e.Type {
		case "dir":
			h.Typeflag, h.Name = tar.TypeDir, rel+"/"
		case "symlink":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Target
		case "file":
			h.Typeflag, h.Size = tar.TypeReg, e.Size
		default:
			warns = append(warns, "skipped "+rel+": not a file, directory or symlink")
			return nil
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.Type == "file" {
			return r.v.Open(ctx, e, tw)
		}
		return nil
	})
	if err != nil {
		return warns, err
	}
	return warns, tw.Close()
}

// agentReader reads a running guest through its agent.
type agentReader struct{ c *guest.Client }

func (agentReader) source() string     { return api.FilesFromGuest }
func (agentReader) warnings() []string { return nil }

// children lists the entries of guest directory p (one level).
func (r agentReader) children(ctx context.Context, p string) ([]guestproto.ManifestEntry, error) {
	m, err := r.c.ManifestExcluding(ctx, p, false, nil, []string{"/*/*"})
	if err != nil {
		return nil, err
	}
	return m.Entries, nil
}

func manifestEntry(e *guestproto.ManifestEntry, name string) api.FileEntry {
	return api.FileEntry{Name: name, Type: e.Type, Mode: fmt.Sprintf("%04o", e.Mode), Size: e.Size,
		Mtime: time.Unix(0, e.MtimeNS).UTC(), Target: e.Target}
}

const maxLinks = 40

// stat finds p's entry in its parent's listing, following symlinks the
// way the guest would; it returns the final path too.
func (r agentReader) stat(ctx context.Context, p string) (api.FileEntry, string, error) {
	for range maxLinks {
		if p == "/" {
			return api.FileEntry{Name: "/", Type: "dir", Mode: "0755"}, p, nil
		}
		ents, err := r.children(ctx, path.Dir(p))
		if err != nil {
			return api.FileEntry{}, "", err
		}
		var e *guestproto.ManifestEntry
		for i := range ents {
			if ents[i].Path == path.Base(p) {
				e = &ents[i]
				break
			}
		}
		if e == nil {
			return api.FileEntry{}, "", fmt.Errorf("%s does not exist: %w", p, errdefs.ErrNotFound)
		}
		if e.Type != "symlink" {
			return manifestEntry(e, e.Path), p, nil
		}
		t := e.Target
		if !path.IsAbs(t) {
			t = path.Join(path.Dir(p), t)
		}
		p = path.Clean(t)
	}
	return api.FileEntry{}, "", fmt.Errorf("%s: too many levels of symbolic links: %w", p, errdefs.ErrInvalidArgument)
}

func (r agentReader) list(ctx context.Context, p string) ([]api.FileEntry, error) {
	e, rp, err := r.stat(ctx, p)
	if err != nil {
		return nil, err
	}
	if e.Type != "dir" {
		return []api.FileEntry{e}, nil
	}
	ents, err := r.children(ctx, rp)
	if err != nil {
		return nil, err
	}
	out := make([]api.FileEntry, 0, len(ents))
	for i := range ents {
		out = append(out, manifestEntry(&ents[i], ents[i].Path))
	}
	return out, nil
}

func (r agentReader) cat(ctx context.Context, p string, off, n int64, w io.Writer) (int64, error) {
	e, rp, err := r.stat(ctx, p)
	if err != nil {
		return 0, err
	}
	if e.Type != "file" {
		return 0, fmt.Errorf("%s is a %s, not a regular file: %w", p, e.Type, errdefs.ErrInvalidArgument)
	}
	if n < 0 {
		n = 0
	}
	cw := &countWriter{w: w}
	err = r.c.ReadFile(ctx, rp, off, n, cw)
	return cw.n, err
}

func (r agentReader) tar(ctx context.Context, p string, w io.Writer) ([]string, error) {
	res, err := r.c.TarOut(ctx, p, w)
	if err != nil {
		return nil, err
	}
	return res.Warnings, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// workspaceView builds the guest's view of a stopped workspace from its
// disks: the image below, the overlay's upper directory above, /workspace
// and the attached data disks mounted over them.
func (m *Manager) workspaceView(ctx context.Context, rec *record) (*diskfs.View, []string, error) {
	dir := m.dir(rec.ID)
	base, err := diskfs.Open(filepath.Join(dir, "base.ext4"))
	if err != nil {
		return nil, nil, fmt.Errorf("workspace %s: image: %w", rec.Name, err)
	}
	data, err := diskfs.Open(filepath.Join(dir, "disk.ext4"))
	if err != nil {
		return nil, nil, fmt.Errorf("workspace %s: workspace disk: %w", rec.Name, err)
	}
	root := diskfs.Mount{Path: "/", Lower: &diskfs.Layer{Img: base, Root: diskfs.RootIno}}
	if root.Upper, err = diskfs.SubLayer(ctx, data, "/.hearth/upper"); err != nil {
		return nil, nil, fmt.Errorf("workspace %s: workspace disk: %w", rec.Name, err)
	}
	mounts := []diskfs.Mount{root}
	imgs := map[string]*diskfs.Image{"the workspace disk": data}
	ws, err := diskfs.SubLayer(ctx, data, WorkspaceRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("workspace %s: workspace disk: %w", rec.Name, err)
	}
	if ws != nil {
		mounts = append(mounts, diskfs.Mount{Path: WorkspaceRoot, Lower: ws})
	}
	for _, a := range rec.Disks {
		img, err := diskfs.Open(m.diskImage(a.Disk))
		if err != nil {
			return nil, nil, fmt.Errorf("workspace %s: disk %s: %w", rec.Name, a.Disk, err)
		}
		mounts = append(mounts, diskfs.Mount{Path: a.Path, Lower: &diskfs.Layer{Img: img, Root: diskfs.RootIno}})
		imgs["data disk "+a.Disk] = img
	}
	v, err := diskfs.NewView(mounts...)
	if err != nil {
		return nil, nil, err
	}
	return v, staleWarnings(imgs), nil
}

// workspaceReader returns the reader of a workspace: its agent while it
// runs, its disks otherwise.
func (m *Manager) workspaceReader(ctx context.Context, rec *record) (fileReader, error) {
	if m.vmState(rec.ID).state == "running" {
		c, err := m.client(rec)
		if err != nil {
			return nil, err
		}
		return agentReader{c}, nil
	}
	v, warns, err := m.workspaceView(ctx, rec)
	if err != nil {
		return nil, err
	}
	return viewReader{v, warns}, nil
}

// FilesList lists a directory of a workspace (a path that is not one
// lists as itself). Relative paths are taken from /workspace.
func (m *Manager) FilesList(ctx context.Context, ref, p string) (*api.FilesListResult, error) {
	rec, release, err := m.beginCall(ctx, ref, "files list")
	if err != nil {
		return nil, err
	}
	defer release()
	gp, err := diskfs.CleanPath(p, WorkspaceRoot)
	if err != nil {
		return nil, err
	}
	r, err := m.workspaceReader(ctx, rec)
	if err != nil {
		return nil, err
	}
	return filesList(ctx, r, gp)
}

func filesList(ctx context.Context, r fileReader, p string) (*api.FilesListResult, error) {
	es, err := r.list(ctx, p)
	if err != nil {
		return nil, err
	}
	if es == nil {
		es = []api.FileEntry{}
	}
	return &api.FilesListResult{Path: p, Source: r.source(), Entries: es, Warnings: nonNilStrings(r.warnings())}, nil
}

// FilesCat reads a regular file of a workspace (symlinks followed): to w
// when w is not nil, else into the result (at most api.OutputLimit bytes).
// limit 0 reads to the end.
func (m *Manager) FilesCat(ctx context.Context, ref, p string, off, limit int64, w io.Writer) (*api.FilesCatResult, error) {
	rec, release, err := m.beginCall(ctx, ref, "files cat")
	if err != nil {
		return nil, err
	}
	defer release()
	gp, err := diskfs.CleanPath(p, WorkspaceRoot)
	if err != nil {
		return nil, err
	}
	r, err := m.workspaceReader(ctx, rec)
	if err != nil {
		return nil, err
	}
	return filesCat(ctx, r, gp, off, limit, w)
}

func filesCat(ctx context.Context, r fileReader, p string, off, limit int64, w io.Writer) (*api.FilesCatResult, error) {
	if off < 0 || limit < 0 {
		return nil, errdefs.Arg("offset", "offset and limit must not be negative")
	}
	e, _, err := r.stat(ctx, p)
	if err != nil {
		return nil, err
	}
	if e.Type != "file" {
		return nil, fmt.Errorf("%s is a %s, not a regular file: list it with files ls: %w", p, e.Type, errdefs.ErrInvalidArgument)
	}
	res := &api.FilesCatResult{Path: p, Source: r.source(), Size: e.Size, Offset: off, Warnings: nonNilStrings(r.warnings())}
	n := limit
	var buf *bytes.Buffer
	if w == nil {
		if n == 0 || n > api.OutputLimit {
			n = api.OutputLimit
		}
		buf = &bytes.Buffer{}
		w = buf
	}
	if n == 0 {
		n = -1
	}
	got, err := r.cat(ctx, p, off, n, w)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	res.NextOffset = off + got
	res.Truncated = res.NextOffset < e.Size && (limit == 0 || got < limit)
	if buf != nil {
		res.Data, res.Encoding = encodeOutput(buf.Bytes())
	} else {
		res.Truncated = false
	}
	return res, nil
}

// FilesGet copies a file or directory of a workspace to a new host path:
// a file to the file hostDest, a directory to the directory hostDest.
// Export's rules hold: the destination must be new or empty unless force,
// it appears whole or not at all, and nothing is written through a
// symlink.
func (m *Manager) FilesGet(ctx context.Context, ref, p, hostDest string, force bool) (*api.FilesGetResult, error) {
	rec, release, err := m.beginCall(ctx, ref, "files get")
	if err != nil {
		return nil, err
	}
	defer release()
	gp, err := diskfs.CleanPath(p, WorkspaceRoot)
	if err != nil {
		return nil, err
	}
	r, err := m.workspaceReader(ctx, rec)
	if err != nil {
		return nil, err
	}
	return filesGet(ctx, r, gp, hostDest, force)
}

func filesGet(ctx context.Context, r fileReader, p, hostDest string, force bool) (*api.FilesGetResult, error) {
	if hostDest == "" {
		return nil, errdefs.Arg("host_dest", "no host destination given")
	}
	dest, err := filepath.Abs(hostDest)
	if err != nil {
		return nil, err
	}
	e, rp, err := r.stat(ctx, p)
	if err != nil {
		return nil, err
	}
	res := &api.FilesGetResult{Path: p, HostPath: dest, Source: r.source(), Warnings: nonNilStrings(r.warnings())}
	switch e.Type {
	case "file":
		n, err := writeNewFile(ctx, dest, force, e.Mode, func(w io.Writer) (int64, error) { return r.cat(ctx, rp, 0, -1, w) })
		if err != nil {
			return nil, err
		}
		res.Files, res.Bytes = 1, n
		return res, nil
	case "dir":
	default:
		return nil, fmt.Errorf("%s is a %s: files get copies files and directories: %w", p, e.Type, errdefs.ErrInvalidArgument)
	}
	pr, pw := io.Pipe()
	var warns []string
	errc := make(chan error, 1)
	go func() {
		w, err := r.tar(ctx, rp, pw)
		warns = w
		pw.CloseWithError(err)
		errc <- err
	}()
	xr, err := archive.Extract(ctx, pr, dest, archive.ExtractOptions{Force: force})
	pr.CloseWithError(errStopped)
	terr := <-errc
	if terr != nil && (err == nil || errors.Is(err, terr)) {
		return nil, fmt.Errorf("files get %s: %w", p, terr)
	}
	if err != nil {
		return nil, fmt.Errorf("files get %s to %s: %w", p, dest, err)
	}
	res.Files, res.Dirs, res.Symlinks, res.Bytes = xr.Files, xr.Dirs, xr.Symlinks, xr.Bytes
	res.Warnings = append(append(res.Warnings, warns...), xr.Warnings...)
	return res, nil
}

func nonNilStrings(l []string) []string {
	if l == nil {
		return []string{}
	}
	return append([]string(nil), l...)
}

// errStopped ends a reader whose writer is done with it.
var errStopped = errors.New("the destination stopped reading")

// writeNewFile writes a new host file at dest through fill, under
// export's rules: dest must not exist, or be an empty file or directory,
// unless force; the file is written beside dest (O_EXCL, never through a
// symlink) and renamed into place, so dest appears whole or not at all.
func writeNewFile(ctx context.Context, dest string, force bool, mode string, fill func(io.Writer) (int64, error)) (int64, error) {
	fi, err := os.Lstat(dest)
	var oldDir bool
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("host destination %s: %w", dest, err)
	default:
		empty := fi.Mode().IsRegular() && fi.Size() == 0
		if fi.IsDir() {
			ents, _ := os.ReadDir(dest)
			empty, oldDir = len(ents) == 0, true
		}
		if !empty && !force {
			return 0, errdefs.Arg("host_dest", "%s exists and is not empty: pick a new path, or pass force to replace it", dest)
		}
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return 0, fmt.Errorf("host destination %s: %w", dest, err)
	}
	archive.SweepStaging(dest)
	f, err := os.CreateTemp(parent, archive.StagingPattern(dest))
	if err != nil {
		return 0, fmt.Errorf("host destination %s: %w", dest, err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := fill(f)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var perm uint32
	fmt.Sscanf(mode, "%o", &perm)
	perm &= 0o777 &^ 0o002 // export's rule: no world-write, setuid, setgid or sticky
	if err := f.Chmod(os.FileMode(perm)); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("write %s: %w", dest, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", dest, err)
	}
	if oldDir {
		aside := tmp + ".old"
		if err := os.Rename(dest, aside); err != nil {
			return 0, fmt.Errorf("replace %s: %w", dest, err)
		}
		if err := os.Rename(tmp, dest); err != nil {
			os.Rename(aside, dest)
			return 0, fmt.Errorf("replace %s: %w", dest, err)
		}
		os.RemoveAll(aside)
	} else if err := os.Rename(tmp, dest); err != nil {
		return 0, fmt.Errorf("write %s: %w", dest, err)
	}
	done = true
	return n, nil
}
