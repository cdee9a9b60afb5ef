// Package image builds, imports and stores hearth guest images.
//
// An image is an uncompressed ELF kernel (vmlinux) and an ext4 root
// filesystem without a journal, shared read-only by every VM booted from it.
// The guest agent is not part of an image: it is handed to the guest in an
// initramfs at boot, so images never depend on the agent's version.
//
// Built images come from recipes (only "debian-12" today): the kernel is
// compiled from Debian's linux-source package with the config fragment
// kernel.config, and the root filesystem is made by debootstrap and
// mkfs.ext4 -d. Both are cached under $HEARTH_CACHE (default
// $HEARTH_HOME/cache) keyed by everything that goes into them, so an
// unchanged rebuild takes seconds. The image itself lives in
// $HEARTH_HOME/images/<name>/ as image.json plus hard links to the cached
// files.
package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/home"
)

// DefaultImage is the image workspaces boot unless told otherwise.
const DefaultImage = "debian-12"

// Image sources.
const (
	SourceBuilt    = "built"
	SourceImported = "imported"
)

// File names inside an image directory.
const (
	metaFile   = "image.json"
	kernelFile = "vmlinux"
	rootfsFile = "rootfs.ext4"
)

// Image is a stored guest image. Kernel and RootFS are absolute paths.
type Image struct {
	Name          string    `json:"name"`
	Source        string    `json:"source"`
	Recipe        string    `json:"recipe,omitempty"`
	Kernel        string    `json:"kernel"`
	RootFS        string    `json:"rootfs"`
	KernelVersion string    `json:"kernel_version"`
	CreatedAt     time.Time `json:"created_at"`
	KernelSize    int64     `json:"kernel_size"`
	RootFSSize    int64     `json:"rootfs_size"`
	KernelKey     string    `json:"kernel_key,omitempty"`
	RootFSKey     string    `json:"rootfs_key,omitempty"`
	KernelSHA256  string    `json:"kernel_sha256"`
	RootFSSHA256  string    `json:"rootfs_sha256"`
}

// Store is the image store of one state directory.
type Store struct {
	// Root is the state directory ($HEARTH_HOME).
	Root string
}

// NewStore returns the store of the state directory root.
func NewStore(root string) *Store { return &Store{Root: root} }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateName checks an image name.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("image name %q: use 1-63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit: %w",
			name, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (s *Store) dir() string { return home.Images(s.Root) }

// Dir returns the directory of the named image.
func (s *Store) Dir(name string) string { return filepath.Join(s.dir(), name) }

func notFound(name string) error {
	return fmt.Errorf("image %q not found: build it with `hearth image build %s` or import one with `hearth image import`: %w",
		name, DefaultImage, errdefs.ErrNotFound)
}

// Get returns the named image. It fails with errdefs.ErrNotFound when the
// image does not exist and with errdefs.ErrFailedPrecondition when its files
// are missing.
func (s *Store) Get(name string) (*Image, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	return s.load(name)
}

func (s *Store) load(name string) (*Image, error) {
	dir := s.Dir(name)
	var img Image
	if err := readJSON(filepath.Join(dir, metaFile), &img); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, notFound(name)
		}
		return nil, fmt.Errorf("image %q: %w", name, err)
	}
	img.Name = name
	img.Kernel = filepath.Join(dir, kernelFile)
	img.RootFS = filepath.Join(dir, rootfsFile)
	for _, p := range []string{img.Kernel, img.RootFS} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("image %q is incomplete (%v): remove it with `hearth image rm %s` and build or import it again: %w",
				name, err, name, errdefs.ErrFailedPrecondition)
		}
	}
	return &img, nil
}

// List returns every complete image, sorted by name. Incomplete image
// directories are skipped.
func (s *Store) List() ([]Image, error) {
	entries, err := os.ReadDir(s.dir())
	if errors.Is(err, fs.ErrNotExist) {
		return []Image{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	imgs := []Image{}
	for _, e := range entries {
		if !e.IsDir() || !nameRE.MatchString(e.Name()) {
			continue
		}
		img, err := s.load(e.Name())
		if err != nil {
			continue
		}
		imgs = append(imgs, *img)
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	return imgs, nil
}

// Remove deletes the named image. Cached build artefacts stay in the cache
// (the next build of the same recipe reuses them). Workspaces already
// created from the image are not affected if they hold their own links.
func (s *Store) Remove(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	dir := s.Dir(name)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return notFound(name)
	}
	lock, err := lockFile(context.Background(), s.lockPath(name), nil)
	if err != nil {
		return err
	}
	defer lock.unlock()
	trash := filepath.Join(s.dir(), fmt.Sprintf(".rm-%s-%d", name, time.Now().UnixNano()))
	if err := os.Rename(dir, trash); err != nil {
		return fmt.Errorf("remove image %q: %w", name, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove image %q: %w", name, err)
	}
	return nil
}

// install puts the image's files in place: a temp dir next to the image
// dir with links to kernel and rootfs plus image.json, renamed over any
// previous version.
func (s *Store) install(img *Image, kernel, rootfs string, link func(src, dst string) error) (*Image, error) {
	if err := os.MkdirAll(s.dir(), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(s.dir(), ".tmp-"+img.Name+"-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := link(kernel, filepath.Join(tmp, kernelFile)); err != nil {
		return nil, fmt.Errorf("image %q: kernel: %w", img.Name, err)
	}
	if err := link(rootfs, filepath.Join(tmp, rootfsFile)); err != nil {
		return nil, fmt.Errorf("image %q: rootfs: %w", img.Name, err)
	}
	meta := *img
	meta.Kernel, meta.RootFS = kernelFile, rootfsFile
	if err := writeJSON(filepath.Join(tmp, metaFile), meta); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	if err := replaceDir(tmp, s.Dir(img.Name)); err != nil {
		return nil, fmt.Errorf("image %q: install: %w", img.Name, err)
	}
	ok = true
	return s.load(img.Name)
}

func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// lockPath is the lock file serialising changes to the named image.
func (s *Store) lockPath(name string) string { return filepath.Join(s.dir(), "."+name+".lock") }
