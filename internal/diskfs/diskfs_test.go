package diskfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// mkimage makes an ext4 image of the tree files describes (path ->
// content; "->x" makes a symlink to x, a trailing "/" a directory), then
// runs debugfs -w commands on it (whiteouts, xattrs).
func mkimage(t *testing.T, files map[string]string, debugfsCmds ...string) string {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install e2fsprogs", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	for p, c := range files {
		full := filepath.Join(src, p)
		if strings.HasSuffix(p, "/") {
			os.MkdirAll(full, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(full), 0o755)
		if strings.HasPrefix(c, "->") {
			if err := os.Symlink(c[2:], full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", src, img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	if len(debugfsCmds) > 0 {
		cmd := exec.Command("debugfs", "-w", "-f", "-", img)
		cmd.Stdin = strings.NewReader(strings.Join(debugfsCmds, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("debugfs -w: %v %s", err, out)
		}
	}
	return img
}

// workspaceView builds a stopped workspace's view from a base image and a
// data disk, as package workspace does.
func workspaceView(t *testing.T, base, data string) *View {
	t.Helper()
	ctx := context.Background()
	bi, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	di, err := Open(data)
	if err != nil {
		t.Fatal(err)
	}
	upper, err := SubLayer(ctx, di, "/.hearth/upper")
	if err != nil || upper == nil {
		t.Fatalf("upper: %v %v", upper, err)
	}
	ws, err := SubLayer(ctx, di, "/workspace")
	if err != nil || ws == nil {
		t.Fatalf("workspace: %v %v", ws, err)
	}
	v, err := NewView(Mount{Path: "/", Upper: upper, Lower: &Layer{Img: bi, Root: RootIno}}, Mount{Path: "/workspace", Lower: ws})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func names(es []Entry) string {
	var s []string
	for _, e := range es {
		n := e.Name
		switch e.Type {
		case "dir":
			n += "/"
		case "symlink":
			n += "->" + e.Target
		}
		s = append(s, n)
	}
	return strings.Join(s, " ")
}

func TestOverlayView(t *testing.T) {
	ctx := context.Background()
	base := mkimage(t, map[string]string{
		"etc/issue": "Debian\n", "etc/motd": "old motd\n", "etc/hosts": "127.0.0.1 localhost\n",
		"opq/a": "a", "opq/b": "b", "merged/low": "low", "usr/bin/sh": "#!sh", "bin": "->usr/bin",
		"workspace/": "",
	})
	data := mkimage(t, map[string]string{
		".hearth/upper/etc/motd": "changed\n", ".hearth/upper/opq/c": "c", ".hearth/upper/merged/up": "up",
		".hearth/upper/newdir/x": "x", ".hearth/work/": "",
		"workspace/o.txt": "offline-ok\n", "workspace/l": "->o.txt", "workspace/sub/deep": "deep", "workspace/esc": "->../../../etc/hosts",
	},
		"cd /.hearth/upper/etc", "mknod issue c 0 0",
		"cd /.hearth/upper/merged", "mknod nothere c 0 0", "mknod realdev c 4 1",
		"ea_set /.hearth/upper/opq trusted.overlay.opaque y",
	)
	v := workspaceView(t, base, data)
	for _, tc := range []struct{ path, want string }{
		{"/etc", "hosts motd"},
		{"/opq", "c"},
		{"/merged", "low realdev up"},
		{"/", "bin->usr/bin etc/ lost+found/ merged/ newdir/ opq/ usr/ workspace/"},
		{"/workspace", "esc->../../../etc/hosts l->o.txt o.txt sub/"},
		{"/bin", "sh"},
		{"/bin/sh", "sh"},
	} {
		es, err := v.List(ctx, tc.path)
		if err != nil {
			t.Fatalf("List %s: %v", tc.path, err)
		}
		if got := names(es); got != tc.want {
			t.Errorf("List %s = %q, want %q", tc.path, got, tc.want)
		}
	}
	for _, tc := range []struct{ path, want string }{
		{"/etc/motd", "changed\n"},
		{"/etc/hosts", "127.0.0.1 localhost\n"},
		{"/workspace/o.txt", "offline-ok\n"},
		{"/workspace/l", "offline-ok\n"},
		{"/workspace/esc", "127.0.0.1 localhost\n"}, // absolute resolution stays inside the view
		{"/merged/low", "low"},
	} {
		var b bytes.Buffer
		if _, _, err := v.Cat(ctx, tc.path, 0, -1, &b); err != nil {
			t.Fatalf("Cat %s: %v", tc.path, err)
		}
		if b.String() != tc.want {
			t.Errorf("Cat %s = %q, want %q", tc.path, b.String(), tc.want)
		}
	}
	for _, p := range []string{"/etc/issue", "/opq/a", "/merged/nothere", "/workspace/none"} {
		if _, err := v.Stat(ctx, p, false); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Stat %s: %v, want not found", p, err)
		}
	}
	var b bytes.Buffer
	if _, _, err := v.Cat(ctx, "/etc", 0, -1, &b); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Cat of a directory: %v", err)
	}
	b.Reset()
	if _, n, err := v.Cat(ctx, "/etc/hosts", 4, 5, &b); err != nil || b.String() != "0.0.1" || n != 5 {
		t.Errorf("Cat window = %q %d %v", b.String(), n, err)
	}
	var walked []string
	if err := v.Walk(ctx, "/workspace", func(rel string, e *Entry) error { walked = append(walked, rel); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(walked, ","); got != ",esc,l,o.txt,sub,sub/deep" {
		t.Errorf("Walk = %q", got)
	}
}

func TestCleanPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "/workspace"}, {"a/b", "/workspace/a/b"}, {"/etc/../etc/motd", "/etc/motd"}, {"../x", "/x"}, {"/", "/"},
	} {
		got, err := CleanPath(tc.in, "/workspace")
		if err != nil || got != tc.want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"/..", "/../etc", "/a/../../b", "../../x", "a\x00b"} {
		if _, err := CleanPath(in, "/workspace"); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("CleanPath(%q): %v, want invalid", in, err)
		}
	}
}

func TestBadImages(t *testing.T) {
	dir := t.TempDir()
	notExt := filepath.Join(dir, "not")
	os.WriteFile(notExt, bytes.Repeat([]byte("garbage!"), 1000), 0o644)
	if _, err := Open(notExt); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "not an ext4") {
		t.Errorf("Open(garbage) = %v", err)
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("x"), 0o644)
	if _, err := Open(short); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Open(short) = %v", err)
	}
	// A real image whose group descriptors and inode tables are zeroed:
	// the magic survives, debugfs's reads fail, and the error says so.
	img := mkimage(t, map[string]string{"a": "a", "d/b": "b"})
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(make([]byte, 4<<20), 2048)
	f.Close()
	im, err := Open(img)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewView(Mount{Path: "/", Lower: &Layer{Img: im, Root: RootIno}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.List(context.Background(), "/")
	if err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("List of a corrupted image = %v, want a corrupted error", err)
	}
}

func TestBigCatChecksum(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	img := mkimage(t, map[string]string{"big": string(data)})
	im, _ := Open(img)
	v, _ := NewView(Mount{Path: "/", Lower: &Layer{Img: im, Root: RootIno}})
	h := sha256.New()
	if _, n, err := v.Cat(context.Background(), "/big", 0, -1, h); err != nil || n != int64(len(data)) {
		t.Fatalf("Cat: %d %v", n, err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("checksum differs")
	}
}

// TestNativeStatMatchesDebugfs: the native inode reader and debugfs agree
// on every inode of an image with files, symlinks (fast and slow),
// devices, whiteouts and xattrs.
func TestNativeStatMatchesDebugfs(t *testing.T) {
	ctx := context.Background()
	img := mkimage(t, map[string]string{
		"a.txt": "alpha", "dir/b": "beta", "fast": "->a.txt", "slow": "->" + strings.Repeat("s", 100),
		"big": strings.Repeat("x", 70000),
	}, "cd /dir", "mknod wh c 0 0", "mknod tty c 4 1", "mknod big-dev c 300 70000",
		"ea_set /dir trusted.overlay.opaque y", "ea_set /a.txt user.note hello",
		"set_inode_field /a.txt mtime 20240102030405", "set_inode_field /a.txt uid 70000")
	im, err := Open(img)
	if err != nil || im.inodes == nil {
		t.Fatalf("Open: %v (native reader %v)", err, im.inodes != nil)
	}
	var inos []uint64
	for _, dir := range []uint64{RootIno} {
		ents, err := im.ReadDir(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			inos = append(inos, e.Ino)
			if e.Name == "dir" {
				sub, _ := im.ReadDir(ctx, e.Ino)
				for _, s := range sub {
					inos = append(inos, s.Ino)
				}
			}
		}
	}
	inos = append(inos, RootIno)
	native, err := im.Stat(ctx, inos)
	if err != nil {
		t.Fatal(err)
	}
	viaDebugfs, err := im.statDebugfs(ctx, inos)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, in := range native {
		if in.Xattrs["trusted.overlay.opaque"] == "y" {
			seen["opaque"] = true
		}
		if in.Xattrs["user.note"] == "hello" && in.UID == 70000 && in.Mtime.Year() == 2024 {
			seen["a.txt"] = true
		}
		if in.RdevMaj == 4 && in.RdevMin == 1 {
			seen["dev"] = true
		}
		if in.HasFastLink && in.FastLink == "a.txt" {
			seen["fast"] = true
		}
	}
	if len(seen) != 4 {
		t.Errorf("native reader found only %v of opaque, a.txt, dev, fast", seen)
	}
	for _, n := range inos {
		a, b := native[n], viaDebugfs[n]
		if a == nil || b == nil {
			t.Fatalf("inode %d: native %v debugfs %v", n, a, b)
		}
		if a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.Size != b.Size || !a.Mtime.Equal(b.Mtime) ||
			a.RdevMaj != b.RdevMaj || a.RdevMin != b.RdevMin || a.HasFastLink != b.HasFastLink || a.FastLink != b.FastLink {
			t.Errorf("inode %d:\n native  %+v\n debugfs %+v", n, *a, *b)
		}
		for k, v := range b.Xattrs {
			if a.Xattrs[k] != v {
				t.Errorf("inode %d xattr %s: native %q, debugfs %q", n, k, a.Xattrs[k], v)
			}
		}
	}
}

func TestParseLsP(t *testing.T) {
	in := "/2/040755/0/0/.//\n/2/040755/0/0/..//\n/0/000000/0/0//0/\n/12/100644/1000/100/odd\nname with space/6/\n/13/120777/0/0/l/5/\n\n"
	got, err := parseLsP([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Dirent{{Name: "odd\nname with space", Ino: 12, Mode: 0o100644, UID: 1000, GID: 100, Size: 6}, {Name: "l", Ino: 13, Mode: 0o120777, Size: 5}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parseLsP = %+v", got)
	}
	if _, err := parseLsP([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
}
