package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

func TestMirrorFromList(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"plain", "deb http://ftp.example.org/debian bookworm main contrib\n", "http://ftp.example.org/debian"},
		{"trailing slash", "deb http://ftp.example.org/debian/ bookworm main\n", "http://ftp.example.org/debian"},
		{"options", "deb [arch=amd64 signed-by=/k.gpg] https://m.example/debian bookworm main\n", "https://m.example/debian"},
		{"skip src, comment, other suite", "# deb http://a/debian bookworm main\ndeb-src http://b/debian bookworm main\n" +
			"deb http://c/debian-security bookworm-security main\ndeb http://d/debian bookworm main # ok\n", "http://d/debian"},
		{"no main", "deb http://a/debian bookworm contrib non-free\n", ""},
		{"cdrom ignored", "deb cdrom:[Debian]/ bookworm main\n", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mirrorFromList(strings.NewReader(tt.text), "bookworm"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMirrorFromDeb822(t *testing.T) {
	debian := "Types: deb\n# http://snapshot.example/archive\nURIs: http://deb.example.org/debian\nSuites: bookworm bookworm-updates\n" +
		"Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n" +
		"Types: deb\nURIs: http://deb.example.org/debian-security\nSuites: bookworm-security\nComponents: main\n"
	tests := []struct {
		name, text, want string
	}{
		{"debian default", debian, "http://deb.example.org/debian"},
		{"security only", "Types: deb\nURIs: http://s/debian-security\nSuites: bookworm-security\nComponents: main\n", ""},
		{"disabled", "Enabled: no\nTypes: deb\nURIs: http://x/debian\nSuites: bookworm\nComponents: main\n", ""},
		{"src only", "Types: deb-src\nURIs: http://x/debian\nSuites: bookworm\nComponents: main\n", ""},
		{"multi types and uris", "Types: deb-src deb\nURIs: cdrom:/x http://y/debian/\nSuites: bookworm\nComponents: contrib main\n", "http://y/debian"},
		{"continuation line", "Types: deb\nURIs: http://z/debian\nSuites: bullseye\n bookworm\nComponents: main\nSigned-By:\n -----BEGIN PGP\n .\n", "http://z/debian"},
		{"second stanza", "Types: deb\nURIs: http://a/ubuntu\nSuites: jammy\nComponents: main\n\n\nTypes: deb\nURIs: http://b/debian\nSuites: bookworm\nComponents: main\n", "http://b/debian"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mirrorFromDeb822(strings.NewReader(tt.text), "bookworm"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDebianMirror(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "sources.list")
	src := filepath.Join(dir, "debian.sources")
	os.WriteFile(list, []byte("# nothing\n"), 0o644)
	os.WriteFile(src, []byte("Types: deb\nURIs: http://from-deb822/debian\nSuites: bookworm\nComponents: main\n"), 0o644)
	old := aptSources
	t.Cleanup(func() { aptSources = old })
	aptSources = func() []string { return []string{list, src} }

	t.Setenv(MirrorEnv, "")
	if m, err := DebianMirror(); err != nil || m != "http://from-deb822/debian" {
		t.Fatalf("DebianMirror() = %q, %v", m, err)
	}
	t.Setenv(MirrorEnv, "http://override/debian/")
	if m, err := DebianMirror(); err != nil || m != "http://override/debian" {
		t.Fatalf("with override: %q, %v", m, err)
	}
	t.Setenv(MirrorEnv, "")
	aptSources = func() []string { return []string{list} }
	if _, err := DebianMirror(); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), MirrorEnv) {
		t.Fatalf("no mirror: want failed precondition naming %s, got %v", MirrorEnv, err)
	}
}

func TestCacheKeys(t *testing.T) {
	frag := []byte("CONFIG_A=y\n")
	k := kernelKey(frag, "6.1.1-1")
	if len(k) != 64 || k != kernelKey(frag, "6.1.1-1") {
		t.Fatalf("kernel key not a stable sha256: %q", k)
	}
	for name, other := range map[string]string{
		"fragment": kernelKey([]byte("CONFIG_A=y\nCONFIG_B=y\n"), "6.1.1-1"),
		"version":  kernelKey(frag, "6.1.1-2"),
	} {
		if other == k {
			t.Errorf("kernel key does not change with the %s", name)
		}
	}

	r := recipes[DefaultImage]
	rk := rootfsKey(r, "http://m/debian")
	if rk != rootfsKey(r, "http://m/debian/") {
		t.Error("rootfs key depends on a trailing slash of the mirror")
	}
	shuffled := r
	shuffled.Packages = append([]string{r.Packages[len(r.Packages)-1]}, r.Packages[:len(r.Packages)-1]...)
	if rk != rootfsKey(shuffled, "http://m/debian") {
		t.Error("rootfs key depends on package order")
	}
	more := r
	more.Packages = append(append([]string(nil), r.Packages...), "vim")
	suite := r
	suite.Suite = "trixie"
	for name, other := range map[string]string{
		"mirror":   rootfsKey(r, "http://other/debian"),
		"packages": rootfsKey(more, "http://m/debian"),
		"suite":    rootfsKey(suite, "http://m/debian"),
	} {
		if other == rk {
			t.Errorf("rootfs key does not change with the %s", name)
		}
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"debian-12", true}, {"a", true}, {"0.x_y-z", true}, {strings.Repeat("a", 63), true},
		{"", false}, {"Debian", false}, {"-x", false}, {".x", false}, {"a/b", false}, {"..", false},
		{"a b", false}, {strings.Repeat("a", 64), false},
	}
	for _, tt := range tests {
		err := ValidateName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ValidateName(%q): error kind %v", tt.name, errdefs.Classify(err))
		}
	}
}

func TestLookupRecipe(t *testing.T) {
	if _, err := LookupRecipe(DefaultImage); err != nil {
		t.Fatal(err)
	}
	_, err := LookupRecipe("alpine")
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), DefaultImage) {
		t.Fatalf("unknown recipe: %v", err)
	}
}

func TestMissingSymbols(t *testing.T) {
	frag := []byte("# comment CONFIG_X=y\nCONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=m\nCONFIG_E=y\n")
	config := []byte("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_E=y\n")
	got := strings.Join(missingSymbols(frag, config), ",")
	if got != "CONFIG_B" {
		t.Fatalf("missing = %q, want CONFIG_B", got)
	}
	if n := len(requiredSymbols(KernelFragment)); n < 50 {
		t.Fatalf("embedded fragment has only %d =y symbols", n)
	}
	for _, s := range []string{"CONFIG_PVH", "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES", "CONFIG_NO_HZ_IDLE", "CONFIG_MEMCG", "CONFIG_SERIO_I8042"} {
		if !strings.Contains(string(KernelFragment), s+"=y\n") {
			t.Errorf("fragment lacks %s=y", s)
		}
	}
}

func TestDebootstrapProgress(t *testing.T) {
	d := &debootstrapProgress{}
	lines := []string{"I: Retrieving InRelease", "I: Retrieving libc6 2.36-9", "I: Validating libc6 2.36-9",
		"I: Retrieving bash 5.2", "I: Extracting bash...", "I: Unpacking required packages...", "I: Unpacking bash...",
		"I: Configuring bash...", "W: something"}
	var got []string
	for _, l := range lines {
		if msg, done, total, ok := d.line(l); ok {
			got = append(got, Progress{Stage: "rootfs", Message: msg, Done: done, Total: total}.String())
		}
	}
	want := []string{"[rootfs] debootstrap: retrieving indexes", "[rootfs] debootstrap: downloading 1",
		"[rootfs] debootstrap: downloading 2", "[rootfs] debootstrap: extracting 1",
		"[rootfs] debootstrap: unpacking required packages", "[rootfs] debootstrap: unpacking 1/2",
		"[rootfs] debootstrap: configuring 1/2"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	p := Progress{Stage: "kernel", Message: "compiling", Done: 1234, Elapsed: 130*time.Second + 300*time.Millisecond}
	if s := p.String(); s != "[kernel] compiling: 1234 objects, 2m10s" {
		t.Fatalf("kernel progress = %q", s)
	}
}

// fakeKernel writes a small file that passes as an ELF vmlinux.
func fakeKernel(t *testing.T, dir string) string {
	p := filepath.Join(dir, "vmlinux")
	data := append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 3000)...)
	data = append(data, "Linux version 6.1.99-hearth (root@build) #1 SMP\x00"...)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// realExt4 makes a small ext4 image with mkfs.ext4 (skips without it).
func realExt4(t *testing.T, dir string, args ...string) string {
	mkfs := sbin("mkfs.ext4")
	if _, err := exec.LookPath(mkfs); err != nil {
		t.Fatal("mkfs.ext4 not installed: scripts/setup-host.sh installs e2fsprogs")
	}
	p := filepath.Join(dir, "rootfs.ext4")
	args = append(append([]string{"-q", "-F"}, args...), p, "8M")
	if out, err := exec.Command(mkfs, args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	return p
}

func TestImportValidation(t *testing.T) {
	dir := t.TempDir()
	kernel := fakeKernel(t, dir)
	rootfs := realExt4(t, dir, "-O", "^has_journal")
	notELF := filepath.Join(dir, "bzImage")
	os.WriteFile(notELF, []byte("MZ not an elf"), 0o644)
	notExt4 := filepath.Join(dir, "zeros.img")
	os.WriteFile(notExt4, make([]byte, 4096), 0o644)

	s := &Store{Root: filepath.Join(dir, "home")}
	ctx := context.Background()
	tests := []struct {
		name, img, kernel, rootfs string
		kind                      error
		msg                       string
	}{
		{"bad name", "Bad", kernel, rootfs, errdefs.ErrInvalidArgument, "image name"},
		{"no kernel file", "x", filepath.Join(dir, "nope"), rootfs, errdefs.ErrInvalidArgument, "no such file"},
		{"kernel not elf", "x", notELF, rootfs, errdefs.ErrInvalidArgument, "not an ELF"},
		{"rootfs not ext4", "x", kernel, notExt4, errdefs.ErrInvalidArgument, "0xEF53"},
		{"missing rootfs arg", "x", kernel, "", errdefs.ErrInvalidArgument, "--rootfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Import(ctx, tt.img, tt.kernel, tt.rootfs)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tt.kind, tt.msg)
			}
		})
	}

	t.Run("needs recovery", func(t *testing.T) {
		debugfs := sbin("debugfs")
		if _, err := exec.LookPath(debugfs); err != nil {
			t.Fatal("debugfs not installed: scripts/setup-host.sh installs e2fsprogs")
		}
		d := t.TempDir()
		dirty := realExt4(t, d)
		if out, err := exec.Command(debugfs, "-w", "-R", "feature needs_recovery", dirty).CombinedOutput(); err != nil {
			t.Fatalf("debugfs: %v: %s", err, out)
		}
		_, err := s.Import(ctx, "dirty", kernel, dirty)
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "e2fsck -fy") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("ok", func(t *testing.T) {
		img, err := s.Import(ctx, "mine", kernel, rootfs)
		if err != nil {
			t.Fatal(err)
		}
		if img.Source != SourceImported || img.KernelVersion != "6.1.99-hearth" || img.RootFSSize != 8<<20 || len(img.RootFSSHA256) != 64 {
			t.Fatalf("imported image: %+v", img)
		}
		if img.Kernel != filepath.Join(s.Root, "images", "mine", "vmlinux") {
			t.Fatalf("kernel path %s", img.Kernel)
		}
		if err := checkExt4Magic(img.RootFS); err != nil {
			t.Fatal(err)
		}
		sum, _, _ := fileSHA256(rootfs)
		if sum != img.RootFSSHA256 {
			t.Fatal("copied rootfs differs")
		}
	})
}

func TestListGetRemove(t *testing.T) {
	dir := t.TempDir()
	kernel := fakeKernel(t, dir)
	rootfs := realExt4(t, dir, "-O", "^has_journal")
	s := &Store{Root: filepath.Join(dir, "home")}
	ctx := context.Background()

	if imgs, err := s.List(); err != nil || len(imgs) != 0 {
		t.Fatalf("empty store: %v, %v", imgs, err)
	}
	_, err := s.Get(DefaultImage)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "hearth image build debian-12") {
		t.Fatalf("Get missing: %v", err)
	}
	for _, n := range []string{"b-img", "a-img"} {
		if _, err := s.Import(ctx, n, kernel, rootfs); err != nil {
			t.Fatal(err)
		}
	}
	// A directory without image.json is not an image.
	os.MkdirAll(filepath.Join(s.Root, "images", "junk"), 0o755)
	imgs, err := s.List()
	if err != nil || len(imgs) != 2 || imgs[0].Name != "a-img" || imgs[1].Name != "b-img" {
		t.Fatalf("List = %+v, %v", imgs, err)
	}
	// Missing file: Get refuses, List skips.
	os.Remove(filepath.Join(s.Root, "images", "b-img", "rootfs.ext4"))
	if _, err := s.Get("b-img"); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "hearth image rm b-img") {
		t.Fatalf("Get incomplete: %v", err)
	}
	if imgs, _ := s.List(); len(imgs) != 1 {
		t.Fatalf("List with incomplete image: %+v", imgs)
	}
	if err := s.Remove("b-img"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("b-img"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Remove twice: %v", err)
	}
	if err := s.Remove("../x"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Remove bad name: %v", err)
	}
	if _, err := s.Get("a-img"); err != nil {
		t.Fatal(err)
	}
}

func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, _ := os.Create(src)
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("tail"), 10<<20)
	f.Close()
	dst := filepath.Join(dir, "dst")
	if err := copySparse(src, dst); err != nil {
		t.Fatal(err)
	}
	a, _, _ := fileSHA256(src)
	b, n, _ := fileSHA256(dst)
	if a != b || n != 10<<20+4 {
		t.Fatalf("copy differs (size %d)", n)
	}
}

func TestRemoveTreeRefusesNothingMounted(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
	if err := removeTree(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("not removed")
	}
}

// TestBuildReal builds the real debian-12 image (minutes). Run with
// HEARTH_TEST_BUILD_IMAGE=1; HEARTH_HOME selects the store (default a temp dir).
func TestBuildReal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real image (minutes): make test runs it, where the image is already cached")
	}
	root := os.Getenv("HEARTH_TEST_HOME")
	if root == "" {
		root = os.Getenv("HEARTH_HOME")
	}
	if root == "" {
		root = t.TempDir()
	}
	s := &Store{Root: root}
	opts := BuildOptions{Progress: func(p Progress) { t.Log(p.String()) }}
	start := time.Now()
	img, err := s.Build(context.Background(), DefaultImage, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built in %s: %+v", time.Since(start), img)
	if err := checkELF(img.Kernel); err != nil {
		t.Fatal(err)
	}
	if err := fsckClean(context.Background(), img.RootFS); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	again, err := s.Build(context.Background(), DefaultImage, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second || again.RootFSSHA256 != img.RootFSSHA256 {
		t.Fatalf("second build took %s (sha %s vs %s)", d, again.RootFSSHA256, img.RootFSSHA256)
	}
}

func TestCleanStale(t *testing.T) {
	cache := t.TempDir()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal("no true(1)")
	}
	dead := cmd.Process.Pid
	b := &builder{cache: cache, log: logger(nil)}
	mk := func(name string) string {
		p := filepath.Join(cache, "tmp", name)
		os.MkdirAll(filepath.Join(p, "sub"), 0o755)
		return p
	}
	gone := mk(fmt.Sprintf("kernel-%d-123", dead))
	mine := mk(fmt.Sprintf("rootfs-%d-456", os.Getpid()))
	odd := mk("something-else")
	b.cleanStale()
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Error("dead build's dir not removed")
	}
	for _, p := range []string{mine, odd} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed", p)
		}
	}
}

func TestRunnerKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	r := &runner{logPath: filepath.Join(dir, "log")}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once bool
	go func() {
		<-started
		cancel()
	}()
	start := time.Now()
	err := r.run(ctx, dir, func(line string) {
		if line == "up" && !once {
			once = true
			close(started)
		}
	}, "sh", "-c", "sleep 100 & echo $! > "+pidFile+"; echo up; wait")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	data, _ := os.ReadFile(pidFile)
	pid := strings.TrimSpace(string(data))
	if pid == "" {
		t.Fatal("no grandchild pid")
	}
	// The grandchild was in the group: it is gone (or a zombie of init).
	// SIGKILL is delivered asynchronously, so on a loaded machine it may
	// still be on its way out when run returns: allow it a few seconds.
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %s still running 5 s after the cancel: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunnerErrorNamesLog(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "build.log")
	f, _ := os.Create(log)
	defer f.Close()
	r := &runner{logPath: log, log: f}
	err := r.run(context.Background(), dir, nil, "sh", "-c", "for i in $(seq 1 30); do echo line$i; done; echo boom >&2; exit 3")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{log, "line30", "boom", "exit status 3"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "line10\n") {
		t.Errorf("error carries more than the tail: %s", msg)
	}
	data, _ := os.ReadFile(log)
	if !strings.Contains(string(data), "line1\n") {
		t.Error("log lacks the full output")
	}
}
