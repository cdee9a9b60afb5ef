package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/home"
)

// Progress is a report from a long build step.
type Progress struct {
	// Stage is "kernel", "rootfs" or "image".
	Stage string `json:"stage"`
	// Message says what is happening ("compiling", "debootstrap: unpacking").
	Message string `json:"message"`
	// Done and Total count units of work; Total is 0 when unknown.
	Done  int `json:"done"`
	Total int `json:"total"`
	// Elapsed is the time since the stage started.
	Elapsed time.Duration `json:"elapsed"`
}

// String renders p as one line, e.g. "[kernel] compiling: 1234 objects, 2m10s".
func (p Progress) String() string {
	s := "[" + p.Stage + "] " + p.Message
	switch {
	case p.Total > 0:
		s += fmt.Sprintf(" %d/%d", p.Done, p.Total)
	case p.Done > 0 && p.Stage == "kernel":
		s += fmt.Sprintf(": %d objects", p.Done)
	case p.Done > 0:
		s += fmt.Sprintf(" %d", p.Done)
	}
	if p.Elapsed >= time.Second {
		s += ", " + p.Elapsed.Truncate(time.Second).String()
	}
	return s
}

// BuildOptions tune Store.Build.
type BuildOptions struct {
	// Recipe to build; defaults to the image name.
	Recipe string
	// Force rebuilds kernel and root filesystem even when cached.
	Force bool
	// Progress, if set, receives reports (at most every few seconds per
	// stage while a step runs, and at every change of step).
	Progress func(Progress)
	// Log receives structured build events.
	Log *slog.Logger
}

// Recipe describes how to build an image.
type Recipe struct {
	Name     string   `json:"name"`
	Suite    string   `json:"suite"`
	Variant  string   `json:"variant"`
	Packages []string `json:"packages"`
	// Hostname is written to /etc/hostname of the root filesystem.
	Hostname string `json:"hostname"`
}

// configureVersion changes whenever the rootfs configuration or mkfs steps
// (in rootfs.go) change; it is part of the rootfs cache key.
const configureVersion = "hearth-rootfs-2"

var recipes = map[string]Recipe{
	"debian-12": {
		Name:     "debian-12",
		Suite:    "bookworm",
		Variant:  "minbase",
		Packages: []string{"bash", "coreutils", "git", "python3", "curl", "ca-certificates", "procps", "less", "iproute2"},
		Hostname: "hearth",
	},
}

// Recipes lists the built-in recipe names.
func Recipes() []string {
	names := make([]string, 0, len(recipes))
	for n := range recipes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LookupRecipe returns a built-in recipe.
func LookupRecipe(name string) (Recipe, error) {
	r, ok := recipes[name]
	if !ok {
		return Recipe{}, fmt.Errorf("no recipe %q: the built-in recipes are %s (or import your own with `hearth image import`): %w",
			name, strings.Join(Recipes(), ", "), errdefs.ErrInvalidArgument)
	}
	return r, nil
}

// rootfsKey is the cache key of a root filesystem built from r with mirror.
func rootfsKey(r Recipe, mirror string) string {
	pkgs := append([]string(nil), r.Packages...)
	sort.Strings(pkgs)
	in, _ := json.Marshal(struct {
		Configure string   `json:"configure"`
		Suite     string   `json:"suite"`
		Variant   string   `json:"variant"`
		Packages  []string `json:"packages"`
		Hostname  string   `json:"hostname"`
		Mirror    string   `json:"mirror"`
	}{configureVersion, r.Suite, r.Variant, pkgs, r.Hostname, strings.TrimRight(mirror, "/")})
	sum := sha256.Sum256(in)
	return hex.EncodeToString(sum[:])
}

// CacheDir is the build cache: $HEARTH_CACHE if set, else root/cache.
func CacheDir(root string) string {
	if c := os.Getenv("HEARTH_CACHE"); c != "" {
		if a, err := filepath.Abs(c); err == nil {
			return a
		}
		return c
	}
	c := home.Cache(root)
	if a, err := filepath.Abs(c); err == nil {
		return a
	}
	return c
}

// builder holds the state of one Build call.
type builder struct {
	cache    string
	log      *slog.Logger
	progress func(Progress)

	mu       sync.Mutex
	lastSent map[string]time.Time
	lastMsg  map[string]string
}

// progressEvery is the minimum interval between two reports of one stage
// while its message stays the same.
const progressEvery = 3 * time.Second

func (b *builder) report(stage, msg string, done, total int, start time.Time) {
	if b.progress == nil {
		return
	}
	b.mu.Lock()
	now := time.Now()
	if b.lastMsg[stage] == msg && now.Sub(b.lastSent[stage]) < progressEvery && (total == 0 || done < total) {
		b.mu.Unlock()
		return
	}
	b.lastMsg[stage], b.lastSent[stage] = msg, now
	b.mu.Unlock()
	b.progress(Progress{Stage: stage, Message: msg, Done: done, Total: total, Elapsed: now.Sub(start)})
}

// tempDir makes a build directory $CACHE/tmp/<prefix><pid>-<random>; the
// pid lets a later build remove it if this process dies without cleaning up.
func (b *builder) tempDir(prefix string) (string, error) {
	dir := filepath.Join(b.cache, "tmp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(dir, fmt.Sprintf("%s%d-", prefix, os.Getpid()))
}

// cleanStale removes build directories left by builds whose process is
// gone (killed with SIGKILL, machine crash).
func (b *builder) cleanStale() {
	dir := filepath.Join(b.cache, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		parts := strings.Split(e.Name(), "-")
		if len(parts) != 3 {
			continue
		}
		pid, err := strconv.Atoi(parts[1])
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := removeTree(p); err != nil {
			b.log.Warn("could not remove stale build dir", "dir", p, "err", err)
		} else {
			b.log.Info("removed stale build dir", "dir", p)
		}
	}
}

// openLog starts a fresh build log $CACHE/logs/<name>.log.
func (b *builder) openLog(name string) (*runner, func(), error) {
	dir := filepath.Join(b.cache, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	p := filepath.Join(dir, name+".log")
	f, err := os.Create(p)
	if err != nil {
		return nil, nil, err
	}
	return &runner{logPath: p, log: f}, func() { f.Close() }, nil
}

// Build builds the named image from its recipe (BuildOptions.Recipe, else
// the recipe of the same name), reusing cached kernel and root filesystem
// whose inputs have not changed, and installs it in the store.
func (s *Store) Build(ctx context.Context, name string, opts BuildOptions) (*Image, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	rname := opts.Recipe
	if rname == "" {
		rname = name
	}
	recipe, err := LookupRecipe(rname)
	if err != nil {
		return nil, err
	}
	b := &builder{cache: CacheDir(s.Root), log: logger(opts.Log), progress: opts.Progress,
		lastSent: map[string]time.Time{}, lastMsg: map[string]string{}}
	start := time.Now()
	b.cleanStale()

	srcVersion, err := linuxSourceVersion(ctx)
	if err != nil {
		return nil, err
	}
	mirror, err := DebianMirror()
	if err != nil {
		return nil, err
	}
	kkey := kernelKey(KernelFragment, srcVersion)
	rkey := rootfsKey(recipe, mirror)
	b.log.Info("image build", "name", name, "recipe", recipe.Name, "kernel_key", kkey, "rootfs_key", rkey, "mirror", mirror)

	// Unchanged image: nothing to do.
	if !opts.Force {
		if img, err := s.load(name); err == nil && img.Source == SourceBuilt && img.KernelKey == kkey && img.RootFSKey == rkey {
			b.report("image", "up to date ("+img.Dir()+")", 0, 0, start)
			return img, nil
		}
	}

	// Kernel and rootfs are independent; build them side by side.
	var kmeta kernelMeta
	var rmeta rootfsMeta
	var kerr, rerr error
	// The first failure stops the other half.
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if kmeta, kerr = b.cachedKernel(bctx, kkey, srcVersion, opts.Force); kerr != nil {
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		if rmeta, rerr = b.cachedRootfs(bctx, rkey, recipe, mirror, opts.Force); rerr != nil {
			cancel()
		}
	}()
	wg.Wait()
	if kerr != nil || rerr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("image build %q interrupted; its build directories were removed and finished parts stay cached: %w", name, ctx.Err())
		}
		// Not cancelled from outside: drop the knock-on cancellation.
		if errors.Is(kerr, context.Canceled) && rerr != nil {
			kerr = nil
		}
		if errors.Is(rerr, context.Canceled) && kerr != nil {
			rerr = nil
		}
		return nil, errors.Join(kerr, rerr)
	}

	lock, err := lockFile(ctx, s.lockPath(name), func() {
		b.report("image", "waiting for another build of "+name, 0, 0, start)
	})
	if err != nil {
		return nil, err
	}
	defer lock.unlock()
	img := &Image{
		Name: name, Source: SourceBuilt, Recipe: recipe.Name,
		KernelVersion: kmeta.KernelVersion, CreatedAt: time.Now().UTC(),
		KernelSize: kmeta.Size, RootFSSize: rmeta.Size,
		KernelKey: kkey, RootFSKey: rkey,
		KernelSHA256: kmeta.SHA256, RootFSSHA256: rmeta.SHA256,
	}
	out, err := s.install(img,
		filepath.Join(b.cache, "kernel", kkey, kernelFile),
		filepath.Join(b.cache, "rootfs", rkey, rootfsFile), linkOrCopy)
	if err != nil {
		return nil, err
	}
	b.report("image", "installed "+out.Dir(), 0, 0, start)
	b.log.Info("image built", "name", name, "seconds", time.Since(start).Seconds())
	return out, nil
}

// Dir is the directory holding the image's files.
func (img *Image) Dir() string { return filepath.Dir(img.Kernel) }

// cachedKernel returns the cached kernel under key, building it first if it
// is missing or force is set. Concurrent builds of one key wait on a lock.
func (b *builder) cachedKernel(ctx context.Context, key, srcVersion string, force bool) (kernelMeta, error) {
	var meta kernelMeta
	dir := filepath.Join(b.cache, "kernel", key)
	start := time.Now()
	lock, err := lockFile(ctx, filepath.Join(b.cache, "kernel", "."+key+".lock"), func() {
		b.report("kernel", "waiting for another build of the same kernel", 0, 0, start)
	})
	if err != nil {
		return meta, err
	}
	defer lock.unlock()
	if !force {
		err := readJSON(filepath.Join(dir, "kernel.json"), &meta)
		if err == nil {
			if _, serr := os.Stat(filepath.Join(dir, kernelFile)); serr == nil {
				b.report("kernel", "cached "+meta.KernelVersion, 0, 0, start)
				return meta, nil
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			b.log.Warn("kernel cache entry unreadable; rebuilding", "key", key, "err", err)
		}
	}
	if err := b.buildKernel(ctx, key, srcVersion); err != nil {
		return meta, err
	}
	return meta, readJSON(filepath.Join(dir, "kernel.json"), &meta)
}

// cachedRootfs is cachedKernel for the root filesystem.
func (b *builder) cachedRootfs(ctx context.Context, key string, r Recipe, mirror string, force bool) (rootfsMeta, error) {
	var meta rootfsMeta
	dir := filepath.Join(b.cache, "rootfs", key)
	start := time.Now()
	lock, err := lockFile(ctx, filepath.Join(b.cache, "rootfs", "."+key+".lock"), func() {
		b.report("rootfs", "waiting for another build of the same root filesystem", 0, 0, start)
	})
	if err != nil {
		return meta, err
	}
	defer lock.unlock()
	if !force {
		err := readJSON(filepath.Join(dir, "rootfs.json"), &meta)
		if err == nil {
			if _, serr := os.Stat(filepath.Join(dir, rootfsFile)); serr == nil {
				b.report("rootfs", "cached", 0, 0, start)
				return meta, nil
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			b.log.Warn("rootfs cache entry unreadable; rebuilding", "key", key, "err", err)
		}
	}
	if os.Geteuid() != 0 {
		return meta, fmt.Errorf("rootfs: building a root filesystem needs root (debootstrap, file ownership in mkfs.ext4 -d): run `sudo hearth image build`, or import an image with `hearth image import`: %w",
			errdefs.ErrFailedPrecondition)
	}
	if err := b.buildRootfs(ctx, key, r, mirror); err != nil {
		return meta, err
	}
	return meta, readJSON(filepath.Join(dir, "rootfs.json"), &meta)
}
