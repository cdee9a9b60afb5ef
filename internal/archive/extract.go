package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// testWrapWriter, when set by tests, wraps every file writer (to inject
// errors such as ENOSPC).
var testWrapWriter func(io.Writer) io.Writer

// testNoExchange, when set by tests, forces the two-rename replacement.
var testNoExchange bool

// Extract writes an untrusted tar stream into the new host directory dest.
//
// dest must not exist, or be an empty directory; a non-empty directory is
// replaced only with opts.Force, and an existing non-directory is refused.
// The tree is built in a temporary directory beside dest and renamed into
// place at the end (with Force, atomically swapped with the old tree, which
// is then removed). On any error the temporary directory is removed and dest
// is left as it was. The temporary directory (".NAME.hearth-tmp-*", mode
// 0700) survives only if the process is killed; it is safe to delete.
//
// Every file is created with O_EXCL|O_NOFOLLOW in a directory Extract made
// itself, so nothing is ever written through a symlink. Hard links are
// recreated as hard links to the earlier file. Device nodes and fifos are
// skipped with a warning. Permission bits are kept without setuid, setgid
// and sticky; mtimes are kept.
func Extract(ctx context.Context, r io.Reader, dest string, opts ExtractOptions) (*ExtractResult, error) {
	dest, err := filepath.Abs(dest)
	if err != nil {
		return nil, fmt.Errorf("extract destination %q: %w", dest, err)
	}
	replace, err := checkDestDir(dest, opts.Force)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("extract to %s: create parent directory: %w", dest, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".hearth-tmp-")
	if err != nil {
		return nil, wrapWriteErr(dest, fmt.Errorf("create temporary directory: %w", err))
	}
	done := false
	defer func() {
		if !done {
			removeTree(tmp)
		}
	}()
	x := &extractor{root: tmp, made: map[string]bool{"": true}, dirs: map[string]time.Time{}, modes: map[string]uint32{}}
	warn, err := Walk(ctx, r, opts, x.entry)
	if err != nil {
		return nil, wrapWriteErr(dest, err)
	}
	if err := x.finishDirs(); err != nil {
		return nil, wrapWriteErr(dest, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, wrapWriteErr(dest, err)
	}
	if err := install(tmp, dest, replace); err != nil {
		return nil, err
	}
	done = true
	x.res.Warnings = warn
	return &x.res, nil
}

// checkDestDir validates an extraction destination. replace reports an
// existing non-empty directory that Force allows replacing.
func checkDestDir(dest string, force bool) (replace bool, err error) {
	fi, err := os.Lstat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("extract destination %s: %w", dest, err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("destination %s exists and is not a directory: %w (choose a new directory path)", dest, errdefs.ErrAlreadyExists)
	}
	d, err := os.Open(dest)
	if err != nil {
		return false, fmt.Errorf("extract destination %s: %w", dest, err)
	}
	names, _ := d.Readdirnames(1)
	d.Close()
	if len(names) == 0 {
		return false, nil
	}
	if !force {
		return false, fmt.Errorf("destination %s is not empty: %w (choose an empty or new directory, or pass --force to replace it)", dest, errdefs.ErrAlreadyExists)
	}
	return true, nil
}

// install moves the finished tree tmp to dest. With replace, the old dest
// is swapped out atomically where the kernel allows (else renamed aside
// first) and removed afterwards.
func install(tmp, dest string, replace bool) error {
	if !replace {
		if err := rename(tmp, dest); err != nil {
			return fmt.Errorf("extract to %s: move the extracted tree into place: %w (nothing was written)", dest, err)
		}
		return nil
	}
	if !testNoExchange && exchange(tmp, dest) == nil {
		removeTree(tmp) // now holds the old tree
		return nil
	}
	aside, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".hearth-old-")
	if err != nil {
		return fmt.Errorf("extract to %s: %w (nothing was written)", dest, err)
	}
	if err := rename(dest, aside); err != nil {
		os.Remove(aside)
		return fmt.Errorf("extract to %s: move the old tree aside: %w (nothing was written)", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		if rerr := os.Rename(aside, dest); rerr != nil {
			return fmt.Errorf("extract to %s: %w; the old tree could not be put back and is at %s", dest, err, aside)
		}
		return fmt.Errorf("extract to %s: move the extracted tree into place: %w (nothing was written)", dest, err)
	}
	removeTree(aside)
	return nil
}

// rename is rename(2): unlike os.Rename it replaces an empty directory.
func rename(from, to string) error {
	if err := syscall.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// wrapWriteErr adds the destination, and a clear message for a full disk.
func wrapWriteErr(dest string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("extract to %s: the host disk is full (%w): %w; nothing was written to %s (free space and retry)",
			dest, err, errdefs.ErrResourceExhausted, dest)
	}
	return fmt.Errorf("extract to %s: %w (nothing was written)", dest, err)
}

// removeTree removes a tree we created, making directories writable first
// so archives with read-only directories can be cleaned up.
func removeTree(root string) {
	if os.RemoveAll(root) == nil {
		return
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	os.RemoveAll(root)
}

// extractor writes validated entries below root (a directory it owns).
type extractor struct {
	root  string
	made  map[string]bool      // directories created, by entry name
	dirs  map[string]time.Time // directory mtimes to apply at the end
	modes map[string]uint32    // directory modes to apply at the end
	res   ExtractResult
}

func (x *extractor) path(name string) string {
	return filepath.Join(x.root, filepath.FromSlash(name))
}

// mkdir creates name and any missing parents, each with os.Mkdir: the
// validator has already guaranteed that none of them is a symlink.
func (x *extractor) mkdir(name string) error {
	if x.made[name] {
		return nil
	}
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		if err := x.mkdir(name[:i]); err != nil {
			return err
		}
	}
	if err := os.Mkdir(x.path(name), 0o700); err != nil {
		return err
	}
	x.made[name] = true
	x.modes[name] = 0o755
	x.res.Dirs++
	return nil
}

func (x *extractor) entry(e *Entry, content io.Reader) error {
	if i := strings.LastIndexByte(e.Name, '/'); i >= 0 {
		if err := x.mkdir(e.Name[:i]); err != nil {
			return err
		}
	}
	p := x.path(e.Name)
	switch e.Type {
	case TypeDir:
		if err := x.mkdir(e.Name); err != nil {
			return err
		}
		x.modes[e.Name] = e.Mode & 0o777
		x.dirs[e.Name] = e.ModTime
		return nil
	case TypeSymlink:
		if err := os.Symlink(e.Linkname, p); err != nil {
			return err
		}
		x.res.Symlinks++
		return x.setTime(p, e.ModTime)
	case TypeHardlink:
		if err := os.Link(x.path(e.Linkname), p); err != nil {
			return err
		}
		x.res.Files++
		return nil
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	var w io.Writer = f
	if testWrapWriter != nil {
		w = testWrapWriter(f)
	}
	n, err := io.Copy(w, content)
	if err == nil && n != e.Size {
		err = fmt.Errorf("archive entry %q: stream ended after %d of %d bytes: %w", e.Name, n, e.Size, errdefs.ErrInvalidArgument)
	}
	if err == nil {
		err = f.Chmod(fs.FileMode(e.Mode & 0o777))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	x.res.Files++
	x.res.Bytes += n
	return x.setTime(p, e.ModTime)
}

func (x *extractor) setTime(p string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	return lchtimes(p, t)
}

// finishDirs applies directory modes and mtimes, deepest first, so that
// writing into a directory does not disturb a time already set.
func (x *extractor) finishDirs() error {
	names := make([]string, 0, len(x.modes))
	for n := range x.modes {
		if n != "" {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		p := x.path(n)
		if err := os.Chmod(p, fs.FileMode(x.modes[n])); err != nil {
			return err
		}
		if err := x.setTime(p, x.dirs[n]); err != nil {
			return err
		}
	}
	return nil
}
