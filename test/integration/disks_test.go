package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
)

// guestListing is what the guest itself shows of a directory: one line
// per entry, "name type mode size target" (find -printf), sizes of
// directories left out.
func guestListing(t *testing.T, ws *hearth.Workspace, dir string) string {
	t.Helper()
	r := sh(t, ws, "find "+dir+" -mindepth 1 -maxdepth 1 -printf '%f %y %m %s %l\\n' | sort")
	if r.ExitCode != 0 {
		t.Fatalf("find %s: %s", dir, r.Stderr)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		f := strings.SplitN(l, " ", 5)
		if len(f) >= 4 && f[1] == "d" {
			f[3] = "-"
		}
		out = append(out, strings.TrimRight(strings.Join(f, " "), " "))
	}
	return strings.Join(out, "\n")
}

// hostListing renders entries from files_list like guestListing.
func hostListing(es []hearth.FileEntry) string {
	var out []string
	for _, e := range es {
		y := map[string]string{"file": "f", "dir": "d", "symlink": "l"}[e.Type]
		size := fmt.Sprint(e.Size)
		if e.Type == "dir" {
			size = "-"
		}
		mode := strings.TrimLeft(e.Mode, "0")
		if mode == "" {
			mode = "0"
		}
		out = append(out, strings.TrimRight(fmt.Sprintf("%s %s %s %s %s", e.Name, y, mode, size, e.Target), " "))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestOfflineFilesMatchGuest: after the guest deletes an image file,
// replaces one, makes an opaque directory and writes /workspace, a stopped
// workspace's files ls/cat/get show exactly what the guest showed, without
// booting it; a running one shows the same through its agent.
func TestOfflineFilesMatchGuest(t *testing.T) {
	c := sdk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ws := newWorkspace(t, c, hearth.CreateOptions{})
	sh(t, ws, `set -e
rm /etc/issue
echo changed > /etc/motd
rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo only > /etc/apt/apt.conf.d/only
rm -rf /usr/share/doc/apt
echo offline-ok > /workspace/o.txt
ln -s o.txt /workspace/l
ln -s /etc/motd /workspace/abs
printf '#!/bin/sh\n' > /workspace/run.sh && chmod 0750 /workspace/run.sh
mkdir -p /workspace/d/e && chmod 0711 /workspace/d
head -c 100000000 /dev/urandom > /workspace/big.bin
sync`)
	sum := strings.Fields(sh(t, ws, "sha256sum /workspace/big.bin").Stdout)[0]
	dirs := []string{"/etc", "/etc/apt/apt.conf.d", "/usr/share/doc", "/workspace", "/workspace/d"}
	want := map[string]string{}
	for _, d := range dirs {
		want[d] = guestListing(t, ws, d)
	}
	if strings.Contains(want["/etc"], "issue ") || !strings.Contains(want["/etc"], "motd f") {
		t.Fatalf("the guest's own /etc is not as arranged:\n%s", want["/etc"])
	}
	// Running: through the agent, the same.
	for _, d := range dirs {
		l, err := ws.FilesList(ctx, d)
		if err != nil {
			t.Fatalf("running files ls %s: %v", d, err)
		}
		if got := hostListing(l.Entries); got != want[d] {
			t.Errorf("running files ls %s:\n%s\nguest shows:\n%s", d, got, want[d])
		}
	}
	cats := map[string]string{"/etc/motd": "changed\n", "/workspace/o.txt": "offline-ok\n", "/workspace/l": "offline-ok\n",
		"/workspace/abs": "changed\n", "o.txt": "offline-ok\n", "/etc/apt/apt.conf.d/only": "only\n"}
	for p, body := range cats {
		var b bytes.Buffer
		if _, err := ws.FilesCat(ctx, p, 0, 0, &b); err != nil || b.String() != body {
			t.Errorf("running files cat %s = %q, %v; want %q", p, b.String(), err, body)
		}
	}
	if _, err := ws.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Stopped: from the disks, nothing boots.
	for _, d := range dirs {
		l, err := ws.FilesList(ctx, d)
		if err != nil {
			t.Fatalf("stopped files ls %s: %v", d, err)
		}
		if l.Source != api.FilesFromDisk || len(l.Warnings) != 0 {
			t.Errorf("stopped files ls %s: source %s, warnings %q", d, l.Source, l.Warnings)
		}
		if got := hostListing(l.Entries); got != want[d] {
			t.Errorf("stopped files ls %s:\n%s\nguest showed:\n%s", d, got, want[d])
		}
	}
	for p, body := range cats {
		var b bytes.Buffer
		if _, err := ws.FilesCat(ctx, p, 0, 0, &b); err != nil || b.String() != body {
			t.Errorf("files cat %s = %q, %v; want %q", p, b.String(), err, body)
		}
	}
	for _, p := range []string{"/etc/issue", "/usr/share/doc/apt/copyright"} {
		if _, err := ws.FilesCat(ctx, p, 0, 0, io.Discard); !errors.Is(err, hearth.ErrNotFound) {
			t.Errorf("files cat of deleted %s: %v, want not found", p, err)
		}
	}
	if _, err := ws.FilesList(ctx, "/../etc"); !errors.Is(err, hearth.ErrInvalidArgument) {
		t.Errorf("a path leaving the workspace: %v", err)
	}
	dest := filepath.Join(t.TempDir(), "big.bin")
	start := time.Now()
	r, err := ws.FilesGet(ctx, "/workspace/big.bin", dest, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("files get of 100 MB from the stopped workspace: %v", time.Since(start))
	if r.Source != api.FilesFromDisk || r.Bytes != 100000000 {
		t.Errorf("files get: %+v", r)
	}
	f, _ := os.Open(dest)
	h := sha256.New()
	io.Copy(h, f)
	f.Close()
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		t.Errorf("files get checksum %s, guest's %s", got, sum)
	}
	if _, err := ws.FilesGet(ctx, "/workspace/o.txt", dest, false); !errors.Is(err, hearth.ErrInvalidArgument) {
		t.Errorf("files get onto an existing file without force: %v", err)
	}
	dd := filepath.Join(t.TempDir(), "ws")
	if r, err := ws.FilesGet(ctx, "/workspace/d", dd, false); err != nil || r.Dirs != 1 {
		t.Errorf("files get of a directory: %+v %v", r, err)
	}
	info, err := ws.Show(ctx)
	if err != nil || info.State != api.StateStopped {
		t.Fatalf("files commands booted the workspace: %+v %v", info, err)
	}
}

// TestDataDisks: a disk filled from a host directory reads the same in two
// workspaces attached read-only; a writable attach is exclusive and
// survives stop/start; a write made in one workspace is read in another
// after detach and attach, and on the host; a corrupted disk gives a clear
// error.
func TestDataDisks(t *testing.T) {
	c := sdk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	src := t.TempDir()
	writeTree(t, src, map[string]string{"sub/x.txt": "shared-bytes\n"})
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644)
	name := fmt.Sprintf("it-disk-%d", time.Now().UnixNano()%100000)
	if _, err := c.CreateDisk(ctx, hearth.DiskCreateOptions{Name: name, Size: 64 << 20, From: src}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteDisk(context.Background(), name) })
	ro := []hearth.DiskAttachOptions{{Disk: name, Path: "/mnt/d", ReadOnly: true}}
	a := newWorkspace(t, c, hearth.CreateOptions{Disks: ro})
	b := newWorkspace(t, c, hearth.CreateOptions{Disks: ro})
	bigSum := fmt.Sprintf("%x", sha256.Sum256(big))
	for _, ws := range []*hearth.Workspace{a, b} {
		r := sh(t, ws, "cat /mnt/d/sub/x.txt; sha256sum /mnt/d/big.bin | cut -d' ' -f1; echo no > /mnt/d/w 2>/dev/null && echo WROTE")
		if r.Stdout != "shared-bytes\n"+bigSum+"\n" {
			t.Errorf("%s reads %q", ws.Info.Name, r.Stdout)
		}
	}
	for _, ws := range []*hearth.Workspace{a, b} {
		if _, err := ws.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := ws.DetachDisk(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.AttachDisk(ctx, hearth.DiskAttachOptions{Disk: name, Path: "/mnt/d"}); err != nil {
		t.Fatal(err)
	}
	_, err := b.AttachDisk(ctx, hearth.DiskAttachOptions{Disk: name, Path: "/mnt/d", ReadOnly: true})
	if !errors.Is(err, hearth.ErrConflict) || !strings.Contains(err.Error(), a.Info.Name) {
		t.Fatalf("attach while writable elsewhere: %v, want a conflict naming %s", err, a.Info.Name)
	}
	if _, err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r := sh(t, a, "echo from-a > /mnt/d/new.txt && ln -s /etc/hostname /mnt/d/esc && sync && cat /mnt/d/new.txt"); r.Stdout != "from-a\n" {
		t.Fatalf("write in a: %+v", r)
	}
	// While a runs, the disk is read through a's agent, confined to it.
	var out bytes.Buffer
	if _, err := c.DiskFilesCat(ctx, name, "/new.txt", 0, 0, &out); err != nil || out.String() != "from-a\n" {
		t.Errorf("disk files cat while attached to a running workspace: %q %v", out.String(), err)
	}
	got := filepath.Join(t.TempDir(), "new.txt")
	if r, err := c.DiskFilesGet(ctx, name, "/new.txt", got, false); err != nil || r.Source != api.FilesFromGuest {
		t.Errorf("disk files get while attached to a running workspace: %+v %v", r, err)
	} else if b, _ := os.ReadFile(got); string(b) != "from-a\n" {
		t.Errorf("disk files get wrote %q", b)
	}
	if _, err := c.DiskFilesCat(ctx, name, "/esc", 0, 0, io.Discard); !errors.Is(err, hearth.ErrInvalidArgument) {
		t.Errorf("a symlink out of the disk, read through the guest: %v", err)
	}
	// Attachments survive stop and start.
	a.Stop(ctx)
	if _, err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r := sh(t, a, "cat /mnt/d/new.txt"); r.Stdout != "from-a\n" {
		t.Errorf("after restart: %q", r.Stdout)
	}
	if info, _ := a.Show(ctx); len(info.Disks) != 1 || info.Disks[0].Disk != name || info.Disks[0].ReadOnly {
		t.Errorf("show lists %+v", info.Disks)
	}
	a.Stop(ctx)
	if _, err := a.DetachDisk(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AttachDisk(ctx, hearth.DiskAttachOptions{Disk: name, Path: "/mnt/d"}); err != nil {
		t.Fatal(err)
	}
	// b is stopped: its files view shows the disk at its path, offline.
	out.Reset()
	if _, err := b.FilesCat(ctx, "/mnt/d/new.txt", 0, 0, &out); err != nil || out.String() != "from-a\n" {
		t.Errorf("offline read through b's view: %q %v", out.String(), err)
	}
	if _, err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r := sh(t, b, "cat /mnt/d/new.txt"); r.Stdout != "from-a\n" {
		t.Errorf("b reads %q", r.Stdout)
	}
	b.Stop(ctx)
	if chk, err := c.CheckDisk(ctx, name, false); err != nil || !chk.Clean {
		t.Errorf("check after use: %+v %v", chk, err)
	}
	// A corrupted disk: a clear error, no crash.
	if _, err := b.DetachDisk(ctx, name); err != nil {
		t.Fatal(err)
	}
	d, err := c.Disk(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(env.Home, "disks", d.Name, "disk.ext4")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(make([]byte, 1<<20), 2048)
	f.Close()
	if _, err := c.DiskFilesList(ctx, name, "/sub"); err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("ls of a corrupted disk: %v", err)
	}
}
