package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
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

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ignore"
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
		if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "with force") {
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
		"ro dr-xr-xr-x", "ro/f -rw-r--r--", "sticky drwxrwxr-x", "suid -rwxr-xr-x"}
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

func TestHostMode(t *testing.T) {
	for _, tc := range []struct {
		in, want, preserved uint32
	}{
		{0o644, 0o644, 0o644},
		{0o777, 0o775, 0o777},
		{0o4755, 0o755, 0o4755},
		{0o2755, 0o755, 0o2755},
		{0o1777, 0o775, 0o1777},
		{0o6777, 0o775, 0o6777},
		{0o666, 0o664, 0o666},
		{0o170644, 0o644, 0o644}, // type bits never pass
	} {
		if got := hostMode(tc.in, false); got != tc.want {
			t.Errorf("hostMode(%#o) = %#o, want %#o", tc.in, got, tc.want)
		}
		if got := hostMode(tc.in, true); got != tc.preserved {
			t.Errorf("hostMode(%#o, preserve) = %#o, want %#o", tc.in, got, tc.preserved)
		}
	}
}

// TestExtractModes: setuid, setgid, sticky and world-write bits reach the
// host only when asked, in directories and in archives.
func TestExtractModes(t *testing.T) {
	data := tarBytes(t,
		ent{name: "suid", typ: tar.TypeReg, mode: 0o4755, body: "s"},
		ent{name: "sgid", typ: tar.TypeReg, mode: 0o2755, body: "g"},
		ent{name: "ww", typ: tar.TypeReg, mode: 0o666, body: "w"},
		ent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		ent{name: "sgdir/", typ: tar.TypeDir, mode: 0o2775},
	)
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	for _, tc := range []struct {
		preserve bool
		want     map[string]uint32
	}{
		{false, map[string]uint32{"suid": 0o755, "sgid": 0o755, "ww": 0o664, "tmp": 0o775, "sgdir": 0o775}},
		// setgid survives only for a group the user is in; the test
		// user owns its files with its own group, so it does.
		{true, map[string]uint32{"suid": 0o4755, "sgid": 0o2755, "ww": 0o666, "tmp": 0o1777, "sgdir": 0o2775}},
	} {
		dest := filepath.Join(t.TempDir(), "out")
		if _, err := Extract(context.Background(), bytes.NewReader(data), dest, ExtractOptions{PreserveMode: tc.preserve}); err != nil {
			t.Fatal(err)
		}
		for name, want := range tc.want {
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(dest, name), &st); err != nil {
				t.Fatal(err)
			}
			if got := st.Mode & 0o7777; got != want {
				t.Errorf("preserve=%v: %s has mode %#o, want %#o (umask %#o)", tc.preserve, name, got, want, umask)
			}
		}
		arch := filepath.Join(t.TempDir(), "out.tar")
		if _, err := WriteArchive(context.Background(), bytes.NewReader(data), arch, ExtractOptions{PreserveMode: tc.preserve}); err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(arch)
		ents, err := ListTar(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if want := tc.want[e.Name]; e.Mode != want {
				t.Errorf("preserve=%v: archive entry %s has mode %#o, want %#o", tc.preserve, e.Name, e.Mode, want)
			}
		}
	}
}

func TestExtractExclude(t *testing.T) {
	data := tarBytes(t,
		reg("keep.txt", "k"),
		dirE("__pycache__/"),
		reg("__pycache__/x.pyc", "p"),
		reg("src/a.py", "a"),
		reg("src/__pycache__/a.pyc", "p"),
		reg("build.log", "l"),
		hard("src/link.log", "build.log"),
		hard("src/link2", "keep.txt"),
	)
	m := ignore.MustCompile("__pycache__/", "*.log", "!src/link.log")
	dest := filepath.Join(t.TempDir(), "out")
	res, err := Extract(context.Background(), bytes.NewReader(data), dest, ExtractOptions{Exclude: m})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"keep.txt -rw-r--r--", "src drwxr-xr-x", "src/a.py -rw-r--r--", "src/link2 -rw-r--r--"}
	if got := listTree(t, dest); !reflect.DeepEqual(got, want) {
		t.Errorf("tree = %q, want %q", got, want)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "src/link.log") {
		t.Errorf("warnings = %q", res.Warnings)
	}
	// Excluded entries are still validated.
	bad := tarBytes(t, reg("__pycache__/../../x", "x"))
	if _, err := Extract(context.Background(), bytes.NewReader(bad), filepath.Join(t.TempDir(), "o"), ExtractOptions{Exclude: m}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("an excluded hostile entry: %v", err)
	}
}

// TestEntryLimit: a stream over the entry limit fails with an error that
// names the limit and how to raise it; implied directories count.
func TestEntryLimit(t *testing.T) {
	many := func(n int) []ent {
		var es []ent
		for i := range n {
			es = append(es, reg(fmt.Sprintf("d%d/f%d", i/10, i), ""))
		}
		return es
	}
	for _, tc := range []struct {
		name   string
		ents   []ent
		max    int
		env    string
		wantOK bool
	}{
		{"under", many(90), 100, "", true},               // 90 files + 9 dirs
		{"implied dirs count", many(95), 100, "", false}, // 95 + 10
		{"over", many(200), 100, "", false},
		{"env raises the default", many(200), 0, "1000", true},
		{"env lowers the default", many(200), 0, "50", false},
		{"deep name", []ent{reg(strings.Repeat("d/", 150)+"f", "")}, 100, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(MaxEntriesEnv, tc.env)
			data := tarBytes(t, tc.ents...)
			_, err := Walk(context.Background(), bytes.NewReader(data), ExtractOptions{MaxEntries: tc.max}, func(*Entry, io.Reader) error { return nil })
			if tc.wantOK {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "entries") || !strings.Contains(err.Error(), MaxEntriesEnv) {
				t.Fatalf("err = %v, want resource exhausted naming entries and %s", err, MaxEntriesEnv)
			}
		})
	}
	// Extract leaves nothing behind.
	t.Setenv(MaxEntriesEnv, "")
	parent := t.TempDir()
	_, err := Extract(context.Background(), bytes.NewReader(tarBytes(t, many(50)...)), filepath.Join(parent, "o"), ExtractOptions{MaxEntries: 20})
	if !errors.Is(err, errdefs.ErrResourceExhausted) || dirNames(t, parent) != "" {
		t.Fatalf("err = %v, parent holds %q", err, dirNames(t, parent))
	}
	// The seed path counts the same way.
	seed := writeFile(t, filepath.Join(t.TempDir(), "s.tar"), tarBytes(t, many(50)...))
	t.Setenv(MaxEntriesEnv, "20")
	if _, err := CheckSeed(context.Background(), seed); !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "seed has more than 20 entries") {
		t.Fatalf("CheckSeed: %v", err)
	}
}

func TestLongNames(t *testing.T) {
	long := strings.Repeat("a", 5000)
	for _, data := range [][]byte{tarBytes(t, reg(long, "x")), tarBytes(t, sym("l", long))} {
		_, err := Walk(context.Background(), bytes.NewReader(data), ExtractOptions{}, func(*Entry, io.Reader) error { return nil })
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "more than 4096") {
			t.Errorf("err = %v", err)
		}
	}
}
