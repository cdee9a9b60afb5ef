package image

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// Import copies a kernel and a root filesystem into the store as the named
// image. The kernel must be an ELF vmlinux; the root filesystem an ext4
// image that e2fsck finds clean (one that needs journal recovery would fail
// to mount read-only in every VM). An existing image of the same name is
// replaced.
func (s *Store) Import(ctx context.Context, name, kernel, rootfs string) (*Image, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if kernel == "" || rootfs == "" {
		return nil, fmt.Errorf("import %q: both a kernel (--kernel) and a root filesystem (--rootfs) are needed: %w", name, errdefs.ErrInvalidArgument)
	}
	for _, p := range []string{kernel, rootfs} {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("import %q: %w: %w", name, err, errdefs.ErrInvalidArgument)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("import %q: %s is not a regular file: %w", name, p, errdefs.ErrInvalidArgument)
		}
	}
	if err := checkELF(kernel); err != nil {
		return nil, fmt.Errorf("import %q: %w: %w", name, err, errdefs.ErrInvalidArgument)
	}
	if err := checkExt4Magic(rootfs); err != nil {
		return nil, fmt.Errorf("import %q: %w: %w", name, err, errdefs.ErrInvalidArgument)
	}
	if err := fsckClean(ctx, rootfs); err != nil {
		return nil, fmt.Errorf("import %q: %w", name, err)
	}

	ksum, ksize, err := fileSHA256(kernel)
	if err != nil {
		return nil, err
	}
	rsum, rsize, err := fileSHA256(rootfs)
	if err != nil {
		return nil, err
	}
	kver, _ := kernelVersion(kernel)
	lock, err := lockFile(ctx, s.lockPath(name), nil)
	if err != nil {
		return nil, err
	}
	defer lock.unlock()
	img := &Image{
		Name: name, Source: SourceImported, KernelVersion: kver, CreatedAt: time.Now().UTC(),
		KernelSize: ksize, RootFSSize: rsize, KernelSHA256: ksum, RootFSSHA256: rsum,
	}
	// Copies, not links: the store must not change when the user's files do.
	return s.install(img, kernel, rootfs, copySparse)
}

// ext4NeedsRecovery reports whether the superblock's needs_recovery
// (journal replay) feature flag is set; `e2fsck -n` skips the replay and
// may still exit 0, but such a filesystem cannot be mounted read-only.
func ext4NeedsRecovery(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var b [4]byte
	if _, err := f.ReadAt(b[:], 1024+0x60); err != nil { // s_feature_incompat
		return false, err
	}
	return binary.LittleEndian.Uint32(b[:])&0x4 != 0, nil // EXT3_FEATURE_INCOMPAT_RECOVER
}

// fsckClean runs `e2fsck -fn` on an ext4 image and explains a failure.
func fsckClean(ctx context.Context, path string) error {
	if dirty, err := ext4NeedsRecovery(path); err != nil {
		return fmt.Errorf("read superblock of %s: %w", path, err)
	} else if dirty {
		return fmt.Errorf("%s needs journal recovery (it was not unmounted cleanly), which a read-only shared root cannot do: run `e2fsck -fy %s`, then drop the journal with `tune2fs -O ^has_journal %s`: %w",
			path, path, path, errdefs.ErrFailedPrecondition)
	}
	cmd := exec.CommandContext(ctx, sbin("e2fsck"), "-fn", path)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("e2fsck: %w (install e2fsprogs)", err)
	}
	text := strings.TrimSpace(string(out))
	if len(text) > 1500 {
		text = text[:1500] + "..."
	}
	fix := fmt.Sprintf("repair it with `e2fsck -fy %s`", path)
	if strings.Contains(text, "recovery") || strings.Contains(text, "journal") {
		fix = fmt.Sprintf("it needs journal recovery, which a read-only shared root cannot do: run `e2fsck -fy %s`, then drop the journal with `tune2fs -O ^has_journal %s`", path, path)
	}
	return fmt.Errorf("%s is not clean (e2fsck -fn exit %d): %s; %s: %w", path, ee.ExitCode(), text, fix, errdefs.ErrFailedPrecondition)
}
