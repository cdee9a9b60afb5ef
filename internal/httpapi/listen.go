package httpapi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// DefaultSocket is where `hearth serve` listens by default and where
// clients (the Python SDK) look: $XDG_RUNTIME_DIR/hearth/hearth.sock when
// XDG_RUNTIME_DIR is set, else <home>/hearth.sock.
func DefaultSocket(home string) string {
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		return filepath.Join(x, "hearth", "hearth.sock")
	}
	return filepath.Join(home, "hearth.sock")
}

// ListenUnix listens on a Unix socket at path with mode 0600. The parent
// directory is created 0700 if missing (and made 0700 when private is
// set, as for the default locations). A stale socket left by a dead server
// is replaced; a live one is an error.
func ListenUnix(path string, private bool) (net.Listener, error) {
	if len(path) > 100 {
		return nil, fmt.Errorf("socket path %s is %d bytes, longer than Unix sockets allow (about 100): choose a shorter --socket: %w", path, len(path), errdefs.ErrInvalidArgument)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if private {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("socket directory: %w", err)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: remove it or choose another --socket: %w", path, errdefs.ErrAlreadyExists)
		}
		c, err := net.DialTimeout("unix", path, 2*time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("another hearth serve is already listening on %s: use it, stop it, or choose another --socket: %w", path, errdefs.ErrAlreadyExists)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket mode: %w", err)
	}
	return ln, nil
}
