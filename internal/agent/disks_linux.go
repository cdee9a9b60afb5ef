package agent

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// diskMount is a named data disk the host attached: hearth.disk=UUID,PATH,ro|rw
// on the kernel command line. The guest finds its block device by the
// file system's UUID, so the order in which the VMM presents disks does
// not matter.
type diskMount struct {
	UUID     string // 32 hex digits, no dashes
	Path     string
	ReadOnly bool
}

func parseDiskArg(v string) (diskMount, bool) {
	f := strings.Split(v, ",")
	if len(f) != 3 || len(f[0]) != 32 || !filepath.IsAbs(f[1]) || (f[2] != "ro" && f[2] != "rw") {
		return diskMount{}, false
	}
	return diskMount{UUID: strings.ToLower(f[0]), Path: filepath.Clean(f[1]), ReadOnly: f[2] == "ro"}, true
}

// ext4UUID reads the file system UUID from a block device's superblock.
func ext4UUID(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var sb [1024]byte
	if _, err := f.ReadAt(sb[:], 1024); err != nil {
		return "", err
	}
	if sb[56] != 0x53 || sb[57] != 0xEF {
		return "", fmt.Errorf("%s holds no ext4 file system", dev)
	}
	return hex.EncodeToString(sb[104:120]), nil
}

// findDisk waits for the block device holding the file system uuid.
func findDisk(uuid string, skip []string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		devs, _ := filepath.Glob("/dev/vd*")
		for _, dev := range devs {
			if bytes.ContainsAny([]byte(filepath.Base(dev)), "0123456789") {
				continue // a partition
			}
			skipped := false
			for _, s := range skip {
				skipped = skipped || s == dev
			}
			if skipped {
				continue
			}
			if u, err := ext4UUID(dev); err == nil && u == uuid {
				return dev, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no disk with file system UUID %s appeared within %v", uuid, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mountDisks mounts the named data disks under the new root (before the
// switch). A disk that cannot be mounted is logged and left out: the
// workspace still boots.
func mountDisks(log *slog.Logger, cfg bootConfig, newRoot string) {
	skip := []string{cfg.Root, cfg.Data}
	for _, d := range cfg.Disks {
		dev, err := findDisk(d.UUID, skip, 10*time.Second)
		if err != nil {
			log.Error("data disk not mounted", "path", d.Path, "err", err)
			continue
		}
		ms := mountSpec{dev, newRoot + d.Path, "ext4", unix.MS_NOATIME | unix.MS_NOSUID | unix.MS_NODEV, ""}
		if d.ReadOnly {
			// Shared read-only by several VMs: never replay its journal.
			ms.flags |= unix.MS_RDONLY
			ms.data = "noload"
		}
		if err := ms.mount(); err != nil {
			log.Error("data disk not mounted", "path", d.Path, "err", err)
			continue
		}
		log.Info("data disk mounted", "dev", dev, "path", d.Path, "ro", d.ReadOnly)
	}
}
