// Package initrd makes the tiny initramfs that carries the guest agent into
// every VM: a newc cpio archive holding the agent as /init and the empty
// directories it mounts on. Delivering the agent this way means any root
// file system boots with it, the agent always matches the host binary, and
// changing the agent never invalidates an image.
package initrd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// entry is one cpio member.
type entry struct {
	name  string
	mode  uint32 // full st_mode
	data  []byte
	major uint32 // rdev major/minor for device nodes
	minor uint32
}

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFCHR = 0o020000
)

// Write writes a newc cpio holding agent as /init.
func Write(w io.Writer, agent []byte) error {
	entries := []entry{
		{name: "dev", mode: sIFDIR | 0o755},
		{name: "dev/console", mode: sIFCHR | 0o600, major: 5, minor: 1},
		{name: "proc", mode: sIFDIR | 0o555},
		{name: "sys", mode: sIFDIR | 0o555},
		{name: "mnt", mode: sIFDIR | 0o755},
		{name: "newroot", mode: sIFDIR | 0o755},
		{name: "init", mode: sIFREG | 0o755, data: agent},
	}
	for i, e := range entries {
		if err := writeEntry(w, uint32(i+1), e); err != nil {
			return err
		}
	}
	return writeEntry(w, 0, entry{name: "TRAILER!!!"})
}

func writeEntry(w io.Writer, ino uint32, e entry) error {
	nlink := uint32(1)
	if e.mode&sIFDIR != 0 {
		nlink = 2
	}
	name := e.name + "\x00"
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.major, e.minor, len(name), 0)
	var b bytes.Buffer
	b.WriteString(hdr)
	b.WriteString(name)
	pad(&b, b.Len())
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	if len(e.data) > 0 {
		if _, err := w.Write(e.data); err != nil {
			return err
		}
		var p bytes.Buffer
		pad(&p, len(e.data))
		if _, err := w.Write(p.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

func pad(b *bytes.Buffer, n int) {
	for n%4 != 0 {
		b.WriteByte(0)
		n++
	}
}

// Ensure returns the path of the initramfs for the agent binary at
// agentPath, building it under cacheDir when missing. The file is named by
// the agent's size, mtime and inode (cheap to check on every boot) and
// holds a copy, so a new agent gets a new initramfs and running VMs keep
// theirs.
func Ensure(cacheDir, agentPath string) (string, error) {
	st, err := os.Stat(agentPath)
	if err != nil {
		return "", fmt.Errorf("guest agent: %w", err)
	}
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	key := sha256.Sum256([]byte(fmt.Sprintf("%s %d %d %d", agentPath, st.Size(), st.ModTime().UnixNano(), ino)))
	dir := filepath.Join(cacheDir, "initrd")
	path := filepath.Join(dir, hex.EncodeToString(key[:8])+".cpio")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	agent, err := os.ReadFile(agentPath)
	if err != nil {
		return "", fmt.Errorf("read guest agent: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".initrd-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := Write(tmp, agent); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write initramfs: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// FindAgent locates the hearth-agent binary: $HEARTH_AGENT, else next to
// the running executable, else ../libexec/hearth/hearth-agent relative to it.
func FindAgent() (string, error) {
	if p := os.Getenv("HEARTH_AGENT"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("HEARTH_AGENT=%s: %w", p, err)
		}
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(exe)
	for _, p := range []string{filepath.Join(dir, "hearth-agent"), filepath.Join(dir, "..", "libexec", "hearth", "hearth-agent")} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("guest agent binary hearth-agent not found next to %s: build it with `make build` or set HEARTH_AGENT", exe)
}
