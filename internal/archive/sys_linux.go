package archive

import (
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// cwdFD is AT_FDCWD as a variable, so it converts to uintptr.
var cwdFD = -0x64

// sysRenameat2 is renameat2's number; 0 where unknown (no atomic exchange).
var sysRenameat2 = map[string]uintptr{"amd64": 316, "arm64": 276, "riscv64": 276, "386": 353}[runtime.GOARCH]

const (
	atSymlinkNoFollow = 0x100
	renameExchange    = 1 << 1
)

// lchtimes sets the modification (and access) time of p without following
// a final symlink.
func lchtimes(p string, mtime time.Time) error {
	b, err := syscall.BytePtrFromString(p)
	if err != nil {
		return err
	}
	ts := [2]syscall.Timespec{syscall.NsecToTimespec(mtime.UnixNano()), syscall.NsecToTimespec(mtime.UnixNano())}
	_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(cwdFD), uintptr(unsafe.Pointer(b)),
		uintptr(unsafe.Pointer(&ts[0])), atSymlinkNoFollow, 0, 0)
	if errno != 0 {
		return &os.PathError{Op: "utimensat", Path: p, Err: errno}
	}
	return nil
}

// exchange atomically swaps two paths (renameat2 RENAME_EXCHANGE). It fails
// on kernels or file systems that lack it; callers fall back to two renames.
func exchange(a, b string) error {
	if sysRenameat2 == 0 {
		return syscall.ENOSYS
	}
	pa, err := syscall.BytePtrFromString(a)
	if err != nil {
		return err
	}
	pb, err := syscall.BytePtrFromString(b)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall6(sysRenameat2, uintptr(cwdFD), uintptr(unsafe.Pointer(pa)),
		uintptr(cwdFD), uintptr(unsafe.Pointer(pb)), renameExchange, 0)
	if errno != 0 {
		return &os.LinkError{Op: "renameat2", Old: a, New: b, Err: errno}
	}
	return nil
}
