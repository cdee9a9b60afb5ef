package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/fsdiff"
)

// TestDiffStatAndExclude: --stat counts the lines of a modified text file
// and shows binary files as git does; exclude patterns work on diff,
// export and sync push, on the CLI and the SDK.
func TestDiffStatAndExclude(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	seed := t.TempDir()
	writeTree(t, seed, map[string]string{"f.txt": "a\nb\nc\n", "keep/old.txt": "old\n"})
	ws := newWorkspace(t, c, hearth.CreateOptions{Seed: seed})
	sh(t, ws, "sed -i s/b/B/ /workspace/f.txt; mkdir -p /workspace/__pycache__ /workspace/src/__pycache__; "+
		"head -c 100 /dev/urandom > /workspace/__pycache__/x.pyc; printf 'y\\000' > /workspace/src/__pycache__/y.pyc; "+
		"echo log > /workspace/src/run.log; echo keep > /workspace/src/run.txt")

	// --stat: 1 insertion and 1 deletion for f.txt, Bin lines for binaries.
	r := env.Hearth(nil, "workspace", "diff", ws.Info.ID, "--stat")
	if r.Code != 0 {
		t.Fatalf("diff --stat: exit %d %s", r.Code, r.Stderr)
	}
	stat := string(r.Stdout)
	for _, want := range []string{" f.txt ", "| 2 +-", "__pycache__/x.pyc", "| Bin 0 -> 100 bytes", "src/__pycache__/y.pyc", "| Bin 0 -> 2 bytes",
		"5 files changed, 3 insertions(+), 1 deletion(-)"} {
		if !strings.Contains(stat, want) {
			t.Errorf("diff --stat lacks %q:\n%s", want, stat)
		}
	}
	// The JSON agrees with --stat.
	r = env.Hearth(nil, "workspace", "diff", ws.Info.ID, "--json")
	var d fsdiff.Result
	if err := json.Unmarshal(r.Stdout, &d); err != nil {
		t.Fatalf("diff --json: %v %s", err, r.Stderr)
	}
	if d.Summary.Insertions != 3 || d.Summary.Deletions != 1 {
		t.Errorf("json summary %+v", d.Summary)
	}
	// --exclude on the CLI (the acceptance example) and the SDK.
	r = env.Hearth(nil, "workspace", "diff", ws.Info.ID, "--exclude", "__pycache__/", "--exclude", "*.log", "--json")
	if err := json.Unmarshal(r.Stdout, &d); err != nil {
		t.Fatalf("diff --exclude: %v %s", err, r.Stderr)
	}
	if got := diffPaths(&d); !slices.Equal(got, []string{"f.txt", "src/run.txt"}) {
		t.Errorf("diff --exclude __pycache__/ --exclude *.log: %q", got)
	}
	sd, err := ws.Diff(ctx, hearth.DiffOptions{Exclude: []string{"**/__pycache__/**", "!src/__pycache__/y.pyc"}, NoPatch: true})
	if err != nil {
		t.Fatal(err)
	}
	// "dir/**" excludes the contents, not the directory (which is then an
	// added empty directory), so a file inside can be re-included.
	if got := diffPaths(sd); !slices.Equal(got, []string{"__pycache__", "f.txt", "src/__pycache__/y.pyc", "src/run.log", "src/run.txt"}) {
		t.Errorf("SDK diff exclude: %q", got)
	}
	if r := env.Hearth(nil, "workspace", "diff", ws.Info.ID, "--exclude", "[bad"); r.Code != 2 || !strings.Contains(string(r.Stderr), "[bad") {
		t.Errorf("bad pattern: exit %d %s", r.Code, r.Stderr)
	}

	// Export with --exclude, directory and archive.
	out := filepath.Join(t.TempDir(), "out")
	if r := env.Hearth(nil, "workspace", "export", ws.Info.ID, "/workspace", out, "--exclude", "__pycache__/", "--exclude", "/keep"); r.Code != 0 {
		t.Fatalf("export --exclude: exit %d %s", r.Code, r.Stderr)
	}
	if got := treeOf(t, out); !slices.Equal(got, []string{"f.txt", "src", "src/run.log", "src/run.txt"}) {
		t.Errorf("exported with excludes: %q", got)
	}
	arch := filepath.Join(t.TempDir(), "w.tar")
	if _, err := ws.Export(ctx, "src", arch, hearth.ExportOptions{Archive: true, Exclude: []string{"*.log", "__pycache__"}}); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("tar", "-tf", arch).Output(); err != nil || strings.TrimSpace(string(b)) != "run.txt" {
		t.Errorf("archive with excludes: %q %v", b, err)
	}

	// sync push --exclude: excluded paths are not sent, and --delete keeps
	// the guest's copies of them.
	push := t.TempDir()
	writeTree(t, push, map[string]string{"f.txt": "pushed\n", "node_modules/m/index.js": "x\n", "app.log": "l\n"})
	os.Symlink("/usr/bin/python3", filepath.Join(push, "node_modules/py")) // refused unless excluded
	if _, err := ws.SyncPush(ctx, push, hearth.SyncOptions{}); err == nil || !strings.Contains(err.Error(), "node_modules/py") {
		t.Errorf("push of an absolute symlink: %v", err)
	}
	r = env.Hearth(nil, "workspace", "sync", "push", ws.Info.ID, push, "--delete", "--exclude", "node_modules/", "--exclude", "*.log", "--json")
	if r.Code != 0 {
		t.Fatalf("sync push --exclude: exit %d %s", r.Code, r.Stderr)
	}
	var sr hearth.SyncResult
	json.Unmarshal(r.Stdout, &sr)
	if sr.Sent != 1 || sr.Scanned != 1 {
		t.Errorf("sync result %+v", sr)
	}
	got := sh(t, ws, "cd /workspace && find . -mindepth 1 | sort | tr '\\n' ' '; cat f.txt").Stdout
	// Everything else was deleted, except what the patterns exclude:
	// src/run.log, and src, which holds it.
	if want := "./f.txt ./src ./src/run.log pushed\n"; got != want {
		t.Errorf("guest after push --delete --exclude: %q, want %q", got, want)
	}
}

// TestExportModesAndSymlinks: an export drops setuid, setgid, sticky and
// world-write bits a guest planted unless preserve_mode, and never writes
// through the guest's symlinks.
func TestExportModesAndSymlinks(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	ws := newWorkspace(t, c, hearth.CreateOptions{})
	outside := t.TempDir()
	sh(t, ws, "mkdir -p /workspace/m/tmp /workspace/m/sg && cd /workspace/m && echo s > suid && chmod 4755 suid && echo g > sgid && chmod 2755 sgid && "+
		"echo w > ww && chmod 666 ww && chmod 1777 tmp && chmod 2775 sg && "+
		"ln -s "+outside+" out && ln -s ../../../../../.."+outside+" rel && ln -s /etc/passwd pw && ln -s out/planted viaout")
	modes := func(root string) map[string]uint32 {
		got := map[string]uint32{}
		for _, n := range []string{"suid", "sgid", "ww", "tmp", "sg"} {
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(root, n), &st); err != nil {
				t.Fatal(err)
			}
			got[n] = st.Mode & 0o7777
		}
		return got
	}
	dest := filepath.Join(t.TempDir(), "plain")
	res, err := ws.Export(ctx, "m", dest, hearth.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{"suid": 0o755, "sgid": 0o755, "ww": 0o664, "tmp": 0o775, "sg": 0o775}
	if got := modes(dest); !mapsEqual(got, want) {
		t.Errorf("default export modes %s, want %s", octals(got), octals(want))
	}
	kept := filepath.Join(t.TempDir(), "kept")
	if _, err := ws.Export(ctx, "m", kept, hearth.ExportOptions{PreserveMode: true}); err != nil {
		t.Fatal(err)
	}
	want = map[string]uint32{"suid": 0o4755, "sgid": 0o2755, "ww": 0o666, "tmp": 0o1777, "sg": 0o2775}
	if got := modes(kept); !mapsEqual(got, want) {
		t.Errorf("preserve_mode export modes %s, want %s", octals(got), octals(want))
	}
	// The CLI flag.
	cli := filepath.Join(t.TempDir(), "cli")
	if r := env.Hearth(nil, "workspace", "export", ws.Info.ID, "m", cli, "--preserve-mode"); r.Code != 0 || modes(cli)["suid"] != 0o4755 {
		t.Errorf("--preserve-mode: exit %d %s", r.Code, r.Stderr)
	}
	// The symlinks came as symlinks, and nothing was written through them:
	// not by the export, nor by a forced export over the tree holding them.
	for _, l := range []string{"out", "rel", "pw", "viaout"} {
		if fi, err := os.Lstat(filepath.Join(dest, l)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: %v %v", l, fi, err)
		}
	}
	if len(res.Warnings) == 0 {
		t.Errorf("no warning for symlinks pointing out: %+v", res)
	}
	sh(t, ws, "echo planted > /workspace/m/planted-here && rm /workspace/m/ww && ln -s "+outside+"/ww /workspace/m/ww")
	if _, err := ws.Export(ctx, "m", dest, hearth.ExportOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Export(ctx, "m/out", filepath.Join(t.TempDir(), "root-link"), hearth.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("export wrote through a guest symlink into %s: %v", outside, ents)
	}
}

func mapsEqual(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func diffPaths(d *fsdiff.Result) []string {
	var p []string
	for _, f := range d.Files {
		p = append(p, f.Path)
	}
	return p
}

// treeOf lists a host tree's relative paths, sorted.
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(root, p); rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestDiffBoundedMemory: a diff of a change far larger than its patch
// budget keeps the host process's memory bounded, with the right line
// counts for every file and the patches past the budget marked.
func TestDiffBoundedMemory(t *testing.T) {
	c := sdk(t)
	ws := newWorkspace(t, c, hearth.CreateOptions{})
	// 120 text files of 512 KiB (60 MiB), 8,193 lines each: several times
	// the patch budget. Writing them is slow under emulation.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	gen := "mkdir -p /workspace/big && base64 -w 63 /dev/urandom | head -c 524288 > /tmp/t && cd /workspace/big && " +
		"for i in $(seq 120); do { echo $i; head -c 524277 /tmp/t; echo; } > f$i.txt; done"
	if r, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"sh", "-c", gen}, Capture: true}); err != nil || r.ExitCode != 0 {
		t.Fatalf("writing the files: %v %+v", err, r)
	}
	cmd := exec.Command(env.Bin, "workspace", "diff", ws.Info.ID, "--json")
	cmd.Env = env.Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("diff: %v", err)
	}
	rssKiB := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	var d fsdiff.Result
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	omitted := 0
	for _, f := range d.Files {
		if f.Insertions != 8193 {
			t.Fatalf("%s: %d insertions, want 8193", f.Path, f.Insertions)
		}
		if f.PatchOmitted == fsdiff.OmittedBudget {
			omitted++
		}
	}
	t.Logf("diff of 120 files of 512 KiB: peak RSS %d KiB, %d bytes of JSON, %d patches left out for the budget", rssKiB, len(out), omitted)
	if d.Summary.Files != 120 || omitted == 0 || len(out) > fsdiff.DefaultMaxTotalPatchBytes*3/2 {
		t.Errorf("summary %+v, %d omitted, %d bytes", d.Summary, omitted, len(out))
	}
	// Loading every file at once, as diff did, peaks near 450 MiB here
	// (7.5 GiB for 2,000 such files).
	if rssKiB > 200<<10 {
		t.Errorf("diff peaked at %d KiB", rssKiB)
	}
}

func octals(m map[string]uint32) string {
	var s []string
	for k, v := range m {
		s = append(s, fmt.Sprintf("%s=%04o", k, v))
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}
