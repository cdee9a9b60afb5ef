// Package diskfs reads ext4 disk images from the host without mounting
// them and without privileges, and merges them the way a workspace's guest
// sees its root: the image read-only below, the overlay's upper directory
// on the workspace disk above (whiteouts and opaque directories honoured),
// /workspace and attached data disks mounted over it.
//
// It drives debugfs from e2fsprogs (hearth's existing dependency) in
// catastrophic read-only mode (-c): the image is opened read-only, its
// bitmaps are not read, and its journal is not replayed. An image whose
// journal still needs recovery (its VM was killed, not stopped) may hence
// miss the last writes; Image.NeedsRecovery says so.
//
// The merge follows overlayfs as hearth's guest kernel builds it: without
// redirect_dir, index or metacopy (internal/image/kernel.config leaves them
// off), so a directory renamed in the guest is a copy in the upper layer
// and a copied-up file holds its whole data. A kernel that turns those on
// needs this package to follow trusted.overlay.redirect and metacopy.
//
// Inodes are addressed by number (debugfs's <N> syntax) once a path has
// been resolved, so names are never quoted into debugfs commands.
package diskfs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// RootIno is the inode of an ext4 file system's root directory.
const RootIno = 2

// Image is an ext4 image file read through debugfs.
type Image struct {
	Path string
	// needsRecovery is set by Open when the journal was not replayed.
	needsRecovery bool
	// inodes reads inode records natively (nil: through debugfs).
	inodes *inodeTable
}

// Dirent is one directory entry as debugfs lists it.
type Dirent struct {
	Name string
	Ino  uint64
	// Mode is the full st_mode (type and permission bits).
	Mode uint32
	UID  int
	GID  int
	Size int64
}

// Inode is what Stat returns about one inode.
type Inode struct {
	Ino     uint64
	Mode    uint32
	UID     int
	GID     int
	Size    int64
	Mtime   time.Time
	RdevMaj uint32
	RdevMin uint32
	// FastLink is the target of a symlink stored in the inode itself.
	FastLink    string
	HasFastLink bool
	// Xattrs holds the extended attributes with short values.
	Xattrs map[string]string
}

// File type bits of st_mode.
const (
	ModeType = 0o170000
	ModeDir  = 0o040000
	ModeReg  = 0o100000
	ModeLnk  = 0o120000
	ModeChr  = 0o020000
)

// Open checks that path is an ext4 (or ext2/3) image and returns it. A
// file that is not one is invalid_argument, saying so.
func Open(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("disk image %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("open disk image: %w", err)
	}
	defer f.Close()
	var sb [1024]byte
	if _, err := f.ReadAt(sb[:], 1024); err != nil {
		return nil, fmt.Errorf("%s is not an ext4 file system (too short for a superblock): %w", path, errdefs.ErrInvalidArgument)
	}
	if binary.LittleEndian.Uint16(sb[56:58]) != 0xEF53 {
		return nil, fmt.Errorf("%s is not an ext4 file system (no ext2/3/4 superblock magic): %w", path, errdefs.ErrInvalidArgument)
	}
	incompat := binary.LittleEndian.Uint32(sb[96:100])
	im := &Image{Path: path, needsRecovery: incompat&0x4 != 0}
	if t, err := openInodeTable(path); err == nil {
		im.inodes = t
	}
	return im, nil
}

// NeedsRecovery reports whether the image's journal holds writes not yet
// applied (its VM did not shut down cleanly): reads may miss them.
func (im *Image) NeedsRecovery() bool { return im.needsRecovery }

// debugfs runs one or more debugfs commands; stdout goes to out. Anything
// debugfs prints on stderr beyond its banner is an error: debugfs exits 0
// even when a command fails.
func (im *Image) debugfs(ctx context.Context, cmds []string, out io.Writer) error {
	args := []string{"-c"}
	var stdin io.Reader
	if len(cmds) == 1 {
		args = append(args, "-R", cmds[0])
	} else {
		args = append(args, "-f", "-")
		stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	}
	args = append(args, im.Path)
	cmd := exec.CommandContext(ctx, "debugfs", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBUGFS_PAGER=__none__", "PAGER=__none__")
	cmd.Stdin = stdin
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("debugfs not found: install e2fsprogs: %w", errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("debugfs %s: %v: %s", im.Path, err, strings.TrimSpace(stderr.String()))
	}
	if msg := debugfsErrors(stderr.String()); msg != "" {
		return im.classify(msg)
	}
	return nil
}

// debugfsErrors drops debugfs's banner and notices from its stderr.
func debugfsErrors(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "", strings.HasPrefix(l, "debugfs ") && strings.Contains(l, "("),
			strings.HasPrefix(l, "catastrophic mode"), strings.HasPrefix(l, "Using EXT2FS"):
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "; ")
}

// classify turns debugfs's complaint into an error with a kind.
func (im *Image) classify(msg string) error {
	switch {
	case strings.Contains(msg, "File not found"):
		return fmt.Errorf("%s: %w", msg, errdefs.ErrNotFound)
	}
	// Our commands are well formed: any other complaint is about the image.
	return fmt.Errorf("disk image %s is corrupted or not a readable ext4 file system (debugfs: %s): check it with `hearth disk check`, or e2fsck: %w", im.Path, msg, errdefs.ErrFailedPrecondition)
}

// ReadDir lists the directory inode ino (without "." and "..").
func (im *Image) ReadDir(ctx context.Context, ino uint64) ([]Dirent, error) {
	var out bytes.Buffer
	if err := im.debugfs(ctx, []string{fmt.Sprintf("ls -p <%d>", ino)}, &out); err != nil {
		return nil, err
	}
	return parseLsP(out.Bytes())
}

// parseLsP parses `ls -p` output: "/INO/MODE/UID/GID/NAME/SIZE/" per
// entry, one a line. A name holds no '/', but may hold a newline, so the
// fields are read by slashes, not by lines.
func parseLsP(b []byte) ([]Dirent, error) {
	var out []Dirent
	for len(b) > 0 {
		if b[0] == '\n' {
			b = b[1:]
			continue
		}
		if b[0] != '/' {
			return nil, fmt.Errorf("unexpected debugfs listing near %q: %w", trunc(b), errdefs.ErrInternal)
		}
		b = b[1:]
		var f [6]string
		for i := range f {
			j := bytes.IndexByte(b, '/')
			if j < 0 {
				return nil, fmt.Errorf("truncated debugfs listing: %w", errdefs.ErrInternal)
			}
			f[i] = string(b[:j])
			b = b[j+1:]
		}
		if f[4] == "." || f[4] == ".." || f[0] == "0" {
			continue // an unused slot (a directory's empty blocks)
		}
		ino, err1 := strconv.ParseUint(f[0], 10, 64)
		mode, err2 := strconv.ParseUint(f[1], 8, 32)
		uid, _ := strconv.Atoi(f[2])
		gid, _ := strconv.Atoi(f[3])
		size, _ := strconv.ParseInt(f[5], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("unexpected debugfs listing entry %q: %w", f[4], errdefs.ErrInternal)
		}
		out = append(out, Dirent{Name: f[4], Ino: ino, Mode: uint32(mode), UID: uid, GID: gid, Size: size})
	}
	return out, nil
}

func trunc(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// Stat returns the inodes inos.
func (im *Image) Stat(ctx context.Context, inos []uint64) (map[uint64]*Inode, error) {
	if im.inodes == nil {
		return im.statDebugfs(ctx, inos)
	}
	st, err := im.inodes.stat(inos)
	if err != nil {
		return nil, fmt.Errorf("disk image %s is corrupted or not a readable ext4 file system (%v): check it with `hearth disk check`, or e2fsck: %w", im.Path, err, errdefs.ErrFailedPrecondition)
	}
	return st, nil
}

// statDebugfs returns the inodes inos, in one debugfs run.
func (im *Image) statDebugfs(ctx context.Context, inos []uint64) (map[uint64]*Inode, error) {
	out := map[uint64]*Inode{}
	if len(inos) == 0 {
		return out, nil
	}
	cmds := make([]string, len(inos))
	for i, n := range inos {
		cmds[i] = fmt.Sprintf("stat <%d>", n)
	}
	var buf bytes.Buffer
	if err := im.debugfs(ctx, cmds, &buf); err != nil {
		return nil, err
	}
	var cur *Inode
	inXattr := false
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "debugfs: ") {
			cur, inXattr = nil, false
			continue
		}
		if strings.HasPrefix(l, "Inode: ") {
			f := strings.Fields(l)
			n, _ := strconv.ParseUint(f[1], 10, 64)
			cur = &Inode{Ino: n, Xattrs: map[string]string{}}
			out[n] = cur
			if i := strings.Index(l, "Mode:"); i >= 0 {
				m, _ := strconv.ParseUint(strings.Fields(l[i+5:])[0], 8, 32)
				cur.Mode = uint32(m)
			}
			cur.Mode |= typeBits(l)
			continue
		}
		if cur == nil {
			continue
		}
		switch {
		case strings.HasPrefix(l, "User:"):
			f := strings.Fields(l)
			for i := 0; i+1 < len(f); i++ {
				switch f[i] {
				case "User:":
					cur.UID, _ = strconv.Atoi(f[i+1])
				case "Group:":
					cur.GID, _ = strconv.Atoi(f[i+1])
				case "Size:":
					cur.Size, _ = strconv.ParseInt(f[i+1], 10, 64)
				}
			}
		case strings.HasPrefix(l, " mtime: 0x"):
			v := strings.Fields(l)[1]
			sec, nsec, _ := strings.Cut(strings.TrimPrefix(v, "0x"), ":")
			s, _ := strconv.ParseInt(sec, 16, 64)
			e, _ := strconv.ParseUint(nsec, 16, 32)
			cur.Mtime = time.Unix(int64(int32(s))+int64(e&3)<<32, int64(e>>2))
		case strings.HasPrefix(l, "Fast link dest: "):
			v := strings.TrimPrefix(l, "Fast link dest: ")
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			} else {
				v = strings.TrimSuffix(strings.TrimPrefix(v, `"`), `"`)
			}
			cur.FastLink, cur.HasFastLink = v, true
		case strings.Contains(l, "Device major/minor number:"):
			_, v, _ := strings.Cut(l, "number: ")
			mm, _, _ := strings.Cut(v, " ")
			a, b, _ := strings.Cut(mm, ":")
			ma, _ := strconv.ParseUint(a, 10, 32)
			mi, _ := strconv.ParseUint(b, 10, 32)
			cur.RdevMaj, cur.RdevMin = uint32(ma), uint32(mi)
		case l == "Extended attributes:":
			inXattr = true
		case inXattr && strings.HasPrefix(l, "  "):
			// `  name (len) = "value"`
			name, rest, ok := strings.Cut(strings.TrimSpace(l), " (")
			if ok {
				_, v, _ := strings.Cut(rest, "= ")
				cur.Xattrs[name] = strings.Trim(v, `"`)
			}
		default:
			inXattr = false
		}
	}
	return out, nil
}

func typeBits(l string) uint32 {
	_, t, _ := strings.Cut(l, "Type: ")
	switch {
	case strings.HasPrefix(t, "regular"):
		return ModeReg
	case strings.HasPrefix(t, "directory"):
		return ModeDir
	case strings.HasPrefix(t, "symlink"):
		return ModeLnk
	case strings.HasPrefix(t, "character"):
		return ModeChr
	case strings.HasPrefix(t, "block"):
		return 0o060000
	case strings.HasPrefix(t, "FIFO"):
		return 0o010000
	case strings.HasPrefix(t, "socket"):
		return 0o140000
	}
	return 0
}

// Cat writes the contents of inode ino to w.
func (im *Image) Cat(ctx context.Context, ino uint64, w io.Writer) error {
	return im.debugfs(ctx, []string{fmt.Sprintf("cat <%d>", ino)}, w)
}

// Readlink returns a symlink's target.
func (im *Image) Readlink(ctx context.Context, ino uint64) (string, error) {
	st, err := im.Stat(ctx, []uint64{ino})
	if err != nil {
		return "", err
	}
	in := st[ino]
	if in == nil {
		return "", fmt.Errorf("inode %d of %s: %w", ino, im.Path, errdefs.ErrNotFound)
	}
	if in.HasFastLink {
		return in.FastLink, nil
	}
	var b bytes.Buffer
	if err := im.Cat(ctx, ino, &b); err != nil {
		return "", err
	}
	return b.String(), nil
}

// UUID returns the file system UUID of an ext4 image (32 hex digits).
func UUID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var sb [1024]byte
	if _, err := f.ReadAt(sb[:], 1024); err != nil || binary.LittleEndian.Uint16(sb[56:58]) != 0xEF53 {
		return "", fmt.Errorf("%s is not an ext4 file system: %w", path, errdefs.ErrInvalidArgument)
	}
	return fmt.Sprintf("%x", sb[104:120]), nil
}
