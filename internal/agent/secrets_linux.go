package agent

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

func mountSecrets(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, secretsMountOptions)
}

func unmountSecrets(dir string) error {
	if err := unix.Unmount(dir, 0); err != nil {
		return err
	}
	os.Remove(dir)
	return nil
}

// secretsMounted reports whether dir is a mount point (its device differs
// from its parent's).
func secretsMounted(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
