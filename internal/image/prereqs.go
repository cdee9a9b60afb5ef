package image

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Check is one result of Prereqs, for `hearth doctor`.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // "ok", "warn" or "fail"
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Check statuses.
const (
	CheckOK   = "ok"
	CheckWarn = "warn"
	CheckFail = "fail"
)

// Prereqs checks what `hearth image build` needs on this host.
func Prereqs() []Check {
	var checks []Check
	tool := func(name, pkg string) {
		p, err := exec.LookPath(name)
		if err != nil {
			if q := sbin(name); q != name {
				p, err = q, nil
			}
		}
		if err != nil {
			checks = append(checks, Check{Name: name, Status: CheckFail, Detail: name + " not found",
				Fix: "apt-get install " + pkg})
			return
		}
		checks = append(checks, Check{Name: name, Status: CheckOK, Detail: p})
	}
	tool("debootstrap", "debootstrap")
	tool("mkfs.ext4", "e2fsprogs")
	tool("e2fsck", "e2fsprogs")
	tool("make", "make")
	tool("gcc", "gcc")
	tool("bc", "bc")
	tool("flex", "flex")
	tool("bison", "bison")
	tool("xz", "xz-utils")

	if _, err := os.Stat(LinuxSourceTarball); err != nil {
		checks = append(checks, Check{Name: LinuxSourcePackage, Status: CheckFail,
			Detail: LinuxSourceTarball + " missing", Fix: "apt-get install " + LinuxSourcePackage})
	} else {
		v, _ := exec.Command("dpkg-query", "-W", "-f=${Version}", LinuxSourcePackage).Output()
		checks = append(checks, Check{Name: LinuxSourcePackage, Status: CheckOK,
			Detail: strings.TrimSpace(LinuxSourceTarball + " " + string(v))})
	}
	header := func(name, path, pkg string) {
		if _, err := os.Stat(path); err != nil {
			checks = append(checks, Check{Name: name, Status: CheckFail, Detail: path + " missing", Fix: "apt-get install " + pkg})
			return
		}
		checks = append(checks, Check{Name: name, Status: CheckOK, Detail: path})
	}
	header("libelf headers", "/usr/include/gelf.h", "libelf-dev")
	header("libssl headers", "/usr/include/openssl/ssl.h", "libssl-dev")

	if m, err := DebianMirror(); err != nil {
		checks = append(checks, Check{Name: "debian mirror", Status: CheckFail, Detail: err.Error(),
			Fix: "set " + MirrorEnv + " to a Debian mirror URL"})
	} else {
		checks = append(checks, Check{Name: "debian mirror", Status: CheckOK, Detail: m})
	}
	if os.Geteuid() != 0 {
		checks = append(checks, Check{Name: "root", Status: CheckWarn,
			Detail: fmt.Sprintf("running as uid %d; debootstrap and mkfs.ext4 -d of a root filesystem need root", os.Geteuid()),
			Fix:    "run `sudo hearth image build`, or import an image with `hearth image import`"})
	} else {
		checks = append(checks, Check{Name: "root", Status: CheckOK, Detail: "running as root"})
	}
	return checks
}
