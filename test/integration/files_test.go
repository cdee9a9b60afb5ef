package integration

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/fsdiff"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSeedDiffSyncExport walks the create -> sync -> diff -> export
// workflow on one workspace, including what must not happen.
func TestSeedDiffSyncExport(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	seed := t.TempDir()
	writeTree(t, seed, map[string]string{"src/keep.txt": "a\nb\nc\n", "src/edit.txt": "old\n", "gone.txt": "bye\n", "blob.bin": "\x00\x01bin"})
	os.Symlink("src/keep.txt", filepath.Join(seed, "link"))
	os.Mkdir(filepath.Join(seed, "empty"), 0o700)
	os.Chmod(filepath.Join(seed, "src/keep.txt"), 0o600)
	ws := newWorkspace(t, c, hearth.CreateOptions{Seed: seed})

	// Seed kept content, modes, symlinks and empty directories.
	r := sh(t, ws, "cat /workspace/src/keep.txt; readlink /workspace/link; stat -c %a /workspace/src/keep.txt /workspace/empty")
	if r.Stdout != "a\nb\nc\nsrc/keep.txt\n600\n700\n" {
		t.Fatalf("seeded tree: %q", r.Stdout)
	}
	d, err := ws.Diff(ctx, hearth.DiffOptions{})
	if err != nil || len(d.Files) != 0 {
		t.Fatalf("fresh diff: %+v %v", d, err)
	}
	// A shell open while diff/sync/export run is not disturbed.
	shell, err := ws.ShellOpen(ctx, hearth.ShellOpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ws.ShellWrite(ctx, shell.ID, []byte("export MARK=kept\n"))

	sh(t, ws, "printf 'new\\n' > /workspace/src/edit.txt; rm /workspace/gone.txt; echo hi > /workspace/added.txt; chmod 755 /workspace/src/keep.txt; ln -sfn /etc /workspace/link; rm /workspace/blob.bin; mkdir /workspace/blob.bin")
	push := t.TempDir()
	writeTree(t, push, map[string]string{"pushed.txt": "pushed\n", "sub/deep.txt": "deep\n"})
	s1, err := ws.SyncPush(ctx, push, hearth.SyncOptions{})
	if err != nil || s1.Sent != 3 {
		t.Fatalf("first push: %+v %v", s1, err)
	}
	s2, err := ws.SyncPush(ctx, push, hearth.SyncOptions{})
	if err != nil || s2.Sent != 0 {
		t.Fatalf("second push of an unchanged tree sent %+v %v", s2, err)
	}
	d, err = ws.Diff(ctx, hearth.DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]fsdiff.File{}
	for _, f := range d.Files {
		got[f.Path] = f
	}
	want := map[string]fsdiff.Status{"src/edit.txt": "modified", "gone.txt": "deleted", "added.txt": "added", "pushed.txt": "added",
		"sub/deep.txt": "added", "src/keep.txt": "mode_changed", "link": "modified", "blob.bin": "type_changed"}
	for p, st := range want {
		if got[p].Status != st {
			t.Errorf("%s: status %q, want %q (%+v)", p, got[p].Status, st, got[p])
		}
	}
	if len(got) != len(want) {
		t.Errorf("diff has %d files, want %d: %+v", len(got), len(want), d.Files)
	}
	if p := got["src/edit.txt"].Patch; !strings.Contains(p, "-old") || !strings.Contains(p, "+new") {
		t.Errorf("patch: %q", p)
	}
	if d.TotalFiles != len(want) || d.NextOffset != 0 {
		t.Errorf("one page: total_files %d next_offset %d", d.TotalFiles, d.NextOffset)
	}
	// Pages of 3: the same files in the same order, next_offset chaining.
	var paged []string
	for off, pages := 0, 0; ; pages++ {
		p, err := ws.Diff(ctx, hearth.DiffOptions{Offset: off, Limit: 3})
		if err != nil || len(p.Files) > 3 || p.TotalFiles != len(want) || pages > len(want) {
			t.Fatalf("page at %d: %+v %v", off, p, err)
		}
		for _, f := range p.Files {
			paged = append(paged, f.Path)
		}
		if p.NextOffset == 0 {
			break
		}
		off = p.NextOffset
	}
	var whole []string
	for _, f := range d.Files {
		whole = append(whole, f.Path)
	}
	if strings.Join(paged, ",") != strings.Join(whole, ",") {
		t.Errorf("pages give %v, one diff %v", paged, whole)
	}
	// Paths filter and the git-like renderings.
	d2, _ := ws.Diff(ctx, hearth.DiffOptions{Paths: []string{"src"}})
	if len(d2.Files) != 2 {
		t.Errorf("diff src: %+v", d2.Files)
	}
	r2 := env.Hearth(nil, "workspace", "diff", ws.Info.ID, "--stat")
	if !strings.Contains(string(r2.Stdout), "files changed") {
		t.Errorf("diff --stat: %s", r2.Stdout)
	}
	if r3 := env.Hearth(nil, "workspace", "diff", ws.Info.ID, "/etc"); r3.Code != 2 {
		t.Errorf("diff outside /workspace: exit %d %s", r3.Code, r3.Stderr)
	}

	// --delete removes what is gone from the source.
	os.Remove(filepath.Join(push, "sub/deep.txt"))
	s3, err := ws.SyncPush(ctx, push, hearth.SyncOptions{Dest: "/workspace/sub", Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = s3
	if r := sh(t, ws, "test -e /workspace/sub/deep.txt && echo still-there; test -e /workspace/src/keep.txt && echo kept"); r.Stdout != "kept\n" {
		t.Errorf("after --delete into sub: %q", r.Stdout)
	}

	// Export a directory, refuse a non-empty destination, force replaces it.
	out := filepath.Join(t.TempDir(), "out")
	if _, err := ws.Export(ctx, "src", out, hearth.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "edit.txt")); string(b) != "new\n" {
		t.Errorf("exported edit.txt: %q", b)
	}
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "keep.me"), []byte("precious"), 0o644)
	if _, err := ws.Export(ctx, "src", full, hearth.ExportOptions{}); !errors.Is(err, hearth.ErrAlreadyExists) {
		t.Errorf("export into a non-empty dir: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "keep.me")); string(b) != "precious" {
		t.Error("export damaged an existing file")
	}
	if _, err := ws.Export(ctx, "src", full, hearth.ExportOptions{Force: true}); err != nil {
		t.Errorf("export --force: %v", err)
	}
	if _, err := ws.Export(ctx, "/etc/passwd", t.TempDir()+"/x", hearth.ExportOptions{}); !errors.Is(err, hearth.ErrInvalidArgument) {
		t.Errorf("export outside /workspace: %v", err)
	}
	// Archive export.
	arch := filepath.Join(t.TempDir(), "src.tar.gz")
	if _, err := ws.Export(ctx, "/workspace/src", arch, hearth.ExportOptions{Archive: true}); err != nil {
		t.Errorf("archive export: %v", err)
	}
	// A hostile guest plants symlinks to host paths and a device node.
	outside := t.TempDir()
	sh(t, ws, "mkdir -p /workspace/evil && ln -s "+outside+" /workspace/evil/ln && ln -s /etc/passwd /workspace/evil/pw && mknod /workspace/evil/null c 1 3 && echo x > /workspace/evil/file")
	ev := filepath.Join(t.TempDir(), "ev")
	res, err := ws.Export(ctx, "evil", ev, hearth.ExportOptions{})
	if err != nil {
		t.Fatalf("export evil: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatal("export wrote through a guest symlink")
	}
	if l, _ := os.Readlink(filepath.Join(ev, "ln")); l != outside {
		t.Errorf("symlink not kept as a symlink: %q", l)
	}
	if len(res.Warnings) == 0 {
		t.Errorf("device node skipped without a warning: %+v", res)
	}
	// None of it is in the command log, and the shell kept its state.
	logs, _ := ws.Logs(ctx, hearth.LogsOptions{})
	for _, l := range logs {
		if strings.Contains(strings.Join(l.Argv, " "), "MARK") {
			t.Error("shell input in the command log")
		}
	}
	ws.ShellWrite(ctx, shell.ID, []byte("echo mark=$MARK\n"))
	if !waitShell(t, ws, shell.ID, "mark=kept") {
		t.Error("shell state disturbed by diff/sync/export")
	}
	// The baseline is immutable: a restart does not change what diff compares with.
	if _, err := ws.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := ws.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	d3, err := ws.Diff(ctx, hearth.DiffOptions{NoPatch: true})
	if err != nil {
		t.Fatalf("diff after restart: %v", err)
	}
	if d3.Summary.Files < len(want) {
		t.Errorf("after restart the diff shrank: %+v", d3.Summary)
	}
}

// waitShell reads a shell until want appears (or 30 s pass).
func waitShell(t *testing.T, ws *hearth.Workspace, id, want string) bool {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var all strings.Builder
	for time.Now().Before(deadline) {
		r, err := ws.ShellRead(context.Background(), id, hearth.ShellReadOptions{Wait: 2 * time.Second, Plain: true})
		if err != nil {
			t.Fatalf("shell read: %v", err)
		}
		all.WriteString(r.Output)
		if strings.Contains(all.String(), want) {
			return true
		}
	}
	t.Logf("shell output: %q", all.String())
	return false
}

// TestHostileSeeds: archives that try to escape are rejected with the
// entry named, before any VM boots and with nothing written anywhere.
func TestHostileSeeds(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, hdrs ...*tar.Header) string {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hdrs {
			if h.Typeflag == tar.TypeReg {
				h.Size = 2
			}
			tw.WriteHeader(h)
			if h.Typeflag == tar.TypeReg {
				tw.Write([]byte("x\n"))
			}
		}
		tw.Close()
		p := filepath.Join(dir, name)
		os.WriteFile(p, b.Bytes(), 0o644)
		return p
	}
	reg := func(n string) *tar.Header { return &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644} }
	cases := map[string]struct {
		path, entry string
	}{
		"dotdot":       {mk("a.tar", reg("ok.txt"), reg("../../../../tmp/hearth-escape.txt")), "hearth-escape"},
		"absolute":     {mk("b.tar", reg("/etc/hearth-abs.txt")), "hearth-abs"},
		"symlink-out":  {mk("c.tar", &tar.Header{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, reg("evil/passwd")), "evil"},
		"hardlink-out": {mk("d.tar", &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}), "h"},
	}
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("../zip-escape.txt")
	w.Write([]byte("x"))
	zw.Close()
	zp := filepath.Join(dir, "e.zip")
	os.WriteFile(zp, zb.Bytes(), 0o644)
	cases["zip-dotdot"] = struct{ path, entry string }{zp, "zip-escape"}
	before := len(listWorkspaces(t))
	for name, tc := range cases {
		r := env.Hearth(nil, "workspace", "create", "--seed", tc.path, "--json")
		if r.Code == 0 || !strings.Contains(string(r.Stderr), tc.entry) {
			t.Errorf("%s: exit %d, stderr %q (want the entry %q named)", name, r.Code, r.Stderr, tc.entry)
		}
	}
	for _, p := range []string{"/tmp/hearth-escape.txt", "/etc/hearth-abs.txt", "/zip-escape.txt"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s written on the host", p)
		}
	}
	if r := env.Hearth(nil, "workspace", "create", "--seed", "/no/such/seed"); r.Code != 3 || !strings.Contains(string(r.Stderr), "does not exist") {
		t.Errorf("missing seed: exit %d %s", r.Code, r.Stderr)
	}
	if after := len(listWorkspaces(t)); after != before {
		t.Errorf("rejected seeds left workspaces behind: %d before, %d after", before, after)
	}
}

func listWorkspaces(t *testing.T) []json.RawMessage {
	r := env.Hearth(nil, "workspace", "list", "--json")
	var l struct{ Workspaces []json.RawMessage }
	json.Unmarshal(r.Stdout, &l)
	return l.Workspaces
}
