package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ignore"
)

// makeSeedDir builds the seed tree used by the acceptance test, plus modes,
// an empty directory, a hard link and a setuid file.
func makeSeedDir(t *testing.T) string {
	t.Helper()
	s := filepath.Join(t.TempDir(), "seed")
	writeFile(t, filepath.Join(s, "src/keep.txt"), []byte("a\nb\nc\n"))
	writeFile(t, filepath.Join(s, "src/edit.txt"), []byte("old\n"))
	writeFile(t, filepath.Join(s, "gone.txt"), []byte("bye\n"))
	writeFile(t, filepath.Join(s, "blob.bin"), []byte("\x00\x01\x02binary"))
	writeFile(t, filepath.Join(s, "run.sh"), []byte("#!/bin/sh\n"))
	os.Chmod(filepath.Join(s, "run.sh"), 0o755)
	writeFile(t, filepath.Join(s, "suid"), []byte("x"))
	os.Chmod(filepath.Join(s, "suid"), 0o4755)
	os.Link(filepath.Join(s, "gone.txt"), filepath.Join(s, "hard.txt"))
	os.Symlink("src/keep.txt", filepath.Join(s, "link"))
	os.Mkdir(filepath.Join(s, "empty"), 0o700)
	mt := time.Unix(1700000000, 123456789)
	for _, p := range []string{"src/keep.txt", "run.sh", "empty", "src"} {
		os.Chtimes(filepath.Join(s, p), mt, mt)
	}
	return s
}

func TestPackExtractRoundTrip(t *testing.T) {
	src := makeSeedDir(t)
	var buf bytes.Buffer
	res, err := PackSeed(context.Background(), src, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 10 || len(res.Warnings) != 0 {
		t.Errorf("PackResult = %+v", res)
	}
	// The stream is normalised: relative names, dirs with "/", PAX, no owners.
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Uname != "" || strings.HasPrefix(h.Name, "./") || strings.HasPrefix(h.Name, "/") {
			t.Errorf("header not normalised: %+v", h)
		}
		if (h.Typeflag == tar.TypeDir) != strings.HasSuffix(h.Name, "/") {
			t.Errorf("dir name %q", h.Name)
		}
		if h.Name == "hard.txt" && (h.Typeflag != tar.TypeLink || h.Linkname != "gone.txt") {
			t.Errorf("hard link header %+v", h)
		}
	}
	want := []string{"blob.bin", "empty/", "gone.txt", "hard.txt", "link", "run.sh", "src/", "src/edit.txt", "src/keep.txt", "suid"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("names = %q", names)
	}

	dest := filepath.Join(t.TempDir(), "out")
	xr, err := Extract(context.Background(), bytes.NewReader(buf.Bytes()), dest, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if xr.Files != 7 || xr.Dirs != 2 || xr.Symlinks != 1 {
		t.Errorf("ExtractResult = %+v", xr)
	}
	got := listTree(t, dest)
	wantTree := []string{
		"blob.bin -rw-r--r--", "empty drwx------", "gone.txt -rw-r--r--", "hard.txt -rw-r--r--",
		"link Lrwxrwxrwx -> src/keep.txt", "run.sh -rwxr-xr-x", "src drwxr-xr-x",
		"src/edit.txt -rw-r--r--", "src/keep.txt -rw-r--r--", "suid -rwxr-xr-x", // setuid stripped
	}
	if !reflect.DeepEqual(got, wantTree) {
		t.Errorf("tree =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantTree, "\n"))
	}
	for _, p := range []string{"src/keep.txt", "run.sh", "empty", "src"} {
		a, _ := os.Lstat(filepath.Join(src, p))
		b, _ := os.Lstat(filepath.Join(dest, p))
		if !a.ModTime().Equal(b.ModTime()) {
			t.Errorf("%s mtime %v, want %v", p, b.ModTime(), a.ModTime())
		}
	}
	a, _ := os.Stat(filepath.Join(dest, "gone.txt"))
	b, _ := os.Stat(filepath.Join(dest, "hard.txt"))
	if !os.SameFile(a, b) {
		t.Errorf("hard link not kept")
	}
	if c, _ := os.ReadFile(filepath.Join(dest, "link")); string(c) != "a\nb\nc\n" {
		t.Errorf("link content %q", c)
	}
}

func TestPackSeedArchives(t *testing.T) {
	dir := t.TempDir()
	ents := []ent{dirE("./"), dirE("./top/"), reg("./top/a.txt", "A"), sym("./top/l", "a.txt"), dirE("./top/empty/")}
	zents := []ent{dirE("top/"), reg("top/a.txt", "A"), sym("top/l", "a.txt"), dirE("top/empty/")}
	tests := []struct {
		file string
		data []byte
	}{
		{"s.tar", tarBytes(t, ents...)},
		{"s.tar.gz", gzipBytes(t, tarBytes(t, ents...))},
		{"noext", gzipBytes(t, tarBytes(t, ents...))},
		{"s.zip", zipBytes(t, zents...)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p := writeFile(t, filepath.Join(dir, tt.file), tt.data)
			var buf bytes.Buffer
			if _, err := PackSeed(context.Background(), p, &buf); err != nil {
				t.Fatal(err)
			}
			list, err := ListTar(&buf)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range list {
				got = append(got, e.Name+":"+string(e.Type)+":"+e.Linkname)
			}
			want := []string{"top:dir:", "top/a.txt:file:", "top/l:symlink:a.txt", "top/empty:dir:"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("entries = %q, want %q", got, want)
			}
		})
	}
}

// hostile lists archives that every reader must reject, with the entry
// the error must name.
func hostile(t *testing.T) []struct {
	name, entry string
	tar         []byte
} {
	return []struct {
		name, entry string
		tar         []byte
	}{
		{"dotdot", "../../x", tarBytes(t, reg("ok.txt", "x"), reg("../../x", "x"))},
		{"absolute", "/etc/x", tarBytes(t, reg("/etc/x", "x"))},
		{"beneath symlink", "evil/passwd|evil", tarBytes(t, sym("evil", "/etc"), reg("evil/passwd", "x"))},
		{"beneath relative symlink", "l/f", tarBytes(t, dirE("d/"), sym("l", "d"), reg("l/f", "x"))},
		{"hardlink outside", "h", tarBytes(t, hard("h", "/etc/passwd"))},
		{"hardlink unknown", "h", tarBytes(t, hard("h", "nothere"))},
		{"hardlink to dir", "h", tarBytes(t, dirE("d/"), hard("h", "d"))},
		{"duplicate", "a", tarBytes(t, reg("a", "1"), reg("a", "2"))},
		{"file then dir", "a", tarBytes(t, reg("a", "1"), dirE("a/"))},
		{"beneath file", "a/b", tarBytes(t, reg("a", "1"), reg("a/b", "2"))},
		{"dotdot inside", "a/../../b", tarBytes(t, reg("a/../../b", "x"))},
	}
}

func TestPackSeedRejects(t *testing.T) {
	dir := t.TempDir()
	cases := hostile(t)
	extra := []struct {
		name, entry string
		tar         []byte
	}{
		{"symlink outside", "l", tarBytes(t, sym("l", "../../outside"))},
		{"symlink absolute", "l", tarBytes(t, sym("l", "/etc"))},
		{"symlink chain", "d/x", tarBytes(t, dirE("d/"), sym("d/up", ".."), sym("d/x", "up/.."))},
	}
	cases = append(cases, extra...)
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			for _, form := range []string{".tar", ".tgz"} {
				data := tt.tar
				if form == ".tgz" {
					data = gzipBytes(t, data)
				}
				p := writeFile(t, filepath.Join(dir, tt.name+form), data)
				var buf bytes.Buffer
				_, err := PackSeed(context.Background(), p, &buf)
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !namesEntry(err, tt.entry) {
					t.Fatalf("%d%s: err = %v, want invalid argument naming %q", i, form, err, tt.entry)
				}
				if buf.Len() != 0 {
					t.Errorf("rejected seed wrote %d bytes", buf.Len())
				}
			}
		})
	}
	t.Run("zip dotdot", func(t *testing.T) {
		p := writeFile(t, filepath.Join(dir, "evil.zip"), zipBytes(t, reg("ok", "x"), reg("../x", "x")))
		_, err := PackSeed(context.Background(), p, io.Discard)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"../x"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPackSeedDirectory(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		_, err := PackSeed(context.Background(), "/nonexistent/seed", io.Discard)
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "/nonexistent/seed") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("absolute symlink", func(t *testing.T) {
		s := t.TempDir()
		os.Symlink("/etc/passwd", filepath.Join(s, "pw"))
		_, err := PackSeed(context.Background(), s, io.Discard)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"pw"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("escaping symlink", func(t *testing.T) {
		s := t.TempDir()
		os.Mkdir(filepath.Join(s, "d"), 0o755)
		os.Symlink("../../x", filepath.Join(s, "d/up"))
		_, err := PackSeed(context.Background(), s, io.Discard)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"d/up"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("fifo skipped", func(t *testing.T) {
		s := t.TempDir()
		writeFile(t, filepath.Join(s, "a"), []byte("a"))
		if err := syscall.Mkfifo(filepath.Join(s, "fifo"), 0o644); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		res, err := PackSeed(context.Background(), s, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if res.Entries != 1 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "fifo") {
			t.Fatalf("res = %+v", res)
		}
	})
	t.Run("symlinked seed path", func(t *testing.T) {
		s := makeSeedDir(t)
		l := filepath.Join(t.TempDir(), "seedlink")
		os.Symlink(s, l)
		res, err := PackSeed(context.Background(), l, io.Discard)
		if err != nil || res.Entries != 10 {
			t.Fatalf("res = %+v, err = %v", res, err)
		}
	})
	t.Run("not an archive", func(t *testing.T) {
		p := writeFile(t, filepath.Join(t.TempDir(), "notes.txt"), []byte("hello"))
		_, err := PackSeed(context.Background(), p, io.Discard)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("err = %v", err)
		}
	})
}

// namesEntry reports whether err quotes one of the "|"-separated names.
func namesEntry(err error, names string) bool {
	for _, n := range strings.Split(names, "|") {
		if strings.Contains(err.Error(), `"`+n+`"`) {
			return true
		}
	}
	return false
}

// TestScanPackDir: the sync source rules are the seed rules, exclusions
// leave entries out before they are read or validated, and a selection
// writes copies of hard links whose first file is not sent.
func TestScanPackDir(t *testing.T) {
	src := makeSeedDir(t)
	writeFile(t, filepath.Join(src, "__pycache__/x.pyc"), []byte("pyc"))
	writeFile(t, filepath.Join(src, "src/__pycache__/y.pyc"), []byte("pyc"))
	os.Symlink("/usr/bin/python3", filepath.Join(src, "__pycache__/py")) // would be rejected, but is excluded
	syscall.Chmod(filepath.Join(src, "suid"), 0o4755)
	m := ignore.MustCompile("__pycache__/")
	var names []string
	res, err := ScanDir(context.Background(), src, PackOptions{Exclude: m}, func(e *Entry) error {
		names = append(names, e.Name+":"+string(e.Type))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"blob.bin:file", "empty:dir", "gone.txt:file", "hard.txt:hardlink", "link:symlink", "run.sh:file",
		"src:dir", "src/edit.txt:file", "src/keep.txt:file", "suid:file"}
	if !reflect.DeepEqual(names, want) || res.Entries != 10 {
		t.Errorf("ScanDir = %q (%+v)", names, res)
	}
	// Without the exclusion the absolute symlink fails the scan, and the
	// error says it can be excluded.
	_, err = ScanDir(context.Background(), src, PackOptions{}, func(*Entry) error { return nil })
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"__pycache__/py"`) || !strings.Contains(err.Error(), "exclude it") {
		t.Errorf("unexcluded absolute symlink: %v", err)
	}
	// Select only the hard link: it is sent as a copy of gone.txt.
	var buf bytes.Buffer
	pr, err := PackDir(context.Background(), src, &buf, PackOptions{Exclude: m, Select: func(e *Entry) bool { return e.Name == "hard.txt" || e.Name == "suid" }})
	if err != nil {
		t.Fatal(err)
	}
	ents, err := ListTar(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 || ents[0].Name != "hard.txt" || ents[0].Type != TypeFile || ents[0].Size != 4 || ents[1].Mode != 0o4755 || pr.Entries != 2 || pr.Bytes != 5 {
		t.Errorf("PackDir wrote %+v (%+v)", ents, pr)
	}
	// Select both: a hard link to the file sent before it.
	buf.Reset()
	if _, err := PackDir(context.Background(), src, &buf, PackOptions{Select: func(e *Entry) bool { return e.Name == "hard.txt" || e.Name == "gone.txt" }, Exclude: m}); err != nil {
		t.Fatal(err)
	}
	ents, _ = ListTar(bytes.NewReader(buf.Bytes()))
	if len(ents) != 2 || ents[1].Type != TypeHardlink || ents[1].Linkname != "gone.txt" {
		t.Errorf("PackDir wrote %+v", ents)
	}
	// A file and a missing root.
	if _, err := ScanDir(context.Background(), filepath.Join(src, "run.sh"), PackOptions{}, func(*Entry) error { return nil }); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("file root: %v", err)
	}
	if _, err := PackDir(context.Background(), filepath.Join(src, "nope"), io.Discard, PackOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing root: %v", err)
	}
	// The entry limit.
	if _, err := ScanDir(context.Background(), src, PackOptions{MaxEntries: 5, Exclude: m}, func(*Entry) error { return nil }); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("limit: %v", err)
	}
}

func TestZipEntryLimit(t *testing.T) {
	var ents []ent
	for i := range 30 {
		ents = append(ents, reg(fmt.Sprintf("f%d", i), "x"))
	}
	p := writeFile(t, filepath.Join(t.TempDir(), "many.zip"), zipBytes(t, ents...))
	if n, err := zipEntryCount(p); err != nil || n != 30 {
		t.Fatalf("zipEntryCount = %d, %v", n, err)
	}
	t.Setenv(MaxEntriesEnv, "20")
	if _, err := CheckSeed(context.Background(), p); !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "entries") {
		t.Fatalf("CheckSeed: %v", err)
	}
	t.Setenv(MaxEntriesEnv, "40")
	if _, err := CheckSeed(context.Background(), p); err != nil {
		t.Fatalf("CheckSeed under the limit: %v", err)
	}
}
