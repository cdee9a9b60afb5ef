// Package sparse copies large, mostly empty files (VM disks) at the cost
// of what they hold, not of their size: a reflink (FICLONE) where the host
// file system shares blocks (btrfs, XFS with reflink, bcachefs), otherwise
// a copy of the data extents only, found with SEEK_DATA/SEEK_HOLE, so the
// holes stay holes in the copy.
//
// A copy is written whole or not at all: CopyFile writes a temporary file
// beside the destination, syncs it and renames it into place, and removes
// it on any failure. Before copying it checks that the destination's file
// system has room for the source's allocated blocks.
package sparse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// Methods a copy can be made with.
const (
	MethodReflink = "reflink"
	MethodSparse  = "sparse"
)

// Extent is a range of a file that holds data.
type Extent struct {
	Off, Len int64
}

// Extents lists the data extents of f (size bytes long) with SEEK_DATA and
// SEEK_HOLE. A file system without hole reporting reports the whole file
// as one extent, which is still a correct (if not sparse) copy plan.
func Extents(f *os.File, size int64) ([]Extent, error) {
	var out []Extent
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole from off to the end
		}
		if err != nil {
			return nil, fmt.Errorf("seek data in %s at %d: %w", f.Name(), off, err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole in %s at %d: %w", f.Name(), data, err)
		}
		hole = min(hole, size)
		if hole <= data {
			break
		}
		out = append(out, Extent{Off: data, Len: hole - data})
		off = hole
	}
	return out, nil
}

// Result says how a copy was made.
type Result struct {
	// Method is MethodReflink or MethodSparse.
	Method string
	// ReflinkErr is why the reflink was not possible (nil when it was, or
	// was not tried).
	ReflinkErr error
	// Size is the file's apparent size; DataBytes the bytes of data
	// extents copied (0 for a reflink); Allocated the source's allocated
	// bytes.
	Size, DataBytes, Allocated int64
	Duration                   time.Duration
}

// Options tune CopyFile. The zero value is the normal behaviour.
type Options struct {
	// NoReflink skips the reflink attempt.
	NoReflink bool
	// Free returns the bytes available to us on the file system holding
	// dir (statfs f_bavail * f_bsize when nil); tests fake a full disk.
	Free func(dir string) (int64, error)
	// Reserve is the free space that must remain after the copy (default
	// DefaultReserve), so a snapshot never fills the host's disk.
	Reserve int64
	// Mode is the destination's permission bits (default 0o600).
	Mode os.FileMode
	// clone replaces the FICLONE call (tests).
	clone func(dst, src int) error
}

// DefaultReserve is the free space a copy leaves on the destination's
// file system at least.
const DefaultReserve = 256 << 20

// FreeBytes returns the bytes available to unprivileged users on the file
// system holding dir.
func FreeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Allocated returns the bytes a file's blocks take on disk.
func Allocated(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Blocks * 512, nil
}

// CopyFile copies src to dst, which must not exist, whole or not at all.
func CopyFile(ctx context.Context, src, dst string, o Options) (*Result, error) {
	start := time.Now()
	if o.Free == nil {
		o.Free = FreeBytes
	}
	if o.Reserve == 0 {
		o.Reserve = DefaultReserve
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	if o.clone == nil {
		o.clone = unix.IoctlFileClone
	}
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("copy %s: not a regular file: %w", src, errdefs.ErrInvalidArgument)
	}
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("copy to %s: it already exists: %w", dst, errdefs.ErrAlreadyExists)
	}
	res := &Result{Size: fi.Size()}
	if res.Allocated, err = Allocated(src); err != nil {
		return nil, err
	}
	dir := filepath.Dir(dst)
	free, err := o.Free(dir)
	if err != nil {
		return nil, err
	}
	if need := res.Allocated + o.Reserve; free < need {
		return nil, fmt.Errorf("not enough free space on the file system of %s: the copy needs %s and %s must stay free, %s is available: free some space: %w",
			dir, human(res.Allocated), human(o.Reserve), human(free), errdefs.ErrResourceExhausted)
	}
	tmp := filepath.Join(dir, "."+filepath.Base(dst)+".tmp-"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp) // a leftover of an earlier process with our pid
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, o.Mode)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(tmp)
		}
	}()
	res.Method = MethodSparse
	if !o.NoReflink {
		if err := o.clone(int(out.Fd()), int(in.Fd())); err == nil {
			res.Method = MethodReflink
		} else {
			res.ReflinkErr = err
		}
	}
	if res.Method == MethodSparse {
		n, err := copyExtents(ctx, in, out, fi.Size())
		if err != nil {
			return nil, fmt.Errorf("copy %s: %w", src, err)
		}
		res.DataBytes = n
		if err := out.Truncate(fi.Size()); err != nil {
			return nil, err
		}
	}
	if err := out.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Link, not rename: a destination created meanwhile is not replaced.
	if err := os.Link(tmp, dst); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("copy to %s: it already exists: %w", dst, errdefs.ErrAlreadyExists)
		}
		return nil, err
	}
	os.Remove(tmp)
	ok = true
	syncDir(dir)
	res.Duration = time.Since(start)
	return res, nil
}

// copyExtents copies the data extents of in to the same offsets of out,
// in the kernel (copy_file_range) where it can, and returns the bytes
// copied.
func copyExtents(ctx context.Context, in, out *os.File, size int64) (int64, error) {
	exts, err := Extents(in, size)
	if err != nil {
		return 0, err
	}
	var total int64
	useCFR := true
	buf := []byte(nil)
	for _, e := range exts {
		off, end := e.Off, e.Off+e.Len
		for off < end {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			chunk := min(end-off, 64<<20)
			if useCFR {
				roff, woff := off, off
				n, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(chunk), 0)
				if err == nil && n > 0 {
					off += int64(n)
					total += int64(n)
					continue
				}
				if err != nil && !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
					return total, fmt.Errorf("copy_file_range at %d: %w", off, err)
				}
				useCFR = false
			}
			if buf == nil {
				buf = make([]byte, 1<<20)
			}
			n, err := in.ReadAt(buf[:min(chunk, int64(len(buf)))], off)
			if n > 0 {
				if _, werr := out.WriteAt(buf[:n], off); werr != nil {
					return total, werr
				}
				off += int64(n)
				total += int64(n)
			}
			if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
				if errors.Is(err, io.EOF) {
					return total, nil // the file shrank: nothing more to copy
				}
				return total, err
			}
		}
	}
	return total, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
