package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// rootfsMeta is kept next to a cached rootfs.ext4.
type rootfsMeta struct {
	Key                string    `json:"key"`
	Recipe             Recipe    `json:"recipe"`
	Mirror             string    `json:"mirror"`
	SHA256             string    `json:"sha256"`
	Size               int64     `json:"size"`
	UsedBytes          int64     `json:"used_bytes"`
	Inodes             int64     `json:"inodes"`
	BuiltAt            time.Time `json:"built_at"`
	DebootstrapSeconds float64   `json:"debootstrap_seconds"`
	MkfsSeconds        float64   `json:"mkfs_seconds"`
	BuildSeconds       float64   `json:"build_seconds"`
}

// sbin finds a system tool that may live in /usr/sbin or /sbin even when
// those are not on $PATH.
func sbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return name
}

// debootstrapProgress turns debootstrap's "I: ..." lines into progress
// reports: "debootstrap: downloading 87", "debootstrap: unpacking 87/143".
// The number of packages downloaded is the total for unpacking and
// configuring.
type debootstrapProgress struct {
	mu     sync.Mutex
	counts map[string]int
}

func (d *debootstrapProgress) line(line string) (msg string, done, total int, ok bool) {
	rest, found := strings.CutPrefix(line, "I: ")
	if !found {
		return "", 0, 0, false
	}
	verb, arg, _ := strings.Cut(rest, " ")
	verb = strings.ToLower(verb)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.counts == nil {
		d.counts = map[string]int{}
	}
	switch verb {
	case "validating":
		return "", 0, 0, false
	case "retrieving":
		if arg == "" || strings.ToLower(arg[:1]) != arg[:1] { // InRelease, Packages
			return "debootstrap: retrieving indexes", 0, 0, true
		}
		d.counts["downloading"]++
		return "debootstrap: downloading", d.counts["downloading"], 0, true
	case "extracting", "unpacking", "configuring":
		pkg := strings.TrimSuffix(arg, "...")
		if pkg == "" || strings.Contains(pkg, " ") { // "required packages"
			return "debootstrap: " + strings.ToLower(strings.TrimSuffix(rest, "...")), 0, 0, true
		}
		d.counts[verb]++
		n, t := d.counts[verb], d.counts["downloading"]
		if verb == "extracting" {
			t = 0 // only the required subset is extracted
		}
		if t > 0 && n > t {
			t = n
		}
		return "debootstrap: " + verb, n, t, true
	}
	return "debootstrap: " + strings.ToLower(strings.TrimSuffix(rest, "...")), 0, 0, true
}

// buildRootfs runs debootstrap, configures the tree, and makes a
// journal-less ext4 image of it in the cache under key.
func (b *builder) buildRootfs(ctx context.Context, key string, r Recipe, mirror string) error {
	start := time.Now()
	final := filepath.Join(b.cache, "rootfs", key)
	run, closeLog, err := b.openLog("rootfs-" + key[:16])
	if err != nil {
		return err
	}
	defer closeLog()
	run.env = []string{"DEBIAN_FRONTEND=noninteractive"}
	for _, tool := range []struct{ name, pkg string }{{"debootstrap", "debootstrap"}, {"mkfs.ext4", "e2fsprogs"}, {"e2fsck", "e2fsprogs"}} {
		if _, err := exec.LookPath(sbin(tool.name)); err != nil {
			return fmt.Errorf("rootfs: %s not found: install it with `apt-get install %s`: %w", tool.name, tool.pkg, errdefs.ErrFailedPrecondition)
		}
	}
	tmp, err := b.tempDir("rootfs-")
	if err != nil {
		return err
	}
	defer func() {
		if err := removeTree(tmp); err != nil {
			b.log.Error("rootfs: could not clean up build dir", "dir", tmp, "err", err)
		}
	}()
	tree := filepath.Join(tmp, "tree")

	dp := &debootstrapProgress{}
	onLine := func(line string) {
		if msg, done, total, ok := dp.line(line); ok {
			b.report("rootfs", msg, done, total, start)
		}
	}
	b.report("rootfs", "debootstrap "+r.Suite+" from "+mirror, 0, 0, start)
	// Downloaded .debs are kept between builds (debootstrap checks them
	// against the suite's indexes); one debootstrap at a time uses them.
	debs := filepath.Join(b.cache, "debs")
	debsLock, err := lockFile(ctx, filepath.Join(debs, ".lock"), func() {
		b.report("rootfs", "waiting for another debootstrap", 0, 0, start)
	})
	if err != nil {
		return err
	}
	defer debsLock.unlock()
	args := []string{"--variant=" + r.Variant, "--cache-dir=" + debs}
	if len(r.Packages) > 0 {
		args = append(args, "--include="+strings.Join(r.Packages, ","))
	}
	args = append(args, r.Suite, tree, mirror)
	if err := run.run(ctx, tmp, onLine, sbin("debootstrap"), args...); err != nil {
		return fmt.Errorf("rootfs: debootstrap: %w", err)
	}
	dbSecs := time.Since(start).Seconds()
	b.log.Info("debootstrap done", "seconds", int(dbSecs))

	b.report("rootfs", "configuring", 0, 0, start)
	if err := configureTree(ctx, run, tree, r); err != nil {
		return fmt.Errorf("rootfs: configure: %w", err)
	}
	if m := mountsUnder(tree); len(m) > 0 {
		return fmt.Errorf("rootfs: %s still mounted after debootstrap; refusing to image it", strings.Join(m, ", "))
	}

	used, inodes, err := treeUsage(tree)
	if err != nil {
		return fmt.Errorf("rootfs: measure tree: %w", err)
	}
	sizeMiB := (used*13/10)>>20 + 64
	nInodes := inodes*13/10 + 4096
	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	img := filepath.Join(out, rootfsFile)
	mkfsStart := time.Now()
	b.report("rootfs", fmt.Sprintf("mkfs.ext4: %d MiB used, %d MiB image", used>>20, sizeMiB), 0, 0, start)
	if err := run.run(ctx, tmp, nil, sbin("mkfs.ext4"), "-q", "-F", "-O", "^has_journal", "-L", "hearth-root",
		// 4 KiB blocks and 256-byte inodes even below 512 MiB, where
		// mke2fs would pick its "small" type (1 KiB blocks, 128-byte inodes).
		"-b", "4096", "-I", "256",
		"-N", strconv.FormatInt(nInodes, 10), "-d", tree, img, strconv.FormatInt(sizeMiB, 10)+"M"); err != nil {
		return fmt.Errorf("rootfs: mkfs.ext4: %w", err)
	}
	if err := run.run(ctx, tmp, nil, sbin("e2fsck"), "-fn", img); err != nil {
		return fmt.Errorf("rootfs: the new image does not check clean: %w", err)
	}
	mkfsSecs := time.Since(mkfsStart).Seconds()
	sum, size, err := fileSHA256(img)
	if err != nil {
		return err
	}
	meta := rootfsMeta{Key: key, Recipe: r, Mirror: mirror, SHA256: sum, Size: size, UsedBytes: used, Inodes: inodes,
		BuiltAt: time.Now().UTC(), DebootstrapSeconds: dbSecs, MkfsSeconds: mkfsSecs, BuildSeconds: time.Since(start).Seconds()}
	if err := writeJSON(filepath.Join(out, "rootfs.json"), meta); err != nil {
		return err
	}
	if err := replaceDir(out, final); err != nil {
		return fmt.Errorf("rootfs: store in cache: %w", err)
	}
	b.log.Info("rootfs built", "key", key, "debootstrap_s", int(dbSecs), "mkfs_s", mkfsSecs, "size", size, "used", used)
	b.report("rootfs", fmt.Sprintf("built (%d MiB used, %d MiB image)", used>>20, size>>20), 0, 0, start)
	return nil
}

const etcHosts = `127.0.0.1	localhost
127.0.1.1	%s
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

// configureTree turns a debootstrapped tree into a hearth root filesystem.
// Changing what it does must bump configureVersion.
func configureTree(ctx context.Context, run *runner, tree string, r Recipe) error {
	p := func(rel string) string { return filepath.Join(tree, rel) }
	if err := os.MkdirAll(p("workspace"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(p("root"), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(p("root"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(p("etc/hostname"), []byte(r.Hostname+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(p("etc/hosts"), []byte(fmt.Sprintf(etcHosts, r.Hostname)), 0o644); err != nil {
		return err
	}
	// Empty but present: whoever sets up the guest's network fills it in.
	// debootstrap copied the host's; it must not leak into the image.
	os.Remove(p("etc/resolv.conf"))
	if err := os.WriteFile(p("etc/resolv.conf"), nil, 0o644); err != nil {
		return err
	}
	if err := run.run(ctx, tree, nil, sbin("chroot"), tree, "apt-get", "clean"); err != nil {
		return fmt.Errorf("apt-get clean: %w", err)
	}
	lists := p("var/lib/apt/lists")
	entries, err := os.ReadDir(lists)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range entries {
		if e.Name() == "partial" || e.Name() == "lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(lists, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
