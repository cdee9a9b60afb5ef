package netstack

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Socket names in the supervisor's directory.
const (
	// FrameSocket is where QEMU's `-netdev stream` connects.
	FrameSocket = "net.sock"
	// ControlSocket takes "reload" requests after a policy change.
	ControlSocket = "netctl.sock"
)

// Start builds a stack for the supervisor in dir and listens on
// dir/FrameSocket (for the VMM) and dir/ControlSocket.
func Start(cfg Config, dir string, log *slog.Logger) (*Stack, error) {
	n, err := New(cfg, log)
	if err != nil {
		return nil, err
	}
	frames, err := listenUnix(filepath.Join(dir, FrameSocket))
	if err != nil {
		n.Close()
		return nil, err
	}
	ctl, err := listenUnix(filepath.Join(dir, ControlSocket))
	if err != nil {
		frames.Close()
		n.Close()
		return nil, err
	}
	go func() {
		<-n.ctx.Done()
		frames.Close()
		ctl.Close()
	}()
	go func() {
		for {
			c, err := frames.Accept()
			if err != nil {
				return
			}
			go func() {
				if err := n.ServeFrames(n.ctx, c); err != nil {
					n.log.Warn("guest network link ended", "err", err)
				}
			}()
		}
	}()
	go func() {
		for {
			c, err := ctl.Accept()
			if err != nil {
				return
			}
			go n.serveControl(c)
		}
	}()
	n.frameSock = filepath.Join(dir, FrameSocket)
	return n, nil
}

// FrameSocketPath is the Unix socket the VMM's NIC connects to.
func (n *Stack) FrameSocketPath() string { return n.frameSock }

func listenUnix(path string) (net.Listener, error) {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("guest network: listen on %s: %w", path, err)
	}
	os.Chmod(path, 0o600)
	return ln, nil
}

func (n *Stack) serveControl(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	switch strings.TrimSpace(line) {
	case "reload":
		if err := n.Reload(); err != nil {
			fmt.Fprintf(c, "error: %v\n", err)
			return
		}
		fmt.Fprintf(c, "ok\n")
	default:
		fmt.Fprintf(c, "error: unknown request %q\n", strings.TrimSpace(line))
	}
}

// Reload asks the stack of the supervisor in dir to re-read its policy
// file. It fails if no stack listens there (the VM has no network).
func ReloadIn(ctx context.Context, dir string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", filepath.Join(dir, ControlSocket))
	if err != nil {
		return fmt.Errorf("reach the workspace's network stack: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if _, err := fmt.Fprintf(c, "reload\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("network stack reload: %w", err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return fmt.Errorf("network stack reload: %s", strings.TrimPrefix(line, "error: "))
	}
	return nil
}
