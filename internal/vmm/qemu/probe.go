package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ProbeResult is the cached outcome of a KVM probe boot.
type ProbeResult struct {
	Key       string    `json:"key"`
	Accel     Accel     `json:"accel"`
	Reason    string    `json:"reason"`
	ProbedAt  time.Time `json:"probed_at"`
	ElapsedMS int64     `json:"elapsed_ms"`
}

// probeTimeout bounds the KVM probe boot. A working KVM reaches the kernel's
// root-mount panic in well under a second; a broken one hangs forever.
const probeTimeout = 8 * time.Second

// kvmUsable reports whether /dev/kvm can be opened read-write.
func kvmUsable() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func probeKey(bin, kernel string) string {
	var uts syscall.Utsname
	syscall.Uname(&uts)
	rel := make([]byte, 0, len(uts.Release))
	for _, c := range uts.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	var kinfo, binfo string
	if st, err := os.Stat(kernel); err == nil {
		kinfo = fmt.Sprintf("%d-%d", st.Size(), st.ModTime().UnixNano())
	}
	if st, err := os.Stat(bin); err == nil {
		binfo = fmt.Sprintf("%d-%d", st.Size(), st.ModTime().UnixNano())
	}
	return fmt.Sprintf("host=%s qemu=%s kernel=%s", rel, binfo, kinfo)
}

// Probe decides the accelerator: KVM if /dev/kvm opens and a short test boot
// of kernel under KVM reaches the kernel's end of boot, TCG otherwise. The
// result is cached in CacheDir, keyed by the host kernel, the QEMU binary and
// the guest kernel.
func (b *Backend) Probe(ctx context.Context, kernel string) Accel {
	r := b.ProbeDetail(ctx, kernel)
	return r.Accel
}

// ProbeDetail is Probe with the reason, for `hearth doctor`.
func (b *Backend) ProbeDetail(ctx context.Context, kernel string) ProbeResult {
	if err := kvmUsable(); err != nil {
		return ProbeResult{Accel: AccelTCG, Reason: fmt.Sprintf("/dev/kvm not usable (%v): software emulation", err)}
	}
	bin, err := b.binary()
	if err != nil {
		return ProbeResult{Accel: AccelTCG, Reason: err.Error()}
	}
	key := probeKey(bin, kernel)
	var cachePath string
	if b.opts.CacheDir != "" {
		cachePath = filepath.Join(b.opts.CacheDir, "kvm-probe.json")
		if data, err := os.ReadFile(cachePath); err == nil {
			var r ProbeResult
			if json.Unmarshal(data, &r) == nil && r.Key == key {
				return r
			}
		}
	}
	r := b.probe(ctx, bin, kernel)
	r.Key = key
	if cachePath != "" && ctx.Err() == nil {
		os.MkdirAll(filepath.Dir(cachePath), 0o755)
		data, _ := json.MarshalIndent(r, "", "  ")
		tmp := cachePath + ".tmp"
		if os.WriteFile(tmp, data, 0o644) == nil {
			os.Rename(tmp, cachePath)
		}
	}
	return r
}

func (b *Backend) probe(ctx context.Context, bin, kernel string) ProbeResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	// No initrd and no root: a kernel that boots under KVM panics at once
	// on the missing root file system and, with panic=-1 and -no-reboot,
	// QEMU exits. A KVM that cannot run this guest hangs until the timeout.
	cmd := exec.CommandContext(ctx, bin,
		"-M", "microvm,x-option-roms=off,rtc=on", "-m", "128", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-no-reboot",
		"-serial", "stdio", "-accel", "kvm", "-cpu", "host",
		"-kernel", kernel, "-append", "console=ttyS0 panic=-1 reboot=t")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	el := time.Since(start)
	s := out.String()
	booted := strings.Contains(s, "Kernel panic") || strings.Contains(s, "VFS:") || strings.Contains(s, "Run /init")
	r := ProbeResult{ProbedAt: time.Now().UTC(), ElapsedMS: el.Milliseconds()}
	switch {
	case booted:
		r.Accel, r.Reason = AccelKVM, fmt.Sprintf("KVM probe boot reached the kernel's end of boot in %s", el.Round(time.Millisecond))
	case ctx.Err() != nil:
		r.Accel, r.Reason = AccelTCG, fmt.Sprintf("KVM probe boot hung for %s (nested or restricted KVM): software emulation", probeTimeout)
	default:
		last := strings.TrimSpace(s)
		if i := strings.LastIndex(last, "\n"); i >= 0 {
			last = last[i+1:]
		}
		r.Accel, r.Reason = AccelTCG, fmt.Sprintf("KVM probe boot failed (%v: %s): software emulation", err, last)
	}
	return r
}

// CachedProbe returns the last probe result stored in cacheDir, if any.
func CachedProbe(cacheDir string) (ProbeResult, bool) {
	var r ProbeResult
	data, err := os.ReadFile(filepath.Join(cacheDir, "kvm-probe.json"))
	if err != nil || json.Unmarshal(data, &r) != nil {
		return r, false
	}
	return r, true
}
