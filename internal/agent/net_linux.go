package agent

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// netConfig is hearth.net=ADDR/BITS,GATEWAY,DNS: the guest network the
// host's stack (package netstack) serves on eth0. Absent: no network.
type netConfig struct {
	Addr    netip.Prefix
	Gateway netip.Addr
	DNS     netip.Addr
}

func parseNetArg(v string) (*netConfig, error) {
	f := strings.Split(v, ",")
	if len(f) != 3 {
		return nil, fmt.Errorf("hearth.net=%q: want ADDR/BITS,GATEWAY,DNS", v)
	}
	p, err1 := netip.ParsePrefix(f[0])
	gw, err2 := netip.ParseAddr(f[1])
	dns, err3 := netip.ParseAddr(f[2])
	if err1 != nil || err2 != nil || err3 != nil || !p.Addr().Is4() {
		return nil, fmt.Errorf("hearth.net=%q: want IPv4 ADDR/BITS,GATEWAY,DNS", v)
	}
	return &netConfig{Addr: p, Gateway: gw, DNS: dns}, nil
}

// setupNetwork configures eth0 from hearth.net and points the resolver at
// the host stack's DNS. It runs after the switch to the new root.
func setupNetwork(log *slog.Logger, arg string) {
	if arg == "" {
		return
	}
	c, err := parseNetArg(arg)
	if err != nil {
		log.Warn("network", "err", err)
		return
	}
	// The NIC's driver may still be probing.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat("/sys/class/net/eth0"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := configureIface("eth0", c); err != nil {
		log.Warn("network: configure eth0", "err", err)
		return
	}
	os.Remove("/etc/resolv.conf")
	if err := os.WriteFile("/etc/resolv.conf", []byte("# written by hearth: the workspace's network stack answers DNS\nnameserver "+c.DNS.String()+"\noptions timeout:5 attempts:3\n"), 0o644); err != nil {
		log.Warn("network: write /etc/resolv.conf", "err", err)
	}
	log.Info("network", "eth0", c.Addr, "gateway", c.Gateway, "dns", c.DNS)
}

func sockaddr4(a netip.Addr) unix.RawSockaddrInet4 {
	return unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
}

// rtentry is struct rtentry (linux/route.h) on 64-bit.
type rtentry struct {
	pad1    uint64
	dst     unix.RawSockaddrInet4
	gateway unix.RawSockaddrInet4
	genmask unix.RawSockaddrInet4
	flags   uint16
	pad2    int16
	_       [4]byte
	pad3    uint64
	pad4    uintptr
	metric  int16
	_       [6]byte
	dev     uintptr
	mtu     uint64
	window  uint64
	irtt    uint16
	_       [6]byte
}

func configureIface(name string, c *netConfig) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := ifr.SetInet4Addr(c.Addr.Addr().AsSlice()); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("set address: %w", err)
	}
	m := uint32(0xffffffff) << (32 - c.Addr.Bits())
	if err := ifr.SetInet4Addr([]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("set netmask: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set flags: %w", err)
	}
	if err := txChecksumOff(fd, name); err != nil {
		return fmt.Errorf("turn off transmit offloads: %w", err)
	}
	dev := append([]byte(name), 0)
	rt := rtentry{
		dst:     sockaddr4(netip.IPv4Unspecified()),
		gateway: sockaddr4(c.Gateway),
		genmask: sockaddr4(netip.IPv4Unspecified()),
		flags:   unix.RTF_UP | unix.RTF_GATEWAY,
		dev:     uintptr(unsafe.Pointer(&dev[0])),
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCADDRT, uintptr(unsafe.Pointer(&rt))); e != 0 && e != unix.EEXIST {
		return fmt.Errorf("add default route: %w", e)
	}
	return nil
}

// txChecksumOff turns off transmit checksum offload on the NIC, and with it
// TSO (which needs it): on a TAP device (Firecracker's, or QEMU's with
// HEARTH_NET_LINK=tap) the host stack would otherwise receive frames with
// unfinished checksums and segments larger than the MTU. A no-op where the
// device never offered them (QEMU's stream netdev).
func txChecksumOff(fd int, name string) error {
	// struct ethtool_value { __u32 cmd; __u32 data; }, ETHTOOL_STXCSUM.
	// Both on the heap, which does not move, since ifr holds val's address
	// as an integer.
	val := &[2]uint32{unix.ETHTOOL_STXCSUM, 0}
	ifr := new([40]byte)
	copy(ifr[:unix.IFNAMSIZ-1], name)
	*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(val))
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(ifr)))
	runtime.KeepAlive(val)
	if e != 0 && e != unix.EOPNOTSUPP {
		return e
	}
	return nil
}
