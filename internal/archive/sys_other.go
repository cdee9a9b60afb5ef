//go:build !linux

package archive

import (
	"errors"
	"os"
	"time"
)

// lchtimes sets the modification time of p; symlinks are left alone.
func lchtimes(p string, mtime time.Time) error {
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	return os.Chtimes(p, mtime, mtime)
}

// exchange is unavailable; callers fall back to two renames.
func exchange(a, b string) error { return errors.New("atomic exchange not supported") }
