package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/hearthvm/hearth/internal/errdefs"
)

func TestExtractRejectsHostile(t *testing.T) {
	for _, tt := range hostile(t) {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			parent := filepath.Join(top, "a", "b")
			os.MkdirAll(parent, 0o755)
			dest := filepath.Join(parent, "dest")
			_, err := Extract(context.Background(), bytes.NewReader(tt.tar), dest, ExtractOptions{})
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !namesEntry(err, tt.entry) {
				t.Fatalf("err = %v, want invalid argument naming %q", err, tt.entry)
			}
			if !strings.Contains(err.Error(), "nothing was written") {
				t.Errorf("error does not say nothing was written: %v", err)
			}
			if n := dirNames(t, parent); n != "" {
				t.Errorf("parent holds %q after a rejected extract", n)
			}
			if n := dirNames(t, top); n != "a" {
				t.Errorf("outside dest: %q", n)
			}
			if n := dirNames(t, filepath.Join(top, "a")); n != "b" {
				t.Errorf("outside dest: %q", n)
			}
			// WriteArchive applies the same rules and leaves no file.
			_, err = WriteArchive(context.Background(), bytes.NewReader(tt.tar), filepath.Join(parent, "out.tar"), ExtractOptions{})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("WriteArchive err = %v", err)
			}
			if n := dirNames(t, parent); n != "" {
				t.Errorf("parent holds %q after a rejected WriteArchive", n)
			}
		})
	}
}

func TestExtractNeverWritesThroughSymlink(t *testing.T) {
	top := t.TempDir()
	outside := filepath.Join(top, "outside")
	os.Mkdir(outside, 0o755)
	tests := []struct {
		name string
		tar  []byte
	}{
		{"file beneath", tarBytes(t, sym("ln", outside), reg("ln/f", "x"))},
		{"dir beneath", tarBytes(t, sym("ln", outside), dirE("ln/d/"))},
		{"same name twice", tarBytes(t, sym("ln", outside+"/f"), reg("ln", "x"))},
		{"hardlink via symlink", tarBytes(t, sym("ln", outside), hard("h", "ln/f"))},
		{"nested", tarBytes(t, dirE("x/"), sym("x/ln", "../../outside"), reg("x/ln/f", "x"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Extract(context.Background(), bytes.NewReader(tt.tar), filepath.Join(top, "dest"), ExtractOptions{})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v", err)
			}
			if n := dirNames(t, outside); n != "" {
				t.Fatalf("wrote through a symlink: outside holds %q", n)
			}
			if n := dirNames(t, top); n != "outside" {
				t.Fatalf("left %q", n)
			}
		})
	}
	// Symlinks pointing out are kept, with a warning, and not followed.
	dest := filepath.Join(top, "kept")
	res, err := Extract(context.Background(), bytes.NewReader(tarBytes(t, dirE("evil/"), sym("evil/ln", outside), sym("evil/pw", "/etc/passwd"))), dest, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Symlinks != 2 || len(res.Warnings) != 2 || !strings.Contains(res.Warnings[1], "evil/pw") {
		t.Errorf("res = %+v", res)
	}
	if tg, _ := os.Readlink(filepath.Join(dest, "evil/pw")); tg != "/etc/passwd" {
		t.Errorf("target %q", tg)
	}
}

func TestExtractDestination(t *testing.T) {
	archive := tarBytes(t, dirE("src/"), reg("src/edit.txt", "new\n"))
	t.Run("non-empty refused", func(t *testing.T) {
		dest := t.TempDir()
		writeFile(t, filepath.Join(dest, "keep.me"), []byte("precious"))
		_, err := Extract(context.Background(), bytes.NewReader(archive), dest, ExtractOptions{})
		if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("err = %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(dest, "keep.me")); string(b) != "precious" || dirNames(t, dest) != "keep.me" {
			t.Fatalf("dest changed")
		}
	})
	t.Run("force replaces", func(t *testing.T) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "out")
		writeFile(t, filepath.Join(dest, "keep.me"), []byte("precious"))
		if _, err := Extract(context.Background(), bytes.NewReader(archive), dest, ExtractOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		if n := dirNames(t, dest); n != "src" {
			t.Fatalf("dest holds %q", n)
		}
		if n := dirNames(t, parent); n != "out" {
			t.Fatalf("leftovers beside dest: %q", n)
		}
	})
	t.Run("force replaces without exchange", func(t *testing.T) {
		testNoExchange = true
		defer func() { testNoExchange = false }()
		parent := t.TempDir()
		dest := filepath.Join(parent, "out")
		writeFile(t, filepath.Join(dest, "keep.me"), []byte("precious"))
		if _, err := Extract(context.Background(), bytes.NewReader(archive), dest, ExtractOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		if n := dirNames(t, dest) + "|" + dirNames(t, parent); n != "src|out" {
			t.Fatalf("dest|parent = %q", n)
		}
	})
	t.Run("force keeps old tree on error", func(t *testing.T) {
		dest := t.TempDir()
		writeFile(t, filepath.Join(dest, "keep.me"), []byte("precious"))
		_, err := Extract(context.Background(), bytes.NewReader(tarBytes(t, reg("../x", "x"))), dest, ExtractOptions{Force: true})
		if err == nil || dirNames(t, dest) != "keep.me" {
			t.Fatalf("err = %v, dest = %q", err, dirNames(t, dest))
		}
	})
	t.Run("empty dir accepted", func(t *testing.T) {
		dest := t.TempDir()
		if _, err := Extract(context.Background(), bytes.NewReader(archive), dest, ExtractOptions{}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dest, "src/edit.txt")); string(b) != "new\n" {
			t.Fatalf("content %q", b)
		}
	})
	t.Run("file refused", func(t *testing.T) {
		p := writeFile(t, filepath.Join(t.TempDir(), "f"), []byte("x"))
		_, err := Extract(context.Background(), bytes.NewReader(archive), p, ExtractOptions{Force: true})
		if err == nil {
			t.Fatal("extracted over a file")
		}
	})
	t.Run("strip", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "out")
		if _, err := Extract(context.Background(), bytes.NewReader(archive), dest, ExtractOptions{Strip: "src"}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dest, "edit.txt")); string(b) != "new\n" {
			t.Fatalf("content %q", b)
		}
		_, err := Extract(context.Background(), bytes.NewReader(archive), filepath.Join(t.TempDir(), "o"), ExtractOptions{Strip: "other"})
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("strip of a foreign prefix: %v", err)
		}
	})
}

func TestExtractEntries(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "out")
	data := tarBytes(t,
		ent{name: "ro/", typ: tar.TypeDir, mode: 0o555},
		reg("ro/f", "x"),
		ent{name: "dev", typ: tar.TypeChar, mode: 0o600},
		ent{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
		ent{name: "sticky/", typ: tar.TypeDir, mode: 0o1777},
		ent{name: "suid", typ: tar.TypeReg, mode: 0o6755, body: "s"},
		reg("a", "A"), hard("b", "a"),
		reg("deep/er/file", "implicit parents"),
	)
	res, err := Extract(context.Background(), bytes.NewReader(data), dest, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "device node dev") || !strings.Contains(res.Warnings[1], "fifo") {
		t.Errorf("warnings = %q", res.Warnings)
	}
	want := []string{"a -rw-r--r--", "b -rw-r--r--", "deep drwxr-xr-x", "deep/er drwxr-xr-x", "deep/er/file -rw-r--r--",
		"ro dr-xr-xr-x", "ro/f -rw-r--r--", "sticky drwxrwxrwx", "suid -rwxr-xr-x"}
	if got := listTree(t, dest); !reflect.DeepEqual(got, want) {
		t.Errorf("tree = %q", got)
	}
	if res.Files != 5 || res.Dirs != 4 {
		t.Errorf("res = %+v", res)
	}
	fi, _ := os.Stat(filepath.Join(dest, "a"))
	if !fi.ModTime().Equal(testTime) {
		t.Errorf("mtime %v", fi.ModTime())
	}
	// Force over a tree with a read-only directory.
	if _, err := Extract(context.Background(), bytes.NewReader(data), dest, ExtractOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
}

// failAfter returns ENOSPC once n bytes were written.
type failAfter struct {
	w io.Writer
	n int
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}
	}
	f.n -= len(p)
	return f.w.Write(p)
}

func TestExtractDiskFull(t *testing.T) {
	testWrapWriter = func(w io.Writer) io.Writer { return &failAfter{w: w, n: 4} }
	defer func() { testWrapWriter = nil }()
	data := tarBytes(t, reg("small", "abc"), reg("big", strings.Repeat("x", 100)))
	parent := t.TempDir()
	dest := filepath.Join(parent, "out")
	_, err := Extract(context.Background(), bytes.NewReader(data), dest, ExtractOptions{})
	if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), dest) || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("err = %v", err)
	}
	if n := dirNames(t, parent); n != "" {
		t.Fatalf("left %q", n)
	}
	_, err = WriteArchive(context.Background(), bytes.NewReader(data), filepath.Join(parent, "o.tar"), ExtractOptions{})
	if !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("WriteArchive err = %v", err)
	}
	if n := dirNames(t, parent); n != "" {
		t.Fatalf("left %q", n)
	}
}

func TestWriteArchive(t *testing.T) {
	dir := t.TempDir()
	data := tarBytes(t, dirE("./src/"), ent{name: "src/run", typ: tar.TypeReg, mode: 0o4755, body: "#!"}, sym("src/l", "run"),
		ent{name: "src/fifo", typ: tar.TypeFifo})
	out := filepath.Join(dir, "out.tar.gz")
	res, err := WriteArchive(context.Background(), bytes.NewReader(data), out, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 1 || res.Dirs != 1 || res.Symlinks != 1 || len(res.Warnings) != 1 {
		t.Errorf("res = %+v", res)
	}
	f, _ := os.Open(out)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	list, err := ListTar(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[1].Mode != 0o755 || list[0].Name != "src" || list[2].Linkname != "run" {
		t.Errorf("entries = %+v", list)
	}
	_, err = WriteArchive(context.Background(), bytes.NewReader(data), out, ExtractOptions{})
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("existing file: %v", err)
	}
	if _, err := WriteArchive(context.Background(), bytes.NewReader(data), out, ExtractOptions{Force: true}); err != nil {
		t.Errorf("force: %v", err)
	}
	if _, err := WriteArchive(context.Background(), bytes.NewReader(data), filepath.Join(dir, "o.zip"), ExtractOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("zip: %v", err)
	}
	if n := dirNames(t, dir); n != "out.tar.gz" {
		t.Errorf("dir holds %q", n)
	}
}

func TestCheckSeedAndReadFiles(t *testing.T) {
	src := makeSeedDir(t)
	res, err := CheckSeed(context.Background(), src)
	if err != nil || res.Entries != 10 || res.Bytes != 34 {
		t.Fatalf("CheckSeed = %+v, %v", res, err)
	}
	var buf bytes.Buffer
	if _, err := PackSeed(context.Background(), src, &buf); err != nil {
		t.Fatal(err)
	}
	files, big, err := ReadFiles(context.Background(), &buf, ExtractOptions{}, []string{"src/edit.txt", "blob.bin", "missing"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || string(files["src/edit.txt"]) != "old\n" || len(big) != 1 || big[0] != "blob.bin" {
		t.Fatalf("files = %q, tooLarge = %q", files, big)
	}
}

func TestExtractCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	parent := t.TempDir()
	_, err := Extract(ctx, bytes.NewReader(tarBytes(t, reg("a", "x"))), filepath.Join(parent, "out"), ExtractOptions{})
	if !errors.Is(err, context.Canceled) || dirNames(t, parent) != "" {
		t.Fatalf("err = %v, parent = %q", err, dirNames(t, parent))
	}
}

func TestIndexTar(t *testing.T) {
	src := makeSeedDir(t)
	p := filepath.Join(t.TempDir(), "baseline.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := PackSeed(context.Background(), src, f); err != nil {
		t.Fatal(err)
	}
	x, err := IndexTar(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"src/keep.txt", "blob.bin", "hard.txt", "gone.txt"} {
		want, _ := os.ReadFile(filepath.Join(src, name))
		got, err := x.ReadFile(name, 1<<20)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := x.ReadFile("link", 100); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("symlink: %v", err)
	}
	if _, err := x.ReadFile("blob.bin", 2); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("limit: %v", err)
	}
	if n, ok := x.Size("src/edit.txt"); !ok || n != 4 {
		t.Errorf("Size = %d, %v", n, ok)
	}
}
