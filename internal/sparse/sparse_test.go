package sparse

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hearthvm/hearth/internal/errdefs"
)

const block = 1 << 20 // larger than any file system block, so holes are real

// makeSparse writes a file of size bytes with data at the given offsets
// (one block each) and returns its contents for comparison.
func makeSparse(t *testing.T, path string, size int64, at ...int64) []byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	for i, off := range at {
		b := bytes.Repeat([]byte{byte('a' + i)}, block)
		if off+block > size {
			b = b[:size-off]
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], b)
	}
	return want
}

func TestExtents(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		size int64
		at   []int64
	}{
		{"empty", 0, nil},
		{"all hole", 64 * block, nil},
		{"data at start", 64 * block, []int64{0}},
		{"data at end", 64 * block, []int64{63 * block}},
		{"scattered", 64 * block, []int64{3 * block, 10 * block, 11 * block, 40 * block}},
		{"partial tail", 10*block + 100, []int64{10 * block}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			makeSparse(t, p, tc.size, tc.at...)
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			exts, err := Extents(f, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			// Every written block lies in an extent, extents are ordered,
			// disjoint, within the file, and cover no more than the data
			// blocks (file systems may round to their block size only).
			var covered int64
			last := int64(-1)
			for _, e := range exts {
				if e.Off <= last || e.Len <= 0 || e.Off+e.Len > tc.size {
					t.Fatalf("bad extent %+v (after %d) in %v", e, last, exts)
				}
				last = e.Off + e.Len - 1
				covered += e.Len
			}
			for _, off := range tc.at {
				in := false
				for _, e := range exts {
					if off >= e.Off && off < e.Off+e.Len {
						in = true
					}
				}
				if !in {
					t.Errorf("data at %d not in any extent %v", off, exts)
				}
			}
			if max := int64(len(tc.at)) * block; covered > max {
				t.Errorf("extents cover %d bytes, more than the %d written: %v", covered, max, exts)
			}
		})
	}
}

func TestCopyFileSparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "disk")
	size := int64(64 * block)
	want := makeSparse(t, src, size, 0, 7*block, 40*block, 63*block)
	dst := filepath.Join(dir, "copy")
	res, err := CopyFile(context.Background(), src, dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("copy differs from the source")
	}
	if res.Size != size {
		t.Errorf("size %d, want %d", res.Size, size)
	}
	alloc, _ := Allocated(dst)
	if alloc > 8*block {
		t.Errorf("copy allocates %d bytes for 4 MiB of data: not sparse", alloc)
	}
	if res.Method == MethodSparse && res.DataBytes > 8*block {
		t.Errorf("copied %d data bytes for 4 MiB of data", res.DataBytes)
	}
	if res.Method == MethodSparse && res.ReflinkErr == nil {
		t.Error("a sparse copy without a reflink error: the reflink was not attempted")
	}
	t.Logf("method %s (reflink: %v), %d data bytes", res.Method, res.ReflinkErr, res.DataBytes)
	// No temporary file is left.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("files left: %v", ents)
	}
}

func TestCopyFileReflinkAttemptedThenFallsBack(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "disk")
	want := makeSparse(t, src, 16*block, 2*block)
	tried := 0
	o := Options{clone: func(dst, src int) error { tried++; return unix.EOPNOTSUPP }}
	res, err := CopyFile(context.Background(), src, filepath.Join(dir, "copy"), o)
	if err != nil {
		t.Fatal(err)
	}
	if tried != 1 || res.Method != MethodSparse || !errors.Is(res.ReflinkErr, unix.EOPNOTSUPP) {
		t.Fatalf("tried %d, method %s, reflink err %v", tried, res.Method, res.ReflinkErr)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "copy"))
	if !bytes.Equal(got, want) {
		t.Fatal("fallback copy differs")
	}
	// A clone that works is used as is: no extent is copied.
	o.clone = func(dst, src int) error {
		tried++
		// Stand in for the file system: give dst src's bytes.
		_, err := unix.CopyFileRange(src, nil, dst, nil, 16*block, 0)
		return err
	}
	res, err = CopyFile(context.Background(), src, filepath.Join(dir, "copy2"), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != MethodReflink || res.DataBytes != 0 {
		t.Fatalf("method %s, data %d", res.Method, res.DataBytes)
	}
	// NoReflink does not try.
	tried = 0
	if _, err := CopyFile(context.Background(), src, filepath.Join(dir, "copy3"), Options{NoReflink: true, clone: o.clone}); err != nil || tried != 0 {
		t.Fatalf("NoReflink: tried %d, err %v", tried, err)
	}
}

func TestCopyFileNoSpace(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "disk")
	makeSparse(t, src, 64*block, 0, 10*block, 20*block)
	dst := filepath.Join(dir, "copy")
	o := Options{Free: func(string) (int64, error) { return 2 * block, nil }, Reserve: 1}
	_, err := CopyFile(context.Background(), src, dst, o)
	if !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("err %v, want resource exhausted", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("a refused copy left files: %v", ents)
	}
	// Enough room: it goes through.
	o.Free = func(string) (int64, error) { return 64 * block, nil }
	if _, err := CopyFile(context.Background(), src, dst, o); err != nil {
		t.Fatal(err)
	}
}

func TestCopyFileExistingAndCanceled(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "disk")
	makeSparse(t, src, 8*block, 0)
	dst := filepath.Join(dir, "copy")
	os.WriteFile(dst, []byte("keep"), 0o600)
	if _, err := CopyFile(context.Background(), src, dst, Options{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("err %v, want already exists", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "keep" {
		t.Fatal("existing destination changed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst2 := filepath.Join(dir, "copy2")
	if _, err := CopyFile(ctx, src, dst2, Options{NoReflink: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want canceled", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("a canceled copy left files: %v", ents)
	}
}
