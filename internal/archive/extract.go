package archive

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
// 0700) survives only if the process is killed; the next extraction into
// the same directory removes it (see SweepStaging), and it is safe to
// delete.
//
// Every file is created with O_EXCL|O_NOFOLLOW in a directory Extract made
// itself, so nothing is ever written through a symlink. Hard links are
// recreated as hard links to the earlier file. Device nodes and fifos are
// skipped with a warning. Permission bits are kept without setuid, setgid,
// sticky and world-write unless opts.PreserveMode; mtimes are kept. Memory
// is bounded by the entry limit (opts.MaxEntries): a few words for each
// directory, nothing for other entries.
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
	SweepStaging(dest)
	tmp, err := os.MkdirTemp(parent, StagingPattern(dest))
	if err != nil {
		return nil, wrapWriteErr(dest, fmt.Errorf("create temporary directory: %w", err))
	}
	done := false
	defer func() {
		if !done {
			removeTree(tmp)
		}
	}()
	x := newExtractor(tmp, opts.PreserveMode)
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
		return false, fmt.Errorf("destination %s is not empty: %w (choose an empty or new directory, or replace it with force)", dest, errdefs.ErrAlreadyExists)
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
// Directories are remembered by a keyed hash of their name, like the
// validator's names, so memory does not grow with name lengths.
type extractor struct {
	root     string
	preserve bool
	seed     maphash.Seed
	made     map[uint64]bool    // directories created
	dirs     map[uint64]dirMeta // explicit directories: mode and mtime to apply at the end
	res      ExtractResult
}

type dirMeta struct {
	mode  uint32
	mtime int64 // Unix nanoseconds; 0 for none
}

func newExtractor(root string, preserve bool) *extractor {
	x := &extractor{root: root, preserve: preserve, seed: maphash.MakeSeed(), made: map[uint64]bool{}, dirs: map[uint64]dirMeta{}}
	x.made[x.key("")] = true
	return x
}

func (x *extractor) key(name string) uint64 { return maphash.String(x.seed, name) }

func (x *extractor) path(name string) string {
	return filepath.Join(x.root, filepath.FromSlash(name))
}

// mkdir creates name and any missing parents, each with os.Mkdir: the
// validator has already guaranteed that none of them is a symlink.
func (x *extractor) mkdir(name string) error {
	k := x.key(name)
	if x.made[k] {
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
	x.made[k] = true
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
		dm := dirMeta{mode: hostMode(e.Mode, x.preserve)}
		if !e.ModTime.IsZero() {
			dm.mtime = e.ModTime.UnixNano()
		}
		x.dirs[x.key(e.Name)] = dm
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
		// The raw bits: os.File.Chmod would take setuid and setgid from
		// fs.FileMode flags, not from 0o4000 and 0o2000.
		err = syscall.Fchmod(int(f.Fd()), hostMode(e.Mode, x.preserve))
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

// finishDirs applies directory modes and mtimes after everything was
// written, walking the tree it built depth first so that writing into a
// directory does not disturb a time already set. Directories without an
// entry of their own get 0755 and keep the time they were made.
func (x *extractor) finishDirs() error {
	return x.finishDir("")
}

func (x *extractor) finishDir(name string) error {
	p := x.path(name)
	subdirs, err := listSubdirs(p)
	if err != nil {
		return err
	}
	for _, c := range subdirs {
		child := c
		if name != "" {
			child = name + "/" + c
		}
		if err := x.finishDir(child); err != nil {
			return err
		}
	}
	if name == "" {
		return nil
	}
	dm, ok := x.dirs[x.key(name)]
	if !ok {
		dm = dirMeta{mode: 0o755}
	}
	if err := syscall.Chmod(p, dm.mode); err != nil {
		return &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	if dm.mtime != 0 {
		return lchtimes(p, time.Unix(0, dm.mtime))
	}
	return nil
}

// listSubdirs returns the names of the directories in dir (not symlinks to
// them), reading it in batches so a directory of many files costs little.
func listSubdirs(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	for {
		ents, err := f.ReadDir(1024)
		for _, d := range ents {
			if d.Type()&fs.ModeType == fs.ModeDir {
				out = append(out, d.Name())
			}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
