package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// KernelFragment is the kconfig fragment merged on top of `make tinyconfig`.
//
//go:embed kernel.config
var KernelFragment []byte

const (
	// kernelBuilderVersion changes whenever the kernel build steps change
	// in a way that changes the output; it is part of the kernel cache key.
	kernelBuilderVersion = "hearth-kernel-1"
	// LinuxSourcePackage is the Debian package the kernel is built from.
	LinuxSourcePackage = "linux-source-6.1"
	// LinuxSourceTarball is where that package puts the source.
	LinuxSourceTarball = "/usr/src/linux-source-6.1.tar.xz"
)

// kernelKey is the cache key of a kernel built from fragment with the given
// linux-source package version.
func kernelKey(fragment []byte, sourceVersion string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", kernelBuilderVersion, LinuxSourcePackage, sourceVersion)
	h.Write(fragment)
	return hex.EncodeToString(h.Sum(nil))
}

// linuxSourceVersion is the installed version of the linux-source package.
func linuxSourceVersion(ctx context.Context) (string, error) {
	v, err := output(ctx, "dpkg-query", "-W", "-f=${Version}", LinuxSourcePackage)
	if err != nil || v == "" {
		return "", fmt.Errorf("kernel source: package %s is not installed (install it: apt-get install %s bc flex bison libelf-dev libssl-dev): %w",
			LinuxSourcePackage, LinuxSourcePackage, errdefs.ErrFailedPrecondition)
	}
	if _, err := os.Stat(LinuxSourceTarball); err != nil {
		return "", fmt.Errorf("kernel source: %s is missing although %s %s is installed (reinstall it: apt-get install --reinstall %s): %w",
			LinuxSourceTarball, LinuxSourcePackage, v, LinuxSourcePackage, errdefs.ErrFailedPrecondition)
	}
	return v, nil
}

// requiredSymbols are the CONFIG_X=y lines of a fragment, in order.
func requiredSymbols(fragment []byte) []string {
	var syms []string
	sc := bufio.NewScanner(bytes.NewReader(fragment))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "CONFIG_") && strings.HasSuffix(line, "=y") {
			syms = append(syms, strings.TrimSuffix(line, "=y"))
		}
	}
	return syms
}

// missingSymbols returns the symbols of the fragment that are not =y in the
// final .config (merge_config.sh silently drops unknown symbols and ones
// whose dependencies are not met).
func missingSymbols(fragment, config []byte) []string {
	have := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(config))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if sym, ok := strings.CutSuffix(line, "=y"); ok {
			have[sym] = true
		}
	}
	var missing []string
	for _, s := range requiredSymbols(fragment) {
		if !have[s] {
			missing = append(missing, s)
		}
	}
	return missing
}

// kernelMeta is kept next to a cached vmlinux.
type kernelMeta struct {
	Key           string    `json:"key"`
	SourceVersion string    `json:"source_version"`
	KernelVersion string    `json:"kernel_version"`
	SHA256        string    `json:"sha256"`
	Size          int64     `json:"size"`
	BuiltAt       time.Time `json:"built_at"`
	BuildSeconds  float64   `json:"build_seconds"`
	// Objects is how many build steps make printed; the next build uses
	// it as its progress total.
	Objects int `json:"objects,omitempty"`
}

// objectsEstimate is the step count of the largest cached kernel build
// (0 if none recorded one).
func (b *builder) objectsEstimate() int {
	metas, _ := filepath.Glob(filepath.Join(b.cache, "kernel", "*", "kernel.json"))
	est := 0
	for _, p := range metas {
		var m kernelMeta
		if readJSON(p, &m) == nil && m.Objects > est {
			est = m.Objects
		}
	}
	return est
}

var compileLine = regexp.MustCompile(`^  [A-Z][A-Z0-9_]*\s+\S`)

// buildKernel compiles vmlinux into the cache under key: untar the source,
// tinyconfig, merge the fragment, olddefconfig, check, make vmlinux.
func (b *builder) buildKernel(ctx context.Context, key, sourceVersion string) error {
	start := time.Now()
	final := filepath.Join(b.cache, "kernel", key)
	r, closeLog, err := b.openLog("kernel-" + key[:16])
	if err != nil {
		return err
	}
	defer closeLog()
	tmp, err := b.tempDir("kernel-")
	if err != nil {
		return err
	}
	defer removeTree(tmp)

	b.report("kernel", "unpacking "+filepath.Base(LinuxSourceTarball), 0, 0, start)
	if err := r.run(ctx, tmp, nil, "tar", "-xJf", LinuxSourceTarball, "-C", tmp); err != nil {
		return fmt.Errorf("kernel: unpack source: %w", err)
	}
	src := filepath.Join(tmp, strings.TrimSuffix(filepath.Base(LinuxSourceTarball), ".tar.xz"))
	if _, err := os.Stat(filepath.Join(src, "Makefile")); err != nil {
		return fmt.Errorf("kernel: %s has no top-level %s directory", LinuxSourceTarball, filepath.Base(src))
	}
	frag := filepath.Join(tmp, "hearth.config")
	if err := os.WriteFile(frag, KernelFragment, 0o644); err != nil {
		return err
	}
	b.report("kernel", "configuring (tinyconfig + hearth fragment)", 0, 0, start)
	if err := r.run(ctx, src, nil, "make", "tinyconfig"); err != nil {
		return fmt.Errorf("kernel: make tinyconfig: %w", err)
	}
	if err := r.run(ctx, src, nil, "scripts/kconfig/merge_config.sh", "-m", ".config", frag); err != nil {
		return fmt.Errorf("kernel: merge config fragment: %w", err)
	}
	if err := r.run(ctx, src, nil, "make", "olddefconfig"); err != nil {
		return fmt.Errorf("kernel: make olddefconfig: %w", err)
	}
	config, err := os.ReadFile(filepath.Join(src, ".config"))
	if err != nil {
		return err
	}
	if missing := missingSymbols(KernelFragment, config); len(missing) > 0 {
		return fmt.Errorf("kernel: %d symbol(s) of the fragment internal/image/kernel.config are not =y after make olddefconfig (unknown in this kernel or dependencies unmet): %s (log: %s): %w",
			len(missing), strings.Join(missing, ", "), r.logPath, errdefs.ErrFailedPrecondition)
	}

	objects, estimate := 0, b.objectsEstimate()
	onLine := func(line string) {
		if compileLine.MatchString(line) {
			objects++
			total := estimate
			if objects >= total {
				total = 0 // past the estimate: unknown
			}
			b.report("kernel", "compiling", objects, total, start)
		}
	}
	jobs := strconv.Itoa(runtime.NumCPU())
	b.report("kernel", "compiling", 0, 0, start)
	if err := r.run(ctx, src, onLine, "make", "-j"+jobs, "vmlinux"); err != nil {
		return fmt.Errorf("kernel: make vmlinux: %w", err)
	}

	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(src, "vmlinux"), filepath.Join(out, "vmlinux")); err != nil {
		return fmt.Errorf("kernel: keep vmlinux: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "config"), config, 0o644); err != nil {
		return err
	}
	vm := filepath.Join(out, "vmlinux")
	if err := checkELF(vm); err != nil {
		return fmt.Errorf("kernel: built vmlinux: %w", err)
	}
	sum, size, err := fileSHA256(vm)
	if err != nil {
		return err
	}
	kver, _ := kernelVersion(vm)
	meta := kernelMeta{Key: key, SourceVersion: sourceVersion, KernelVersion: kver, SHA256: sum, Size: size,
		BuiltAt: time.Now().UTC(), BuildSeconds: time.Since(start).Seconds(), Objects: objects}
	if err := writeJSON(filepath.Join(out, "kernel.json"), meta); err != nil {
		return err
	}
	if err := replaceDir(out, final); err != nil {
		return fmt.Errorf("kernel: store in cache: %w", err)
	}
	b.log.Info("kernel built", "key", key, "version", kver, "seconds", int(time.Since(start).Seconds()), "objects", objects)
	b.report("kernel", fmt.Sprintf("built %s (%d objects)", kver, objects), 0, 0, start)
	return nil
}

// kernelVersion reads the release from the "Linux version X" banner that
// every kernel image carries.
func kernelVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	marker := []byte("Linux version ")
	buf := make([]byte, 1<<20)
	var carry []byte
	for {
		n, err := f.Read(buf)
		if n > 0 {
			chunk := append(carry, buf[:n]...)
			if i := bytes.Index(chunk, marker); i >= 0 {
				rest := chunk[i+len(marker):]
				if j := bytes.IndexAny(rest, " \x00\n"); j > 0 {
					return string(rest[:j]), nil
				}
				if len(rest) > 128 {
					return string(rest[:128]), nil
				}
			}
			keep := len(marker) + 128
			if len(chunk) > keep {
				chunk = chunk[len(chunk)-keep:]
			}
			carry = append([]byte(nil), chunk...)
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return "", err
			}
			return "", fmt.Errorf("no Linux version banner in %s", path)
		}
	}
}
