package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/vmm"
)

func newDisk(t *testing.T, m *Manager, name string, files map[string]string) {
	t.Helper()
	src := ""
	if files != nil {
		src = t.TempDir()
		for p, c := range files {
			os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755)
			if err := os.WriteFile(filepath.Join(src, p), []byte(c), 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := m.DiskCreate(context.Background(), DiskCreateOptions{Name: name, Size: 32 << 20, From: src}); err != nil {
		t.Fatalf("DiskCreate %s: %v", name, err)
	}
}

// TestDiskAttachRules: writable to one workspace or read-only to many,
// refusals name the holder, rm and resize need the disk detached, and
// deleting a workspace releases its disks.
func TestDiskAttachRules(t *testing.T) {
	m := testManager(t, 2*time.Second, time.Second)
	ctx := context.Background()
	newDisk(t, m, "data", map[string]string{"sub/x.txt": "shared-bytes\n"})
	a := addRecord(t, m, "alpha", true)
	b := addRecord(t, m, "beta", true)
	c := addRecord(t, m, "gamma", true)

	if _, err := m.DiskAttach(ctx, "alpha", DiskAttachOptions{Disk: "data"}); err != nil {
		t.Fatal(err)
	}
	_, err := m.DiskAttach(ctx, "beta", DiskAttachOptions{Disk: "data", ReadOnly: true})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "alpha") {
		t.Fatalf("read-only attach while writable elsewhere: %v, want a conflict naming alpha", err)
	}
	if _, err := m.DiskAttach(ctx, "alpha", DiskAttachOptions{Disk: "data", Path: "/mnt/other"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second attach to the same workspace: %v", err)
	}
	if _, err := m.DiskDelete(ctx, "data"); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "alpha") {
		t.Fatalf("rm while attached: %v", err)
	}
	if _, err := m.DiskResize(ctx, "data", 64<<20); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("resize while attached: %v", err)
	}
	w, err := m.Get(ctx, "alpha")
	if err != nil || len(w.Disks) != 1 || w.Disks[0].Path != "/mnt/data" || w.Disks[0].ReadOnly {
		t.Fatalf("show lists %+v (%v)", w.Disks, err)
	}
	if _, err := m.DiskDetach(ctx, "alpha", "data"); err != nil {
		t.Fatal(err)
	}
	// Read-only to many; then a writable attach is refused naming them.
	for _, ws := range []string{"alpha", "beta"} {
		if _, err := m.DiskAttach(ctx, ws, DiskAttachOptions{Disk: "data", Path: "/mnt/d", ReadOnly: true}); err != nil {
			t.Fatalf("ro attach to %s: %v", ws, err)
		}
	}
	_, err = m.DiskAttach(ctx, "gamma", DiskAttachOptions{Disk: "data"})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "alpha") || !strings.Contains(err.Error(), "beta") {
		t.Fatalf("writable attach while read-only elsewhere: %v", err)
	}
	d, _ := m.DiskGet(ctx, "data")
	if len(d.Attachments) != 2 {
		t.Fatalf("attachments %+v", d.Attachments)
	}
	// The spec carries the disks, read-only, by UUID.
	rec, _ := m.readRecord(a.ID)
	var spec vmm.Spec
	if err := m.diskSpec(rec, &spec); err != nil {
		t.Fatal(err)
	}
	if len(spec.ExtraDisks) != 1 || !spec.ExtraDisks[0].ReadOnly || len(spec.KernelArgs) != 1 ||
		!strings.HasPrefix(spec.KernelArgs[0], "hearth.disk=") || !strings.HasSuffix(spec.KernelArgs[0], ",/mnt/d,ro") {
		t.Errorf("spec: %+v %q", spec.ExtraDisks, spec.KernelArgs)
	}
	// Deleting workspaces releases their disks.
	if _, err := m.Delete(ctx, "alpha", true); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(m.dir(b.ID)) // a workspace gone without delete: its attachment is stale
	d, _ = m.DiskGet(ctx, "data")
	if len(d.Attachments) != 0 {
		t.Fatalf("attachments after delete: %+v", d.Attachments)
	}
	if _, err := m.DiskAttach(ctx, "gamma", DiskAttachOptions{Disk: "data"}); err != nil {
		t.Fatalf("writable attach once free: %v", err)
	}
	_ = c
	for _, bad := range []string{"/", "/workspace", "/proc/x", "relative", "/mnt/a b", "/mnt/../etc"} {
		if _, err := m.DiskAttach(ctx, "gamma", DiskAttachOptions{Disk: "data", Path: bad}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("attach at %q: %v, want invalid", bad, err)
		}
	}
}

func TestDiskLifecycleOffline(t *testing.T) {
	m := testManager(t, 2*time.Second, time.Second)
	ctx := context.Background()
	newDisk(t, m, "corpus", map[string]string{"a.txt": "alpha\n", "dir/b.txt": "beta\n", "big": strings.Repeat("x", 3<<19)})
	if _, err := m.DiskCreate(ctx, DiskCreateOptions{Name: "corpus", Size: 32 << 20}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second create: %v", err)
	}
	l, err := m.DiskFilesList(ctx, "corpus", "/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range l.Entries {
		names = append(names, e.Name+":"+e.Mode)
	}
	if got := strings.Join(names, " "); got != "a.txt:0640 big:0640 dir:0755 lost+found:0700" {
		t.Errorf("ls = %q", got)
	}
	var out bytes.Buffer
	if r, err := m.DiskFilesCat(ctx, "corpus", "dir/b.txt", 0, 0, &out); err != nil || out.String() != "beta\n" || r.Source != "disk" {
		t.Fatalf("cat = %q %v", out.String(), err)
	}
	if _, err := m.DiskFilesCat(ctx, "corpus", "/../etc/passwd", 0, 0, &out); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("cat of a path leaving the disk: %v", err)
	}
	r, err := m.DiskFilesCat(ctx, "corpus", "a.txt", 1, 3, nil)
	if err != nil || r.Data != "lph" || r.NextOffset != 4 || r.Truncated {
		t.Errorf("cat window = %+v %v", r, err)
	}
	// Without a stream a result holds at most 1 MiB: page on.
	r, err = m.DiskFilesCat(ctx, "corpus", "big", 0, 0, nil)
	if err != nil || len(r.Data) != 1<<20 || !r.Truncated || r.NextOffset != 1<<20 || r.Size != 3<<19 {
		t.Errorf("cat of 1.5 MiB: %d bytes, %+v, %v", len(r.Data), r.Truncated, err)
	}
	// files get: a file to a new path, refused over a non-empty one.
	dest := filepath.Join(t.TempDir(), "got.txt")
	if _, err := m.DiskFilesGet(ctx, "corpus", "/a.txt", dest, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "alpha\n" {
		t.Errorf("get wrote %q", b)
	}
	if _, err := m.DiskFilesGet(ctx, "corpus", "/dir/b.txt", dest, false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("get over an existing file: %v", err)
	}
	// Never written through a symlink: force replaces the link itself.
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("keep"), 0o600)
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(target, link)
	if _, err := m.DiskFilesGet(ctx, "corpus", "/a.txt", link, false); err == nil {
		t.Error("get onto a symlink without force succeeded")
	}
	if _, err := m.DiskFilesGet(ctx, "corpus", "/a.txt", link, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("get wrote through a symlink: %q", b)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink != 0 {
		t.Error("link not replaced")
	}
	// A directory, and the whole disk.
	dd := filepath.Join(t.TempDir(), "dir")
	if res, err := m.DiskFilesGet(ctx, "corpus", "/dir", dd, false); err != nil || res.Files != 1 {
		t.Fatalf("get dir: %+v %v", res, err)
	}
	if _, err := m.DiskFilesGet(ctx, "corpus", "/dir", dd, false); err == nil || !strings.Contains(err.Error(), dd) || strings.Contains(err.Error(), "stopped reading") {
		t.Errorf("get onto a non-empty directory: %v", err)
	}
	ed := filepath.Join(t.TempDir(), "exp")
	if _, err := m.DiskExport(ctx, "corpus", ed, false, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(ed, "dir/b.txt")); string(b) != "beta\n" {
		t.Errorf("export: %q", b)
	}
	// A disk whose journal was not replayed reads, with a warning.
	if out, err := exec.Command("debugfs", "-w", "-R", "feature needs_recovery", m.diskImage("corpus")).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v %s", err, out)
	}
	if l, err := m.DiskFilesList(ctx, "corpus", "/"); err != nil || len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0], "journal") {
		t.Errorf("ls of an unrecovered disk: %+v %v", l, err)
	}
	exec.Command("e2fsck", "-fy", m.diskImage("corpus")).Run()
	// Check, resize, import.
	if c, err := m.DiskCheck(ctx, "corpus", false); err != nil || !c.Clean {
		t.Fatalf("check: %+v %v", c, err)
	}
	if _, err := m.DiskResize(ctx, "corpus", 16<<20); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("shrink: %v", err)
	}
	d, err := m.DiskResize(ctx, "corpus", 64<<20)
	if err != nil || d.SizeBytes != 64<<20 || d.FSFreeBytes < 32<<20 {
		t.Fatalf("grow: %+v %v", d, err)
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("new"), 0o644)
	if _, err := m.DiskImport(ctx, "corpus", src); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DiskFilesCat(ctx, "corpus", "/a.txt", 0, 0, &out); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("old file after import: %v", err)
	}
	if _, err := m.DiskDelete(ctx, "corpus"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.diskDir("corpus")); !os.IsNotExist(err) {
		t.Errorf("disk dir left: %v", err)
	}
}

// TestDiskBadInput: a traversal archive is refused before anything is
// written; a file that is not ext4 and a corrupted image give clear errors.
func TestDiskBadInput(t *testing.T) {
	m := testManager(t, 2*time.Second, time.Second)
	ctx := context.Background()
	arch := filepath.Join(t.TempDir(), "evil.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "ok.txt", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("ok"))
	tw.WriteHeader(&tar.Header{Name: "../escape.txt", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("no"))
	tw.Close()
	os.WriteFile(arch, buf.Bytes(), 0o644)
	_, err := m.DiskCreate(ctx, DiskCreateOptions{Name: "evil", Size: 32 << 20, From: arch})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("traversal archive: %v", err)
	}
	ents, _ := os.ReadDir(m.disksRoot())
	for _, e := range ents {
		if e.Name() != ".lock" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(arch)), "escape.txt")); err == nil {
		t.Error("escape.txt written")
	}
	if _, err := m.DiskCreate(ctx, DiskCreateOptions{Name: "tiny", Size: 16 << 20, From: bigTree(t)}); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("too small for its source: %v", err)
	}
	// An import bigger than the disk is refused before any staging.
	newDisk(t, m, "small", nil) // 32 MiB
	huge := t.TempDir()
	os.WriteFile(filepath.Join(huge, "a"), bytes.Repeat([]byte("a"), 20<<20), 0o644)
	os.WriteFile(filepath.Join(huge, "b"), bytes.Repeat([]byte("b"), 20<<20), 0o644)
	if _, err := m.DiskImport(ctx, "small", huge); !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "grow the disk") {
		t.Errorf("import bigger than the disk: %v", err)
	}
	if left, _ := filepath.Glob(m.diskImage("small") + ".*"); len(left) > 0 {
		t.Errorf("import left %v", left)
	}

	newDisk(t, m, "garbage", nil)
	os.WriteFile(m.diskImage("garbage"), bytes.Repeat([]byte("not ext4"), 1<<12), 0o600)
	if _, err := m.DiskFilesList(ctx, "garbage", "/"); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "not an ext4") {
		t.Errorf("ls of a non-ext4 disk: %v", err)
	}
	if _, err := m.DiskCheck(ctx, "garbage", false); err == nil || !strings.Contains(err.Error(), "not an ext4") {
		t.Errorf("check of a non-ext4 disk: %v", err)
	}
	newDisk(t, m, "broken", map[string]string{"a": "a"})
	f, _ := os.OpenFile(m.diskImage("broken"), os.O_RDWR, 0)
	f.WriteAt(make([]byte, 1<<20), 2048) // group descriptors and inode tables
	f.Close()
	if _, err := m.DiskFilesList(ctx, "broken", "/"); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("ls of a corrupted disk: %v", err)
	}
	if c, err := m.DiskCheck(ctx, "broken", false); err == nil && c.Clean {
		t.Errorf("check of a corrupted disk says clean: %+v", c)
	}
}

func bigTree(t *testing.T) string {
	d := t.TempDir()
	big := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 3<<20) // 24 MiB
	os.WriteFile(filepath.Join(d, "big"), big, 0o644)
	return d
}

func TestParseDiskSpec(t *testing.T) {
	for in, want := range map[string]DiskAttachOptions{
		"data":            {Disk: "data"},
		"data:ro":         {Disk: "data", ReadOnly: true},
		"data:/mnt/d":     {Disk: "data", Path: "/mnt/d"},
		"data:/mnt/d:ro":  {Disk: "data", Path: "/mnt/d", ReadOnly: true},
		"data:/mnt/d:rw":  {Disk: "data", Path: "/mnt/d"},
		"data:/mnt/d:rox": {},
		"a:b:c:d":         {},
	} {
		got, err := ParseDiskSpec(in)
		if want.Disk == "" {
			if err == nil {
				t.Errorf("ParseDiskSpec(%q) accepted", in)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseDiskSpec(%q) = %+v, %v", in, got, err)
		}
		if back, _ := ParseDiskSpec(got.String()); back != got {
			t.Errorf("String round trip of %+v: %+v", got, back)
		}
	}
}
