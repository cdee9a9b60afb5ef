package netstack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/hearthvm/hearth/internal/tapns"
)

// Check reports whether a guest network can work here: QEMU must have the
// stream netdev (QEMU ≥ 7.2), the stack needs an upstream resolver, and
// Firecracker (or QEMU with HEARTH_NET_LINK=tap) needs a network namespace
// with a TAP device (root, or unprivileged user namespaces).
func Check(ctx context.Context, qemuBinary string) (status, detail, fix string) {
	if qemuBinary == "" {
		qemuBinary = "qemu-system-x86_64"
	}
	out, err := exec.CommandContext(ctx, qemuBinary, "-netdev", "help").CombinedOutput()
	if err != nil {
		return "warn", fmt.Sprintf("%s -netdev help: %v", qemuBinary, err), "install QEMU ≥ 7.2 (Debian 12's qemu-system-x86) for workspaces with a network"
	}
	if !strings.Contains(string(out), "stream") {
		return "warn", "QEMU lacks the stream netdev: workspaces with network mode egress or open cannot boot", "install QEMU ≥ 7.2"
	}
	up := os.Getenv("HEARTH_NET_DNS")
	src := "HEARTH_NET_DNS"
	if up == "" {
		up, src = systemResolver(), "/etc/resolv.conf"
	}
	if up == "" {
		return "warn", "no upstream DNS resolver for the guest network (/etc/resolv.conf names none)", "add a nameserver to /etc/resolv.conf or set HEARTH_NET_DNS=HOST:PORT"
	}
	tap := "a TAP device in a network namespace of the VMM's own"
	if err := tapns.Check(); err != nil {
		return "warn", fmt.Sprintf("guest network available on qemu (stream netdev, upstream DNS %s from %s); not on firecracker: %v", up, src, err), "run hearth as root, or allow unprivileged user namespaces and /dev/net/tun, for networks on firecracker"
	}
	return "ok", fmt.Sprintf("guest network available (user-space stack, upstream DNS %s from %s): qemu through its stream netdev, firecracker through %s", up, src, tap), ""
}
