package guest_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
)

var (
	t1 = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	t2 = time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)
)

// makeTree builds a tree with every entry type and fixed mtimes.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	must(os.Mkdir(filepath.Join(dir, "empty"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "a/b/c.txt"), []byte("hello\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "secret"), []byte{0, 1, 2, 0xff}, 0o600))
	must(os.WriteFile(filepath.Join(dir, "suid"), nil, 0o644))
	must(os.Chmod(filepath.Join(dir, "suid"), 0o755|os.ModeSetuid))
	must(os.Symlink("a/b/c.txt", filepath.Join(dir, "rel-link")))
	must(os.Symlink("/etc/hostname", filepath.Join(dir, "abs-link")))
	must(os.Link(filepath.Join(dir, "run.sh"), filepath.Join(dir, "hard")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	for _, p := range []string{"a/b/c.txt", "run.sh", "secret", "suid", "a/b", "a", "empty"} {
		must(os.Chtimes(filepath.Join(dir, p), t1, t1))
	}
}

func TestTarRoundTrip(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "new", "dst")
	makeTree(t, src)

	var buf bytes.Buffer
	res, err := c.TarOut(ctx, src, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "fifo") && strings.Contains(w, "skipped fifo") }) {
		t.Fatalf("no warning for the fifo: %q", res.Warnings)
	}
	// Entry names are relative, without ./ or /.
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	for _, want := range []string{"a", "a/b", "a/b/c.txt", "empty", "run.sh", "rel-link"} {
		if !slices.Contains(names, want) {
			t.Fatalf("tar lacks %q: %q", want, names)
		}
	}
	if int64(len(names)) != res.Entries || slices.Contains(names, "fifo") {
		t.Fatalf("entries %d, names %q", res.Entries, names)
	}

	in, err := c.TarIn(ctx, dst, bytes.NewReader(buf.Bytes()), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.Entries != res.Entries || in.Bytes != res.Bytes {
		t.Fatalf("tar_in %+v vs tar_out %+v", in, res)
	}
	want, err := c.Manifest(ctx, src, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Manifest(ctx, dst, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	norm := func(m *guestproto.Manifest) []guestproto.ManifestEntry {
		var out []guestproto.ManifestEntry
		for _, e := range m.Entries {
			if e.Type == "other" {
				continue
			}
			e.Inode = 0
			if e.Type == "symlink" {
				e.MtimeNS = 0 // symlinks were created at make time
			}
			out = append(out, e)
		}
		return out
	}
	w, g := norm(want), norm(got)
	if !slices.Equal(w, g) {
		t.Fatalf("round trip differs:\nsrc %+v\ndst %+v", w, g)
	}

	// A single file is one entry under its base name.
	buf.Reset()
	res, err = c.TarOut(ctx, filepath.Join(src, "a/b/c.txt"), &buf)
	if err != nil || res.Entries != 1 {
		t.Fatalf("single file: %+v, %v", res, err)
	}
	h, err := tar.NewReader(&buf).Next()
	if err != nil || h.Name != "c.txt" || !h.ModTime.Equal(t1) {
		t.Fatalf("single file header %+v, %v", h, err)
	}
}

func TestManifest(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	src := t.TempDir()
	makeTree(t, src)
	tests := []struct {
		name      string
		hash      bool
		hashPaths []string
		hashed    []string
	}{
		{"no hash", false, nil, nil},
		{"hash all", true, nil, []string{"a/b/c.txt", "hard", "run.sh", "secret", "suid"}},
		{"hash listed", false, []string{"secret"}, []string{"secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := c.Manifest(ctx, src, tt.hash, tt.hashPaths)
			if err != nil {
				t.Fatal(err)
			}
			byPath := map[string]guestproto.ManifestEntry{}
			var paths, hashed []string
			for _, e := range m.Entries {
				byPath[e.Path] = e
				paths = append(paths, e.Path)
				if e.SHA256 != "" {
					hashed = append(hashed, e.Path)
				}
			}
			if !slices.IsSorted(paths) || len(paths) != 11 {
				t.Fatalf("paths %q", paths)
			}
			if !slices.Equal(hashed, tt.hashed) {
				t.Fatalf("hashed %q, want %q", hashed, tt.hashed)
			}
			checks := []struct {
				path, typ string
				mode      uint32
				size      int64
				target    string
			}{
				{"a", "dir", 0o755, 0, ""},
				{"empty", "dir", 0o700, 0, ""},
				{"a/b/c.txt", "file", 0o644, 6, ""},
				{"suid", "file", 0o4755, 0, ""},
				{"abs-link", "symlink", 0o777, 13, "/etc/hostname"},
				{"fifo", "other", 0o644, 0, ""},
			}
			for _, ck := range checks {
				e := byPath[ck.path]
				if e.Type != ck.typ || e.Mode != ck.mode || e.Size != ck.size || e.Target != ck.target || e.Inode == 0 {
					t.Errorf("%s: %+v", ck.path, e)
				}
			}
			if e := byPath["a/b/c.txt"]; e.MtimeNS != t1.UnixNano() {
				t.Errorf("mtime %d", e.MtimeNS)
			}
			if byPath["hard"].Inode != byPath["run.sh"].Inode {
				t.Errorf("hard link inodes differ")
			}
			if tt.hash && byPath["a/b/c.txt"].SHA256 != "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" {
				t.Errorf("sha256 %s", byPath["a/b/c.txt"].SHA256)
			}
		})
	}
	if _, err := c.Manifest(ctx, filepath.Join(src, "nope"), false, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing root: %v", err)
	}
}

type tarEntry struct {
	name, link string
	typ        byte
	body       string
}

func makeTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), ModTime: t2}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

func TestTarInHostile(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	tests := []struct {
		name    string
		entries func(outside string) []tarEntry
		wantErr bool
	}{
		{"dot-dot", func(string) []tarEntry { return []tarEntry{{name: "../x", typ: tar.TypeReg, body: "pwn"}} }, true},
		{"dot-dot inside", func(string) []tarEntry { return []tarEntry{{name: "a/../../x", typ: tar.TypeReg, body: "pwn"}} }, true},
		{"absolute", func(o string) []tarEntry {
			return []tarEntry{{name: filepath.Join(o, "x"), typ: tar.TypeReg, body: "pwn"}}
		}, true},
		{"symlink then file beneath", func(o string) []tarEntry {
			return []tarEntry{{name: "l", link: o, typ: tar.TypeSymlink}, {name: "l/x", typ: tar.TypeReg, body: "pwn"}}
		}, true},
		{"symlink then dir beneath", func(o string) []tarEntry {
			return []tarEntry{{name: "l", link: o, typ: tar.TypeSymlink}, {name: "l/d", typ: tar.TypeDir}}
		}, true},
		{"hardlink to outside", func(o string) []tarEntry {
			return []tarEntry{{name: "h", link: "../outside/victim", typ: tar.TypeLink}}
		}, true},
		{"hardlink absolute", func(o string) []tarEntry {
			return []tarEntry{{name: "h", link: filepath.Join(o, "victim"), typ: tar.TypeLink}}
		}, true},
		{"hardlink to symlink", func(o string) []tarEntry {
			return []tarEntry{{name: "l", link: filepath.Join(o, "victim"), typ: tar.TypeSymlink}, {name: "h", link: "l", typ: tar.TypeLink}}
		}, true},
		{"symlink to outside then write replaces the link", func(o string) []tarEntry {
			return []tarEntry{{name: "l", link: filepath.Join(o, "victim"), typ: tar.TypeSymlink}, {name: "l", typ: tar.TypeReg, body: "data"}}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			outside, dst := filepath.Join(base, "outside"), filepath.Join(base, "dst")
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "victim"), []byte("original"), 0o644)
			_, err := c.TarIn(ctx, dst, bytes.NewReader(makeTar(t, tt.entries(outside)...)), false, nil)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "tar entry") {
					t.Fatalf("want invalid argument naming the entry, got %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(outside)
			if len(ents) != 1 {
				t.Fatalf("outside written: %v", ents)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "original" {
				t.Fatalf("victim changed: %q", b)
			}
			if _, err := os.Lstat(filepath.Join(base, "x")); err == nil {
				t.Fatal("wrote ../x")
			}
		})
	}

	// A pre-existing symlink in the destination is not written through.
	base := t.TempDir()
	os.Mkdir(filepath.Join(base, "dst"), 0o755)
	os.Symlink(base, filepath.Join(base, "dst", "up"))
	_, err := c.TarIn(ctx, filepath.Join(base, "dst"), bytes.NewReader(makeTar(t, tarEntry{name: "up/x", typ: tar.TypeReg, body: "pwn"})), false, nil)
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("write through existing symlink: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(base, "x")); err == nil {
		t.Fatal("wrote through the symlink")
	}
}

func TestTarInDeleteKeep(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	dst := t.TempDir()
	for _, p := range []string{"keep.txt", "changed.txt", "gone.txt", "d/keep2.txt", "d/gone2.txt", "olddir/x/y"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dst, p)), 0o755)
		os.WriteFile(filepath.Join(dst, p), []byte("old"), 0o644)
	}
	tarball := makeTar(t,
		tarEntry{name: "changed.txt", typ: tar.TypeReg, body: "new"},
		tarEntry{name: "n/new.txt", typ: tar.TypeReg, body: "added"},
		tarEntry{name: "n/link", link: "n/new.txt", typ: tar.TypeLink},
	)
	res, err := c.TarIn(ctx, dst, bytes.NewReader(tarball), true, []string{"keep.txt", "./d/keep2.txt"})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(dst, p); rel != "." {
			left = append(left, rel)
		}
		return nil
	})
	want := []string{"changed.txt", "d", "d/keep2.txt", "keep.txt", "n", "n/link", "n/new.txt"}
	if !slices.Equal(left, want) {
		t.Fatalf("left %q, want %q", left, want)
	}
	// gone.txt, d/gone2.txt, olddir, olddir/x, olddir/x/y
	if res.Deleted != 5 || res.Entries != 3 || res.Bytes != 8 {
		t.Fatalf("result %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "changed.txt")); string(b) != "new" {
		t.Fatalf("changed.txt = %q", b)
	}
	fi, _ := os.Stat(filepath.Join(dst, "changed.txt"))
	if !fi.ModTime().Equal(t2) {
		t.Fatalf("mtime %v", fi.ModTime())
	}
}

func TestReadFile(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789"), 10000)
	os.WriteFile(filepath.Join(dir, "f"), big, 0o644)
	os.Symlink("f", filepath.Join(dir, "l"))
	tests := []struct {
		name    string
		path    string
		off, n  int64
		want    []byte
		wantErr error
	}{
		{"whole", "f", 0, 0, big, nil},
		{"range", "f", 5, 12, big[5:17], nil},
		{"past end", "f", 200000, 10, nil, nil},
		{"directory", ".", 0, 0, nil, errdefs.ErrInvalidArgument},
		{"symlink", "l", 0, 0, nil, errdefs.ErrInvalidArgument},
		{"missing", "nope", 0, 0, nil, errdefs.ErrNotFound},
		{"relative path", "", 0, 0, nil, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.path)
			if tt.name == "relative path" {
				p = "rel/path"
			}
			var buf bytes.Buffer
			err := c.ReadFile(ctx, p, tt.off, tt.n, &buf)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(buf.Bytes(), tt.want) {
				t.Fatalf("got %d bytes, %v", buf.Len(), err)
			}
		})
	}
}

func TestTarOutSkipsDevices(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	if err := syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatalf("mknod (the tests run as root): %v", err)
	}
	var buf bytes.Buffer
	res, err := c.TarOut(ctx, dir, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 1 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "null: character device") {
		t.Fatalf("result %+v", res)
	}
}

func TestManifestManyFiles(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	dir := t.TempDir()
	const dirs, per = 100, 200
	for i := range dirs {
		d := filepath.Join(dir, "d"+strconv.Itoa(i))
		os.Mkdir(d, 0o755)
		for j := range per {
			os.WriteFile(filepath.Join(d, "f"+strconv.Itoa(j)), []byte("data"), 0o644)
		}
	}
	start := time.Now()
	m, err := c.Manifest(ctx, dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != dirs*(per+1) {
		t.Fatalf("%d entries", len(m.Entries))
	}
	t.Logf("manifest of %d entries with hashes in %v", len(m.Entries), time.Since(start))
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("too slow: %v", d)
	}
}

func TestConnectionLossIsUnavailable(t *testing.T) {
	ctx := testCtx(t)
	c := &guest.Client{Dial: func(context.Context) (net.Conn, error) {
		host, agentEnd := net.Pipe()
		go func() {
			guestproto.ReadFrame(agentEnd, nil)
			guestproto.WriteFrame(agentEnd, guestproto.FrameData, []byte("partial"))
			agentEnd.Close()
		}()
		return host, nil
	}}
	_, err := c.TarOut(ctx, "/x", io.Discard)
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("tar_out: %v", err)
	}
	_, err = c.TarIn(ctx, "/x", bytes.NewReader(nil), false, nil)
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("tar_in: %v", err)
	}
	if err := c.ShellAttach(ctx, "sh-00000000", nil, io.Discard, nil); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("attach: %v", err)
	}
}

// TestExclude: tar_out and manifest leave excluded paths out, and tar_in
// with delete keeps them (and the directories holding them).
func TestExclude(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	src := t.TempDir()
	for _, p := range []string{"a.py", "__pycache__/a.pyc", "pkg/__pycache__/b.pyc", "pkg/b.py", "pkg/x.log", "old/y.log", "old/z.txt"} {
		os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755)
		os.WriteFile(filepath.Join(src, p), []byte("x"), 0o644)
	}
	excl := []string{"__pycache__/", "*.log"}
	m, err := c.ManifestExcluding(ctx, src, false, nil, excl)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range m.Entries {
		paths = append(paths, e.Path)
	}
	if want := []string{"a.py", "old", "old/z.txt", "pkg", "pkg/b.py"}; !slices.Equal(paths, want) {
		t.Errorf("manifest %q, want %q", paths, want)
	}
	var buf bytes.Buffer
	if _, err := c.TarOutExcluding(ctx, src, excl, &buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, strings.TrimSuffix(h.Name, "/"))
	}
	slices.Sort(names)
	if want := []string{"a.py", "old", "old/z.txt", "pkg", "pkg/b.py"}; !slices.Equal(names, want) {
		t.Errorf("tar %q, want %q", names, want)
	}
	if _, err := c.ManifestExcluding(ctx, src, false, nil, []string{"[bad"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad pattern: %v", err)
	}
	// Delete everything the (empty) source lacks, except what is excluded.
	res, err := c.TarInExcluding(ctx, src, bytes.NewReader(makeTar(t)), true, []string{"a.py"}, excl)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(src, p); rel != "." {
			left = append(left, rel)
		}
		return nil
	})
	want := []string{"__pycache__", "__pycache__/a.pyc", "a.py", "old", "old/y.log", "pkg", "pkg/__pycache__", "pkg/__pycache__/b.pyc", "pkg/x.log"}
	if !slices.Equal(left, want) || res.Deleted != 2 {
		t.Errorf("left %q (deleted %d), want %q (deleted 2: old/z.txt, pkg/b.py)", left, res.Deleted, want)
	}
}

func TestCountLines(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t)
	dir := t.TempDir()
	for name, body := range map[string]string{"text": "a\nb\nc", "bin": "x\x00y\n", "big": strings.Repeat("line\n", 40000)} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	for _, tt := range []struct {
		name    string
		limit   int64
		lines   int64
		binary  bool
		wantErr error
	}{
		{"text", 100, 3, false, nil},
		{"bin", 100, 1, true, nil},
		{"big", 200000, 40000, false, nil},
		{"big", 1000, 0, false, errdefs.ErrResourceExhausted},
		{"nope", 100, 0, false, errdefs.ErrNotFound},
	} {
		n, bin, err := c.CountLines(ctx, filepath.Join(dir, tt.name), tt.limit)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || n != tt.lines || bin != tt.binary {
			t.Errorf("%s: %d lines, binary %v, %v; want %d, %v", tt.name, n, bin, err, tt.lines, tt.binary)
		}
	}
}
