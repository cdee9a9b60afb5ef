package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Where init puts things. Before the switch the disks are mounted under
// /mnt in the initramfs; afterwards they live under /run/hearth in the new
// root (a tmpfs, so nothing about them is persisted in the overlay).
const (
	initBase    = "/mnt/base"
	initData    = "/mnt/data"
	initNewRoot = "/newroot"
	baseMount   = "/run/hearth/base" // read-only root image
	dataMount   = "/run/hearth/data" // data disk (or tmpfs): .hearth/{upper,work}, workspace
)

// bootConfig is what the host tells the agent on the kernel command line.
type bootConfig struct {
	Root     string      // hearth.root: block device of the shared root image (required)
	Data     string      // hearth.data: block device of the workspace's data disk; "" = throwaway tmpfs
	ID       string      // hearth.id
	Hostname string      // hearth.hostname
	Disks    []diskMount // hearth.disk (repeated)
	Net      string      // hearth.net: see netConfig
}

// parseCmdline reads the hearth.* parameters from a kernel command line.
func parseCmdline(cmdline string) bootConfig {
	var c bootConfig
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "hearth.root":
			c.Root = v
		case "hearth.data":
			c.Data = v
		case "hearth.id":
			c.ID = v
		case "hearth.hostname":
			c.Hostname = v
		case "hearth.disk":
			if d, ok := parseDiskArg(v); ok {
				c.Disks = append(c.Disks, d)
			}
		case "hearth.net":
			c.Net = v
		}
	}
	return c
}

// mountSpec is one mount(2) call.
type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func (m mountSpec) mount() error {
	if err := os.MkdirAll(m.target, 0o755); err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
	}
	if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", m.source, m.fstype, m.target, err)
	}
	return nil
}

// initSystem prepares the guest as PID 1: it mounts the kernel file systems,
// builds the root (read-only image + overlay on the data disk), switches
// into it, and sets up devices, hostname, loopback and environment. An
// error means the root could not be prepared; lesser failures are logged.
func initSystem(log *slog.Logger) (bootConfig, error) {
	for _, m := range []mountSpec{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	} {
		if err := m.mount(); err != nil && !errors.Is(err, unix.EBUSY) {
			return bootConfig{}, err
		}
	}
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return bootConfig{}, fmt.Errorf("read kernel command line: %w", err)
	}
	cfg := parseCmdline(string(raw))
	log.Info("boot", "id", cfg.ID, "root", cfg.Root, "data", cfg.Data)
	if err := prepareRoot(log, cfg); err != nil {
		return cfg, err
	}
	setupRoot(log, cfg)
	ensureIdentity(log, cfg)
	return cfg, nil
}

// prepareRoot mounts the disks and the overlay and switches root.
func prepareRoot(log *slog.Logger, cfg bootConfig) error {
	if cfg.Root == "" {
		return errors.New("no hearth.root= on the kernel command line: the host must name the root image's block device")
	}
	if err := waitForDevice(cfg.Root, 10*time.Second); err != nil {
		return err
	}
	// The root image is shared by every VM: never writable, never replay
	// its journal.
	if err := (mountSpec{cfg.Root, initBase, "ext4", unix.MS_RDONLY, "noload"}).mount(); err != nil {
		return fmt.Errorf("root image: %w", err)
	}
	if cfg.Data != "" {
		if err := waitForDevice(cfg.Data, 10*time.Second); err != nil {
			return err
		}
		if err := (mountSpec{cfg.Data, initData, "ext4", unix.MS_NOATIME, ""}).mount(); err != nil {
			return fmt.Errorf("data disk: %w", err)
		}
	} else {
		log.Info("no data disk: the workspace lives in memory and ends with the VM")
		if err := (mountSpec{"tmpfs", initData, "tmpfs", 0, "mode=0755"}).mount(); err != nil {
			return err
		}
	}
	for _, d := range []string{initData + "/.hearth/upper", initData + "/.hearth/work", initData + "/workspace"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("data disk layout: %w", err)
		}
	}
	ovl := fmt.Sprintf("lowerdir=%s,upperdir=%s/.hearth/upper,workdir=%s/.hearth/work", initBase, initData, initData)
	if err := (mountSpec{"overlay", initNewRoot, "overlay", 0, ovl}).mount(); err != nil {
		return fmt.Errorf("overlay root: %w", err)
	}
	if err := (mountSpec{initData + "/workspace", initNewRoot + "/workspace", "", unix.MS_BIND, ""}).mount(); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	if err := (mountSpec{"tmpfs", initNewRoot + "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"}).mount(); err != nil {
		return err
	}
	mountDisks(log, cfg, initNewRoot)
	moves := [][2]string{
		{initBase, initNewRoot + baseMount},
		{initData, initNewRoot + dataMount},
		{"/dev", initNewRoot + "/dev"},
		{"/proc", initNewRoot + "/proc"},
		{"/sys", initNewRoot + "/sys"},
	}
	for _, mv := range moves {
		if err := (mountSpec{mv[0], mv[1], "", unix.MS_MOVE, ""}).mount(); err != nil {
			return fmt.Errorf("move mount: %w", err)
		}
	}
	// switch_root: make the new root "/" and enter it.
	if err := unix.Chdir(initNewRoot); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch root: move %s to /: %w", initNewRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	return nil
}

// setupRoot finishes the new root; failures are logged, not fatal.
func setupRoot(log *slog.Logger, cfg bootConfig) {
	for _, m := range []mountSpec{
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	} {
		if err := m.mount(); err != nil {
			log.Warn("optional mount failed", "err", err)
		}
	}
	os.Remove("/dev/ptmx")
	if err := os.Symlink("pts/ptmx", "/dev/ptmx"); err != nil {
		log.Warn("link /dev/ptmx", "err", err)
	}
	for _, l := range [][2]string{{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}} {
		os.Symlink(l[0], l[1])
	}
	if err := os.MkdirAll("/tmp", 0o1777); err == nil {
		os.Chmod("/tmp", 0o1777)
	}
	name := cfg.Hostname
	if name == "" {
		name = cfg.ID
	}
	if name == "" {
		name = "hearth"
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		log.Warn("set hostname", "err", err)
	}
	if err := loopbackUp(); err != nil {
		log.Warn("bring up lo", "err", err)
	}
	setupNetwork(log, cfg.Net)
	os.Clearenv()
	for _, kv := range execDefaultEnv {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	os.Setenv("TERM", "xterm-256color") // for shells; exec uses TERM=dumb
	if cfg.ID != "" {
		os.Setenv("HEARTH_VM_ID", cfg.ID)
	}
}

// waitForDevice waits for a block device node (devtmpfs fills /dev as the
// drivers probe).
func waitForDevice(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("device %s did not appear within %v: %w", path, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loopbackUp sets IFF_UP on lo.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set flags: %w", err)
	}
	return nil
}
