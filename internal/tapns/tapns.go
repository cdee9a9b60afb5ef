// Package tapns starts a VMM inside its own network namespace that holds one
// TAP device, and hands the supervisor a packet socket on that TAP.
//
// Firecracker's only network backend is a TAP device. hearth gives it one
// that leads nowhere: the namespace has no routes, no addresses and no other
// interfaces, so the only way a guest frame leaves is through the packet
// socket, into the supervisor's user-space stack (package netstack), which
// applies the workspace's egress policy. No host firewall rules are involved.
//
// How it runs: Wrap rewrites a VMM command so that the hearth binary starts
// first, cloned into a new network namespace (and, when not root, a new user
// namespace mapping the caller's uid to root). That child (Child) creates the
// TAP, brings it up, opens an AF_PACKET socket bound to it, passes the socket
// back over a Unix socket, and then execs the VMM in place, which therefore
// keeps the child's pid. When the VMM exits, the namespace and the TAP go
// with it.
package tapns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Name is the TAP device's name inside the namespace.
const Name = "tap0"

// Environment of the child (never passed on to the VMM).
const (
	envFD  = "HEARTH_TAPNS_FD"
	envTap = "HEARTH_TAPNS_TAP"
)

// Link is the parent's side of a wrapped command: after the command has
// started, Recv returns the packet socket.
type Link struct {
	ours, theirs *os.File
}

// Wrap makes cmd run through the hearth binary in a new network namespace
// holding TAP device Name. cmd must not have been started; its SysProcAttr is
// kept and extended. After cmd.Start, call Started, then Recv.
func Wrap(cmd *exec.Cmd) (*Link, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("tap network: find the hearth binary: %w", err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap network: socketpair: %w", err)
	}
	l := &Link{ours: os.NewFile(uintptr(fds[0]), "tapns-parent"), theirs: os.NewFile(uintptr(fds[1]), "tapns-child")}
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, l.theirs)
	path := cmd.Path
	cmd.Args = append([]string{self, path}, cmd.Args[1:]...)
	cmd.Path = self
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env, envFD+"="+strconv.Itoa(fd), envTap+"="+Name)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWNET
	if os.Geteuid() != 0 {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		cmd.SysProcAttr.GidMappingsEnableSetgroups = false
	}
	return l, nil
}

// Started closes the child's end in this process; call it after cmd.Start
// (whether or not it succeeded).
func (l *Link) Started() { l.theirs.Close() }

// Close releases the link (the packet socket Recv returned is the caller's).
func (l *Link) Close() {
	l.theirs.Close()
	l.ours.Close()
}

// Recv waits for the child's packet socket, or for its error, until ctx
// ends. The socket is non-blocking and close-on-exec.
func (l *Link) Recv(ctx context.Context) (*os.File, error) {
	defer l.ours.Close()
	if dl, ok := ctx.Deadline(); ok {
		l.ours.SetReadDeadline(dl)
	} else {
		l.ours.SetReadDeadline(time.Now().Add(30 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { l.ours.SetReadDeadline(time.Now()) })
	defer stop()
	rc, err := l.ours.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	}); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("tap network: waiting for the VMM's namespace: %w", ctx.Err())
		}
		return nil, fmt.Errorf("tap network: waiting for the VMM's namespace: %w", err)
	}
	if rerr != nil {
		return nil, fmt.Errorf("tap network: receive the packet socket: %w", rerr)
	}
	msg := string(buf[:n])
	if n == 0 {
		return nil, errors.New("tap network: the namespace helper exited before it set up the TAP device")
	}
	if msg != "ok" {
		return nil, fmt.Errorf("tap network: %s", strings.TrimPrefix(msg, "error: "))
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(cmsgs) != 1 {
		return nil, fmt.Errorf("tap network: no packet socket in the helper's message")
	}
	fds, err := unix.ParseUnixRights(&cmsgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("tap network: no packet socket in the helper's message")
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), "tap-packet"), nil
}

// Attach waits (Recv) for the packet socket and hands it to attach, or
// closes it when attach is nil.
func (l *Link) Attach(ctx context.Context, attach func(*os.File)) error {
	sock, err := l.Recv(ctx)
	if err != nil {
		return err
	}
	if attach == nil {
		sock.Close()
	} else {
		attach(sock)
	}
	return nil
}

// Child runs the namespace side when this process was started by Wrap, and
// then execs the VMM; it never returns in that case. Otherwise it returns at
// once. Call it first thing in main.
func Child() {
	fdStr := os.Getenv(envFD)
	if fdStr == "" {
		return
	}
	fd, err := strconv.Atoi(fdStr)
	if err != nil || len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "hearth: bad tap namespace helper invocation")
		os.Exit(126)
	}
	tap := os.Getenv(envTap)
	os.Unsetenv(envFD)
	os.Unsetenv(envTap)
	unix.CloseOnExec(fd)
	pfd, err := setup(tap)
	if err != nil {
		unix.Sendmsg(fd, []byte("error: "+err.Error()), nil, nil, 0)
		fmt.Fprintln(os.Stderr, "hearth: tap network:", err)
		os.Exit(126)
	}
	if err := unix.Sendmsg(fd, []byte("ok"), unix.UnixRights(pfd), nil, 0); err != nil {
		fmt.Fprintln(os.Stderr, "hearth: tap network: pass the packet socket:", err)
		os.Exit(126)
	}
	unix.Close(pfd)
	unix.Close(fd)
	bin := os.Args[1]
	err = unix.Exec(bin, append([]string{bin}, os.Args[2:]...), os.Environ())
	fmt.Fprintf(os.Stderr, "hearth: tap network: exec %s: %v\n", bin, err)
	os.Exit(127)
}

// setup runs inside the new namespace: no IPv6 (the kernel would otherwise
// send router solicitations to the guest), a persistent TAP device that the
// VMM opens by name, up, and a packet socket bound to it that ignores the
// frames it sends itself.
func setup(tap string) (int, error) {
	for _, p := range []string{"/proc/sys/net/ipv6/conf/default/disable_ipv6", "/proc/sys/net/ipv6/conf/all/disable_ipv6"} {
		os.WriteFile(p, []byte("1"), 0) // absent without IPv6: nothing to turn off
	}
	tfd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return -1, fmt.Errorf("open /dev/net/tun: %w (as a user other than root it must be readable and writable by that user: mode 0666, as most systems have it)", err)
	}
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w (load the tun module: modprobe tun)", err)
	}
	defer unix.Close(tfd)
	ifr, err := unix.NewIfreq(tap)
	if err != nil {
		return -1, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(tfd, unix.TUNSETIFF, ifr); err != nil {
		return -1, fmt.Errorf("create TAP device %s: %w", tap, err)
	}
	if err := unix.IoctlSetInt(tfd, unix.TUNSETPERSIST, 1); err != nil {
		return -1, fmt.Errorf("make TAP device %s persistent: %w", tap, err)
	}
	sfd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(sfd)
	if err := unix.IoctlIfreq(sfd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return -1, fmt.Errorf("TAP device %s: get flags: %w", tap, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(sfd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return -1, fmt.Errorf("TAP device %s: bring up: %w", tap, err)
	}
	idx, err := ifindex(sfd, tap)
	if err != nil {
		return -1, err
	}
	pfd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.SetsockoptInt(pfd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		unix.Close(pfd)
		return -1, fmt.Errorf("packet socket: ignore outgoing frames (needs Linux ≥ 4.20): %w", err)
	}
	if err := unix.Bind(pfd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: idx}); err != nil {
		unix.Close(pfd)
		return -1, fmt.Errorf("packet socket: bind to %s: %w", tap, err)
	}
	return pfd, nil
}

func ifindex(sfd int, name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(sfd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("TAP device %s: index: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

func htons(v uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&v))
	return uint16(b[0])<<8 | uint16(b[1])
}

// Check says whether this process can make the namespace and its TAP:
// root, or unprivileged user namespaces and a /dev/net/tun it may open.
func Check() error {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("/dev/net/tun: %w (load the tun module: modprobe tun)", err)
	}
	if os.Geteuid() == 0 {
		return nil
	}
	if err := unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK); err != nil {
		return fmt.Errorf("/dev/net/tun is not readable and writable by this user (%w): run as root or make it mode 0666", err)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return errors.New("unprivileged user namespaces are off (kernel.unprivileged_userns_clone=0): run as root or set it to 1")
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return errors.New("user namespaces are off (user.max_user_namespaces=0): run as root or raise it")
	}
	return nil
}
