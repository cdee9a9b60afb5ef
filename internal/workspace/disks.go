package workspace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/archive"
	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/diskfs"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/vmm"
)

// Named data disks live in $HEARTH_HOME/disks/NAME/:
//
//	disk.json   the record: size, source, UUID, attachments
//	disk.ext4   the sparse ext4 image
//
// A disk is attached writable to one workspace, or read-only to any
// number. Attachments are recorded on both sides (disk.json and the
// workspace's record) under $HEARTH_HOME/disks/.lock, which every change
// of attachments holds; the rule is checked there, and a refusal names the
// workspace that holds the disk. The guest mounts each attached disk at
// its path (found by its file system's UUID).

// MinDiskSize is the smallest data disk.
const MinDiskSize = 16 << 20

// diskRecord is disk.json.
type diskRecord struct {
	Name        string       `json:"name"`
	CreatedAt   time.Time    `json:"created_at"`
	SizeBytes   int64        `json:"size_bytes"`
	From        string       `json:"from,omitempty"`
	Attachments []diskAttach `json:"attachments,omitempty"`
}

// diskAttach is one attachment in disk.json.
type diskAttach struct {
	WorkspaceID string `json:"workspace_id"`
	Path        string `json:"path"`
	ReadOnly    bool   `json:"read_only,omitempty"`
}

// wsDisk is one attachment in a workspace's record.
type wsDisk struct {
	Disk     string `json:"disk"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// DiskAttachOptions attach a disk to a workspace.
type DiskAttachOptions struct {
	Disk string
	// Path is where the guest mounts it (default /mnt/DISK).
	Path     string
	ReadOnly bool
}

// ParseDiskSpec parses "NAME:/mnt/PATH[:ro]" (create's disk argument).
func ParseDiskSpec(s string) (DiskAttachOptions, error) {
	f := strings.Split(s, ":")
	var o DiskAttachOptions
	switch {
	case len(f) == 1:
		o.Disk = f[0]
	case len(f) == 2 && f[1] == "ro":
		o.Disk, o.ReadOnly = f[0], true
	case len(f) == 2:
		o.Disk, o.Path = f[0], f[1]
	case len(f) == 3 && (f[2] == "ro" || f[2] == "rw"):
		o.Disk, o.Path, o.ReadOnly = f[0], f[1], f[2] == "ro"
	default:
		return o, errdefs.Arg("disks", "%q: want NAME:/mnt/PATH or NAME:/mnt/PATH:ro", s)
	}
	return o, nil
}

var (
	diskNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	mountRE    = regexp.MustCompile(`^/[A-Za-z0-9._/-]*$`)
)

func validateDiskName(name string) error {
	if !diskNameRE.MatchString(name) {
		return errdefs.Arg("disk", "disk name %q: use 1-63 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// validateMountPath checks where a guest mounts a disk.
func validateMountPath(p string) (string, error) {
	if !mountRE.MatchString(p) || path.Clean(p) != p {
		return "", errdefs.Arg("path", "mount path %q: want a clean absolute guest path of letters, digits, '.', '_', '-' and '/' (like /mnt/data)", p)
	}
	for _, bad := range []string{"/", "/workspace", "/proc", "/sys", "/dev", "/run", "/etc", "/usr", "/bin", "/sbin", "/lib", "/tmp"} {
		if p == bad || (bad != "/" && bad != "/workspace" && bad != "/tmp" && strings.HasPrefix(p, bad+"/")) {
			return "", errdefs.Arg("path", "a disk cannot be mounted at %s: pick a path like /mnt/NAME", p)
		}
	}
	return p, nil
}

func (m *Manager) disksRoot() string              { return filepath.Join(m.root, "disks") }
func (m *Manager) diskDir(name string) string     { return filepath.Join(m.disksRoot(), name) }
func (m *Manager) diskImage(name string) string   { return filepath.Join(m.diskDir(name), "disk.ext4") }
func (m *Manager) diskRecPath(name string) string { return filepath.Join(m.diskDir(name), "disk.json") }

// lockDisks takes the lock every change of disks and attachments holds.
func (m *Manager) lockDisks(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(m.disksRoot(), 0o700); err != nil {
		return nil, err
	}
	return lock(ctx, filepath.Join(m.disksRoot(), ".lock"))
}

func (m *Manager) readDisk(name string) (*diskRecord, error) {
	if err := validateDiskName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(m.diskRecPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no disk named %q: see `hearth disk list`: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var d diskRecord
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("disk %s: corrupt %s: %w", name, m.diskRecPath(name), err)
	}
	// Attachments of workspaces deleted meanwhile are gone.
	live := d.Attachments[:0]
	for _, a := range d.Attachments {
		if _, err := m.readRecord(a.WorkspaceID); err == nil {
			live = append(live, a)
		}
	}
	d.Attachments = live
	return &d, nil
}

func (m *Manager) writeDisk(d *diskRecord) error {
	return atomicfile.WriteJSON(m.diskRecPath(d.Name), d, 0o600)
}

// holderText names the workspaces holding a disk.
func (m *Manager) holderText(d *diskRecord) string {
	var s []string
	for _, a := range d.Attachments {
		name := a.WorkspaceID
		if r, err := m.readRecord(a.WorkspaceID); err == nil {
			name = fmt.Sprintf("%s (%s)", r.Name, r.ID)
		}
		mode := "writable"
		if a.ReadOnly {
			mode = "read-only"
		}
		s = append(s, fmt.Sprintf("workspace %s %s at %s", name, mode, a.Path))
	}
	return strings.Join(s, ", ")
}

// DiskCreateOptions configure a new disk.
type DiskCreateOptions struct {
	Name string
	// Size in bytes.
	Size int64
	// From is a host directory or archive to fill it from (validated like
	// a seed: nothing is written if it holds a hostile entry).
	From string
}

// DiskCreate makes a sparse ext4 disk, filled from From if given.
func (m *Manager) DiskCreate(ctx context.Context, o DiskCreateOptions) (*api.Disk, error) {
	if err := validateDiskName(o.Name); err != nil {
		return nil, errdefs.Arg("name", "%v", strings.TrimPrefix(err.Error(), "disk: "))
	}
	if o.Size == 0 {
		o.Size = 1 << 30
	}
	if o.Size < MinDiskSize {
		return nil, errdefs.Arg("size", "%d bytes is too small: use at least 16M", o.Size)
	}
	if o.From != "" {
		n, err := checkFrom(ctx, o.From)
		if err != nil {
			return nil, err
		}
		if err := fitsIn(o.From, n, o.Size, "disk size", "give a larger --size"); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(m.diskRecPath(o.Name)); err == nil {
		return nil, fmt.Errorf("a disk named %q already exists: pick another name or remove it: %w", o.Name, errdefs.ErrAlreadyExists)
	}
	if err := os.MkdirAll(m.disksRoot(), 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(m.disksRoot(), ".new-"+o.Name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := buildDisk(ctx, filepath.Join(tmp, "disk.ext4"), o.Size, o.From, o.Name); err != nil {
		return nil, err
	}
	d := &diskRecord{Name: o.Name, CreatedAt: time.Now().UTC(), SizeBytes: o.Size, From: o.From}
	if err := atomicfile.WriteJSON(filepath.Join(tmp, "disk.json"), d, 0o600); err != nil {
		return nil, err
	}
	unlock, err := m.lockDisks(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := os.Rename(tmp, m.diskDir(o.Name)); err != nil {
		if errors.Is(err, os.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return nil, fmt.Errorf("a disk named %q already exists: %w", o.Name, errdefs.ErrAlreadyExists)
		}
		return nil, err
	}
	return m.diskInfo(ctx, d), nil
}

// checkFrom validates a disk's source as a seed is validated and returns
// the bytes of its regular files.
func checkFrom(ctx context.Context, src string) (int64, error) {
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, errdefs.Mark(errdefs.Arg("from", "%s does not exist: give a directory or a .tar, .tar.gz, .tgz or .zip file", src), errdefs.ErrNotFound)
		}
		return 0, errdefs.Arg("from", "%s: %v", src, err)
	}
	res, err := archive.CheckSeed(ctx, src)
	if err != nil {
		return 0, errdefs.Mark(fmt.Errorf("from %s: %w", src, err), errdefs.ErrInvalidArgument)
	}
	return res.Bytes, nil
}

// fitsIn refuses a source whose files hold more bytes than size, before
// anything is written: staging it on the host (a disk) or streaming it
// into the guest (a seed) could only end in "no space" after writing that
// much (an archive bomb would fill the host's disk first). Sizes are
// apparent sizes: a sparse file counts whole.
func fitsIn(src string, n, size int64, what, fix string) error {
	if n <= size {
		return nil
	}
	return errdefs.Mark(fmt.Errorf("the files of %s hold %d bytes (%.1f MiB), more than the %s, %d bytes (%.1f MiB): %s",
		src, n, float64(n)/(1<<20), what, size, float64(size)/(1<<20), fix), errdefs.ErrResourceExhausted)
}

// buildDisk makes a sparse ext4 image of size bytes at img, holding the
// tree of src (validated before) when given.
func buildDisk(ctx context.Context, img string, size int64, src, label string) error {
	args := []string{"-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1", "-L", truncLabel(label)}
	if src != "" {
		staging := img + ".staging"
		pr, pw := io.Pipe()
		go func() {
			_, err := archive.PackSeed(ctx, src, pw)
			pw.CloseWithError(err)
		}()
		_, err := archive.Extract(ctx, pr, staging, archive.ExtractOptions{PreserveMode: true})
		pr.CloseWithError(errors.New("done"))
		if err != nil {
			return fmt.Errorf("stage %s: %w", src, err)
		}
		defer os.RemoveAll(staging)
		args = append(args, "-d", staging)
	}
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return fmt.Errorf("size disk: %w", err)
	}
	out, err := exec.CommandContext(ctx, "mkfs.ext4", append(args, img)...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "Could not allocate") || strings.Contains(msg, "No space") || strings.Contains(msg, "Could not allocate block") {
			return errdefs.Mark(fmt.Errorf("the files of %s do not fit in %d bytes: give a larger size (mkfs.ext4: %s)", src, size, msg), errdefs.ErrResourceExhausted)
		}
		return fmt.Errorf("mkfs.ext4: %v: %s (install e2fsprogs)", err, msg)
	}
	return nil
}

func truncLabel(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// diskInfo is the public view of a disk.
func (m *Manager) diskInfo(ctx context.Context, d *diskRecord) *api.Disk {
	out := &api.Disk{Name: d.Name, CreatedAt: d.CreatedAt, SizeBytes: d.SizeBytes, From: d.From, Attachments: []api.Attachment{}}
	img := m.diskImage(d.Name)
	if fi, err := os.Stat(img); err == nil {
		out.SizeBytes = fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			out.UsedBytes = st.Blocks * 512
		}
	}
	out.FSUsedBytes, out.FSFreeBytes = fsUsage(ctx, img)
	for _, a := range d.Attachments {
		at := api.Attachment{Disk: d.Name, WorkspaceID: a.WorkspaceID, Workspace: a.WorkspaceID, Path: a.Path, ReadOnly: a.ReadOnly}
		if r, err := m.readRecord(a.WorkspaceID); err == nil {
			at.Workspace = r.Name
		}
		out.Attachments = append(out.Attachments, at)
	}
	return out
}

// fsUsage reads an ext4 image's used and free bytes from its superblock
// (dumpe2fs -h); zeros when it cannot.
func fsUsage(ctx context.Context, img string) (used, free int64) {
	out, err := exec.CommandContext(ctx, "dumpe2fs", "-h", img).Output()
	if err != nil {
		return 0, 0
	}
	var blocks, freeBlocks, bs int64
	for _, l := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch strings.TrimSpace(k) {
		case "Block count":
			blocks = n
		case "Free blocks":
			freeBlocks = n
		case "Block size":
			bs = n
		}
	}
	return (blocks - freeBlocks) * bs, freeBlocks * bs
}

// DiskList returns every disk, by name.
func (m *Manager) DiskList(ctx context.Context) ([]api.Disk, error) {
	ents, err := os.ReadDir(m.disksRoot())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	out := []api.Disk{}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		d, err := m.readDisk(e.Name())
		if err != nil {
			continue
		}
		out = append(out, *m.diskInfo(ctx, d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DiskGet returns one disk.
func (m *Manager) DiskGet(ctx context.Context, name string) (*api.Disk, error) {
	d, err := m.readDisk(name)
	if err != nil {
		return nil, err
	}
	return m.diskInfo(ctx, d), nil
}

// detached reads a disk under the disks lock and refuses when attached.
func (m *Manager) detached(ctx context.Context, name, what string) (*diskRecord, func(), error) {
	unlock, err := m.lockDisks(ctx)
	if err != nil {
		return nil, nil, err
	}
	d, err := m.readDisk(name)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	if len(d.Attachments) > 0 {
		unlock()
		return nil, nil, fmt.Errorf("disk %s is attached to %s: detach it first (`hearth workspace disk detach WS %s`) to %s it: %w", name, m.holderText(d), name, what, errdefs.ErrFailedPrecondition)
	}
	return d, unlock, nil
}

// DiskDelete removes a detached disk and its files.
func (m *Manager) DiskDelete(ctx context.Context, name string) (*api.Disk, error) {
	d, unlock, err := m.detached(ctx, name, "remove")
	if err != nil {
		return nil, err
	}
	defer unlock()
	info := m.diskInfo(ctx, d)
	if err := os.RemoveAll(m.diskDir(name)); err != nil {
		return nil, fmt.Errorf("remove disk %s: %w", name, err)
	}
	return info, nil
}

// DiskResize grows a detached disk to size bytes (e2fsck, then resize2fs).
func (m *Manager) DiskResize(ctx context.Context, name string, size int64) (*api.Disk, error) {
	d, unlock, err := m.detached(ctx, name, "resize")
	if err != nil {
		return nil, err
	}
	defer unlock()
	img := m.diskImage(name)
	fi, err := os.Stat(img)
	if err != nil {
		return nil, err
	}
	if size <= fi.Size() {
		return nil, errdefs.Arg("size", "%d bytes is not larger than the disk's %d: disks only grow", size, fi.Size())
	}
	if _, err := diskfs.Open(img); err != nil {
		return nil, err
	}
	if code, out := e2fsck(ctx, img, "-f", "-p"); code > 1 {
		return nil, fmt.Errorf("disk %s needs repair before it can grow (e2fsck exit %d: %s): run `hearth disk check %s --repair`: %w", name, code, out, name, errdefs.ErrFailedPrecondition)
	}
	if err := os.Truncate(img, size); err != nil {
		return nil, fmt.Errorf("grow disk %s: %w", name, err)
	}
	if out, err := exec.CommandContext(ctx, "resize2fs", img).CombinedOutput(); err != nil {
		os.Truncate(img, fi.Size())
		return nil, fmt.Errorf("resize2fs %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	d.SizeBytes = size
	if err := m.writeDisk(d); err != nil {
		return nil, err
	}
	return m.diskInfo(ctx, d), nil
}

// e2fsck runs e2fsck on img and returns its exit code and output.
func e2fsck(ctx context.Context, img string, args ...string) (int, string) {
	cmd := exec.CommandContext(ctx, "e2fsck", append(args, img)...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return 8, err.Error()
	}
	return code, strings.TrimSpace(string(out))
}

// DiskCheck checks a disk's file system (e2fsck -n); with repair it fixes
// what is safe to fix (e2fsck -p), which needs the disk detached.
func (m *Manager) DiskCheck(ctx context.Context, name string, repair bool) (*api.DiskCheckResult, error) {
	var d *diskRecord
	var err error
	if repair {
		var unlock func()
		d, unlock, err = m.detached(ctx, name, "repair")
		if err != nil {
			return nil, err
		}
		defer unlock()
	} else if d, err = m.readDisk(name); err != nil {
		return nil, err
	}
	img := m.diskImage(d.Name)
	if _, err := diskfs.Open(img); err != nil {
		return nil, fmt.Errorf("disk %s: %w", name, err)
	}
	args := []string{"-f", "-n"}
	if repair {
		args = []string{"-f", "-p"}
	}
	code, out := e2fsck(ctx, img, args...)
	res := &api.DiskCheckResult{Disk: name, Output: out}
	switch {
	case code == 0:
		res.Clean = true
	case repair && code <= 3:
		res.Clean, res.Repaired = true, true
	case code >= 8:
		return nil, fmt.Errorf("e2fsck could not check disk %s (exit %d): %s: %w", name, code, out, errdefs.ErrFailedPrecondition)
	}
	if !res.Clean && !repair {
		for _, a := range d.Attachments {
			if !a.ReadOnly && m.vmState(a.WorkspaceID).state == api.StateRunning {
				res.Output += "\nnote: the disk is in use by a running workspace: a check of a mounted file system reports changes in flight; stop it for a true check"
			}
		}
	}
	return res, nil
}

// DiskExport copies a disk's files to a new host directory, or an archive.
func (m *Manager) DiskExport(ctx context.Context, name, hostDest string, archiveOut, force bool) (*api.FilesGetResult, error) {
	r, err := m.diskReader(ctx, name)
	if err != nil {
		return nil, err
	}
	if hostDest == "" {
		return nil, errdefs.Arg("host_dest", "no host destination given")
	}
	dest, err := filepath.Abs(hostDest)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	var warns []string
	errc := make(chan error, 1)
	go func() {
		w, err := r.tar(ctx, "/", pw)
		warns = w
		pw.CloseWithError(err)
		errc <- err
	}()
	xo := archive.ExtractOptions{Force: force, PreserveMode: true}
	var xr *archive.ExtractResult
	if archiveOut {
		xr, err = archive.WriteArchive(ctx, pr, dest, xo)
	} else {
		xr, err = archive.Extract(ctx, pr, dest, xo)
	}
	pr.CloseWithError(errStopped)
	if terr := <-errc; terr != nil && (err == nil || errors.Is(err, terr)) {
		return nil, fmt.Errorf("export disk %s: %w", name, terr)
	}
	if err != nil {
		return nil, fmt.Errorf("export disk %s to %s: %w", name, dest, err)
	}
	res := &api.FilesGetResult{Path: "/", HostPath: dest, Source: r.source(), Files: xr.Files, Dirs: xr.Dirs, Symlinks: xr.Symlinks, Bytes: xr.Bytes}
	res.Warnings = append(append(nonNilStrings(r.warnings()), warns...), xr.Warnings...)
	return res, nil
}

// DiskImport replaces a detached disk's files with a host directory or
// archive (validated first); the disk keeps its size.
func (m *Manager) DiskImport(ctx context.Context, name, src string) (*api.Disk, error) {
	n, err := checkFrom(ctx, src)
	if err != nil {
		return nil, errdefs.Mark(err, errdefs.ErrInvalidArgument)
	}
	d, unlock, err := m.detached(ctx, name, "import into")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := fitsIn(src, n, d.SizeBytes, "disk's size", "grow the disk first (`hearth disk resize`) or import fewer files"); err != nil {
		return nil, err
	}
	img := m.diskImage(name)
	fi, err := os.Stat(img)
	if err != nil {
		return nil, err
	}
	var b [4]byte
	rand.Read(b[:])
	tmp := img + ".import-" + hex.EncodeToString(b[:])
	if err := buildDisk(ctx, tmp, fi.Size(), src, name); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, img); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	d.From = src
	if err := m.writeDisk(d); err != nil {
		return nil, err
	}
	return m.diskInfo(ctx, d), nil
}

// prefixReader reads a tree mounted at prefix of another reader.
type prefixReader struct {
	r      fileReader
	prefix string
}

func (p prefixReader) source() string     { return p.r.source() }
func (p prefixReader) warnings() []string { return p.r.warnings() }
func (p prefixReader) at(q string) string {
	return path.Join(p.prefix, q)
}

// inside resolves q in the guest and refuses a result outside the disk
// (a symlink on the disk that points out of it).
func (p prefixReader) inside(ctx context.Context, q string) (api.FileEntry, string, error) {
	e, rp, err := p.r.stat(ctx, p.at(q))
	if err != nil {
		return e, rp, err
	}
	if rp != p.prefix && !strings.HasPrefix(rp, p.prefix+"/") {
		return e, rp, errdefs.Arg("path", "%s leads out of the disk (a symlink on it points to %s in the guest)", q, rp)
	}
	return e, rp, nil
}
func (p prefixReader) list(ctx context.Context, q string) ([]api.FileEntry, error) {
	if _, _, err := p.inside(ctx, q); err != nil {
		return nil, err
	}
	return p.r.list(ctx, p.at(q))
}
func (p prefixReader) stat(ctx context.Context, q string) (api.FileEntry, string, error) {
	e, rp, err := p.inside(ctx, q)
	return e, strings.TrimPrefix(rp, p.prefix), err
}
func (p prefixReader) cat(ctx context.Context, q string, off, n int64, w io.Writer) (int64, error) {
	if _, _, err := p.inside(ctx, q); err != nil {
		return 0, err
	}
	return p.r.cat(ctx, p.at(q), off, n, w)
}
func (p prefixReader) tar(ctx context.Context, q string, w io.Writer) ([]string, error) {
	return p.r.tar(ctx, p.at(q), w)
}

// diskReader reads a disk: through the agent of the running workspace it
// is attached writable to (its files change there), else from its image.
func (m *Manager) diskReader(ctx context.Context, name string) (fileReader, error) {
	d, err := m.readDisk(name)
	if err != nil {
		return nil, err
	}
	for _, a := range d.Attachments {
		if a.ReadOnly {
			continue
		}
		rec, err := m.readRecord(a.WorkspaceID)
		if err != nil || m.vmState(rec.ID).state != api.StateRunning {
			continue
		}
		c, err := m.client(rec)
		if err != nil {
			return nil, err
		}
		return prefixReader{agentReader{c}, a.Path}, nil
	}
	img, err := diskfs.Open(m.diskImage(name))
	if err != nil {
		return nil, fmt.Errorf("disk %s: %w", name, err)
	}
	v, err := diskfs.NewView(diskfs.Mount{Path: "/", Lower: &diskfs.Layer{Img: img, Root: diskfs.RootIno}})
	if err != nil {
		return nil, err
	}
	return viewReader{v, staleWarnings(map[string]*diskfs.Image{"disk " + name: img})}, nil
}

// DiskFilesList lists a directory of a disk.
func (m *Manager) DiskFilesList(ctx context.Context, name, p string) (*api.FilesListResult, error) {
	dp, err := diskfs.CleanPath(p, "/")
	if err != nil {
		return nil, err
	}
	r, err := m.diskReader(ctx, name)
	if err != nil {
		return nil, err
	}
	return filesList(ctx, r, dp)
}

// DiskFilesCat reads a regular file of a disk (see FilesCat).
func (m *Manager) DiskFilesCat(ctx context.Context, name, p string, off, limit int64, w io.Writer) (*api.FilesCatResult, error) {
	dp, err := diskfs.CleanPath(p, "/")
	if err != nil {
		return nil, err
	}
	r, err := m.diskReader(ctx, name)
	if err != nil {
		return nil, err
	}
	return filesCat(ctx, r, dp, off, limit, w)
}

// DiskFilesGet copies a file or directory of a disk to a new host path
// (see FilesGet).
func (m *Manager) DiskFilesGet(ctx context.Context, name, p, hostDest string, force bool) (*api.FilesGetResult, error) {
	dp, err := diskfs.CleanPath(p, "/")
	if err != nil {
		return nil, err
	}
	r, err := m.diskReader(ctx, name)
	if err != nil {
		return nil, err
	}
	return filesGet(ctx, r, dp, hostDest, force)
}

// attachLocked records an attachment of disk to rec (the caller holds the
// workspace's lifecycle lock, or is creating it). It takes the disks lock.
func (m *Manager) attachLocked(ctx context.Context, rec *record, o DiskAttachOptions) error {
	if err := validateDiskName(o.Disk); err != nil {
		return err
	}
	if o.Path == "" {
		o.Path = "/mnt/" + o.Disk
	}
	p, err := validateMountPath(o.Path)
	if err != nil {
		return err
	}
	unlock, err := m.lockDisks(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	d, err := m.readDisk(o.Disk)
	if err != nil {
		return err
	}
	for _, a := range rec.Disks {
		if a.Disk == o.Disk {
			return fmt.Errorf("disk %s is already attached to workspace %s at %s: %w", o.Disk, rec.Name, a.Path, errdefs.ErrAlreadyExists)
		}
		if a.Path == p {
			return errdefs.Mark(errdefs.Arg("path", "workspace %s already mounts disk %s at %s", rec.Name, a.Disk, p), errdefs.ErrConflict)
		}
	}
	for _, a := range d.Attachments {
		if a.WorkspaceID == rec.ID {
			continue
		}
		if !o.ReadOnly || !a.ReadOnly {
			return fmt.Errorf("disk %s is held by %s: a disk is attached writable to one workspace, or read-only to many; detach it there first, or attach read-only (ro) everywhere: %w",
				o.Disk, m.holderText(d), errdefs.ErrConflict)
		}
	}
	d.Attachments = append(d.Attachments, diskAttach{WorkspaceID: rec.ID, Path: p, ReadOnly: o.ReadOnly})
	if err := m.writeDisk(d); err != nil {
		return err
	}
	rec.Disks = append(rec.Disks, wsDisk{Disk: o.Disk, Path: p, ReadOnly: o.ReadOnly})
	if err := m.writeRecord(rec); err != nil {
		d.Attachments = d.Attachments[:len(d.Attachments)-1]
		m.writeDisk(d)
		rec.Disks = rec.Disks[:len(rec.Disks)-1]
		return err
	}
	return nil
}

// releaseDisks drops every attachment of workspace id (delete, a failed
// create).
func (m *Manager) releaseDisks(rec *record) {
	if len(rec.Disks) == 0 {
		return
	}
	unlock, err := m.lockDisks(context.Background())
	if err != nil {
		return
	}
	defer unlock()
	for _, a := range rec.Disks {
		if d, err := m.readDisk(a.Disk); err == nil {
			m.dropAttachment(d, rec.ID)
		}
	}
}

func (m *Manager) dropAttachment(d *diskRecord, wsID string) error {
	keep := d.Attachments[:0]
	for _, a := range d.Attachments {
		if a.WorkspaceID != wsID {
			keep = append(keep, a)
		}
	}
	d.Attachments = keep
	return m.writeDisk(d)
}

// DiskAttach attaches a disk to a stopped workspace; it is mounted at its
// path from the next start on. Hot-attach to a running workspace is not
// supported.
func (m *Manager) DiskAttach(ctx context.Context, ref string, o DiskAttachOptions) (*api.Workspace, error) {
	l, err := m.beginLifecycle(ctx, ref, "disk attach")
	if err != nil {
		return nil, err
	}
	defer l.release()
	if m.vmState(l.rec.ID).state == api.StateRunning {
		return nil, fmt.Errorf("workspace %s is running: stop it to attach a disk (hot-attach is not supported): %w", l.rec.Name, errdefs.ErrFailedPrecondition)
	}
	if err := m.attachLocked(ctx, l.rec, o); err != nil {
		return nil, err
	}
	return m.info(l.rec), nil
}

// DiskDetach detaches a disk from a stopped workspace.
func (m *Manager) DiskDetach(ctx context.Context, ref, disk string) (*api.Workspace, error) {
	l, err := m.beginLifecycle(ctx, ref, "disk detach")
	if err != nil {
		return nil, err
	}
	defer l.release()
	rec := l.rec
	if m.vmState(rec.ID).state == api.StateRunning {
		return nil, fmt.Errorf("workspace %s is running: stop it to detach a disk: %w", rec.Name, errdefs.ErrFailedPrecondition)
	}
	i := -1
	for j, a := range rec.Disks {
		if a.Disk == disk {
			i = j
		}
	}
	if i < 0 {
		return nil, fmt.Errorf("disk %q is not attached to workspace %s: %w", disk, rec.Name, errdefs.ErrNotFound)
	}
	unlock, err := m.lockDisks(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec.Disks = append(rec.Disks[:i:i], rec.Disks[i+1:]...)
	if err := m.writeRecord(rec); err != nil {
		return nil, err
	}
	if d, err := m.readDisk(disk); err == nil {
		if err := m.dropAttachment(d, rec.ID); err != nil {
			return nil, err
		}
	}
	return m.info(rec), nil
}

// diskSpec adds a workspace's attached disks to its VM spec.
func (m *Manager) diskSpec(rec *record, spec *vmm.Spec) error {
	for _, a := range rec.Disks {
		img := m.diskImage(a.Disk)
		uuid, err := diskfs.UUID(img)
		if err != nil {
			return fmt.Errorf("workspace %s: attached disk %s: %w", rec.Name, a.Disk, err)
		}
		spec.ExtraDisks = append(spec.ExtraDisks, vmm.Disk{Path: img, ReadOnly: a.ReadOnly})
		mode := "rw"
		if a.ReadOnly {
			mode = "ro"
		}
		spec.KernelArgs = append(spec.KernelArgs, fmt.Sprintf("hearth.disk=%s,%s,%s", uuid, a.Path, mode))
	}
	return nil
}

// attachments is the public view of a workspace's disks.
func attachments(rec *record) []api.Attachment {
	if len(rec.Disks) == 0 {
		return nil
	}
	out := make([]api.Attachment, len(rec.Disks))
	for i, a := range rec.Disks {
		out[i] = api.Attachment{Disk: a.Disk, Workspace: rec.Name, WorkspaceID: rec.ID, Path: a.Path, ReadOnly: a.ReadOnly}
	}
	return out
}

// String formats o as create's disk argument (ParseDiskSpec's input).
func (o DiskAttachOptions) String() string {
	s := o.Disk
	if o.Path != "" {
		s += ":" + o.Path
	}
	if o.ReadOnly {
		s += ":ro"
	}
	return s
}
