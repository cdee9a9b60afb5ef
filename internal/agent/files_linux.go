package agent

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/ignore"
)

// openNoFollow makes an open fail on a symlink instead of following it.
const openNoFollow = syscall.O_NOFOLLOW

func statT(fi os.FileInfo) *syscall.Stat_t {
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return &syscall.Stat_t{}
	}
	return st
}

// permBits are the permission bits including setuid, setgid and sticky.
func permBits(fi os.FileInfo) uint32 { return statT(fi).Mode & 0o7777 }

func fileOwner(fi os.FileInfo) (uid, gid int) {
	st := statT(fi)
	return int(st.Uid), int(st.Gid)
}

func fileDev(fi os.FileInfo) uint64 { return statT(fi).Dev }
func fileIno(fi os.FileInfo) uint64 { return statT(fi).Ino }

// extractor writes tar entries under a root directory without ever
// following a symlink: every directory is opened relative to its parent
// with O_NOFOLLOW, and files are created beside their final name and
// renamed into place.
type extractor struct {
	root   string
	rootFd int
	res    *guestproto.FilesResult
	warn   *warnings
	kinds  map[string]byte // rel path -> last tar type written there
	dirs   []dirMeta
	excl   *ignore.Matcher // entries deleteOthers must keep
}

type dirMeta struct {
	rel   string
	mode  uint32
	mtime time.Time
}

func newExtractor(root string) (*extractor, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errorf(guestproto.CodeInvalid, "destination %s is not a directory: %v", root, err)
	}
	res := &guestproto.FilesResult{}
	return &extractor{root: root, rootFd: fd, res: res, warn: &warnings{list: &res.Warnings}, kinds: map[string]byte{}}, nil
}

func (x *extractor) close() { unix.Close(x.rootFd) }

func rejectf(name, format string, args ...any) error {
	return errorf(guestproto.CodeInvalid, "tar entry %q rejected: %s; nothing outside the destination was written", name, fmt.Sprintf(format, args...))
}

// openParent opens the directory holding rel, creating missing
// directories, and refuses symlinks and non-directories on the way.
func (x *extractor) openParent(rel string, create bool) (int, string, error) {
	dir, base := path.Split(rel)
	fd, err := unix.Dup(x.rootFd)
	if err != nil {
		return -1, "", fmt.Errorf("dup: %w", err)
	}
	walked := ""
	for _, c := range strings.Split(strings.TrimSuffix(dir, "/"), "/") {
		if c == "" {
			continue
		}
		walked = path.Join(walked, c)
		var st unix.Stat_t
		err := unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) && create {
			err = unix.Mkdirat(fd, c, 0o755)
			if err == nil || errors.Is(err, unix.EEXIST) {
				err = unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW)
			}
		}
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			err = rejectf(rel, "%s is a symlink and nothing is written through symlinks", walked)
		} else if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			err = rejectf(rel, "%s is not a directory", walked)
		}
		var nfd int
		if err == nil {
			nfd, err = unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				err = rejectf(rel, "%s changed into a symlink during extraction", walked)
			}
		}
		unix.Close(fd)
		if err != nil {
			var pe *protoError
			if errors.As(err, &pe) {
				return -1, "", err
			}
			return -1, "", fmt.Errorf("open %s/%s: %w", x.root, walked, err)
		}
		fd = nfd
	}
	return fd, base, nil
}

func tmpName() string {
	var b [6]byte
	rand.Read(b[:])
	return ".hearth-tmp-" + hex.EncodeToString(b[:])
}

// entry extracts one tar entry.
func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanRel(strings.TrimSuffix(hdr.Name, "/"))
	if err != nil {
		return rejectf(hdr.Name, "%v", err)
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		x.warn.add("skipped %s: device and fifo entries are not extracted", hdr.Name)
		return nil
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	default:
		x.warn.add("skipped %s: unsupported tar entry type %q", hdr.Name, hdr.Typeflag)
		return nil
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return rejectf(hdr.Name, "it names the destination itself")
		}
		return nil
	}
	pfd, base, err := x.openParent(rel, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	mode := uint32(hdr.Mode) & 0o7777
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	kind := hdr.Typeflag
	switch hdr.Typeflag {
	case tar.TypeDir:
		var st unix.Stat_t
		err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			err = unix.Unlinkat(pfd, base, 0)
			if err == nil {
				err = unix.ENOENT
			}
		}
		if errors.Is(err, unix.ENOENT) {
			err = unix.Mkdirat(pfd, base, 0o700)
		}
		if err != nil {
			return fmt.Errorf("create directory %s: %w", rel, err)
		}
		x.dirs = append(x.dirs, dirMeta{rel: rel, mode: mode, mtime: hdr.ModTime})
	case tar.TypeReg: //nolint:staticcheck
		kind = tar.TypeReg
		tmp := tmpName()
		fd, err := unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create %s: %w", rel, err)
		}
		f := os.NewFile(uintptr(fd), tmp)
		n, err := io.Copy(f, r)
		if err == nil {
			err = unix.Fchmod(fd, mode)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = unix.UtimesNanoAt(pfd, tmp, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err == nil {
			err = x.replace(pfd, tmp, base)
		}
		if err != nil {
			unix.Unlinkat(pfd, tmp, 0)
			return fmt.Errorf("write %s: %w", rel, err)
		}
		x.res.Bytes += n
	case tar.TypeSymlink:
		tmp := tmpName()
		err := unix.Symlinkat(hdr.Linkname, pfd, tmp)
		if err == nil {
			err = unix.UtimesNanoAt(pfd, tmp, ts, unix.AT_SYMLINK_NOFOLLOW)
			if err == nil {
				err = x.replace(pfd, tmp, base)
			}
			if err != nil {
				unix.Unlinkat(pfd, tmp, 0)
			}
		}
		if err != nil {
			return fmt.Errorf("create symlink %s: %w", rel, err)
		}
	case tar.TypeLink:
		target, err := cleanRel(hdr.Linkname)
		if err != nil || target == "" || x.kinds[target] != tar.TypeReg {
			return rejectf(hdr.Name, "hard link to %q: a hard link must point to a regular file extracted earlier from the same archive", hdr.Linkname)
		}
		kind = tar.TypeReg
		tfd, tbase, err := x.openParent(target, false)
		if err != nil {
			return err
		}
		defer unix.Close(tfd)
		tmp := tmpName()
		err = unix.Linkat(tfd, tbase, pfd, tmp, 0)
		if err == nil {
			if err = x.replace(pfd, tmp, base); err != nil {
				unix.Unlinkat(pfd, tmp, 0)
			}
		}
		if err != nil {
			return fmt.Errorf("create hard link %s: %w", rel, err)
		}
	}
	if old, ok := x.kinds[rel]; ok && old == tar.TypeDir && kind != tar.TypeDir {
		x.forgetUnder(rel)
	}
	x.kinds[rel] = kind
	x.res.Entries++
	return nil
}

// forgetUnder drops the entries recorded beneath a directory that was
// replaced by a non-directory.
func (x *extractor) forgetUnder(rel string) {
	prefix := rel + "/"
	for k := range x.kinds {
		if strings.HasPrefix(k, prefix) {
			delete(x.kinds, k)
		}
	}
}

// replace renames tmp over base in the directory pfd, first removing a
// directory that stands there.
func (x *extractor) replace(pfd int, tmp, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if _, err := removeAllAt(pfd, base); err != nil {
			return err
		}
	}
	return unix.Renameat(pfd, tmp, pfd, base)
}

// removeAllAt removes name in dirfd and everything beneath it without
// following symlinks, and returns how many entries it removed.
func removeAllAt(dirfd int, name string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, nil
		}
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 1, ignoreENOENT(unix.Unlinkat(dirfd, name, 0))
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range names {
		m, err := removeAllAt(fd, c)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n + 1, ignoreENOENT(unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR))
}

// removeUnexcluded removes name in dirfd and what is beneath it, except
// entries x.excl matches and the directories that hold them. kept reports
// that something was left.
func (x *extractor) removeUnexcluded(dirfd int, name, rel string) (n int64, kept bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, false, ignoreENOENT(err)
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if x.excl.ExcludedSelf(rel, isDir) {
		return 0, true, nil
	}
	if !isDir {
		return 1, false, ignoreENOENT(unix.Unlinkat(dirfd, name, 0))
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false, err
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, false, err
	}
	for _, c := range names {
		m, k, err := x.removeUnexcluded(fd, c, rel+"/"+c)
		n += m
		kept = kept || k
		if err != nil {
			return n, kept, err
		}
	}
	if kept {
		return n, true, nil
	}
	return n + 1, false, ignoreENOENT(unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR))
}

func ignoreENOENT(err error) error {
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// deleteOthers removes entries under the root that are neither in the tar
// nor in keep, nor ancestors of either, nor matched by excl (nor
// directories holding a match). It does not enter other file systems.
func (x *extractor) deleteOthers(keep []string, excl *ignore.Matcher) error {
	x.excl = excl
	kept := make(map[string]bool, len(x.kinds)+len(keep))
	mark := func(rel string) {
		for rel != "" && rel != "." && !kept[rel] {
			kept[rel] = true
			rel = path.Dir(rel)
		}
	}
	for rel := range x.kinds {
		mark(rel)
	}
	for _, rel := range keep {
		mark(rel)
	}
	var rootSt unix.Stat_t
	if err := unix.Fstat(x.rootFd, &rootSt); err != nil {
		return fmt.Errorf("stat %s: %w", x.root, err)
	}
	fd, err := unix.Dup(x.rootFd)
	if err != nil {
		return err
	}
	return x.deleteIn(fd, "", rootSt.Dev, kept)
}

func (x *extractor) deleteIn(fd int, prefix string, dev uint64, kept map[string]bool) error {
	d := os.NewFile(uintptr(fd), prefix)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list %s/%s: %w", x.root, prefix, err)
	}
	slices.Sort(names)
	for _, name := range names {
		rel := path.Join(prefix, name)
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // vanished
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if isDir && st.Dev != dev {
			x.warn.add("kept %s: another file system is mounted there", rel)
			continue
		}
		if x.excl.ExcludedSelf(rel, isDir) {
			continue // excluded: not the source's to delete
		}
		if !kept[rel] {
			var n int64
			var err error
			if x.excl == nil {
				n, err = removeAllAt(fd, name)
			} else {
				n, _, err = x.removeUnexcluded(fd, name, rel)
			}
			x.res.Deleted += n
			if err != nil {
				return fmt.Errorf("delete %s: %w", rel, err)
			}
			continue
		}
		if isDir {
			cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			if err := x.deleteIn(cfd, rel, dev, kept); err != nil {
				return err
			}
		}
	}
	return nil
}

// finishDirs sets the modes and mtimes of extracted directories, deepest
// first, after everything inside them has been written.
func (x *extractor) finishDirs() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		dm := x.dirs[i]
		if x.kinds[dm.rel] != tar.TypeDir {
			continue // replaced later in the archive
		}
		pfd, base, err := x.openParent(dm.rel, false)
		if err != nil {
			x.warn.add("cannot set mode of %s: %v", dm.rel, err)
			continue
		}
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Fchmod(fd, dm.mode)
			unix.Close(fd)
		}
		if err == nil {
			ts := unix.NsecToTimespec(dm.mtime.UnixNano())
			err = unix.UtimesNanoAt(pfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
		}
		unix.Close(pfd)
		if err != nil {
			x.warn.add("cannot set mode and time of %s: %v", dm.rel, err)
		}
	}
	return nil
}
