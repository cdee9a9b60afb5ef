package fsdiff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func lines(n int, f func(i int) string) string {
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		sb.WriteString(f(i) + "\n")
	}
	return sb.String()
}

// gitHunks returns the hunk part (from the first "@@") of
// `git diff --no-index` between old and new.
func gitHunks(t *testing.T, old, new string) string {
	t.Helper()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte(old), 0o644)
	os.WriteFile(b, []byte(new), 0o644)
	cmd := exec.Command("git", "-c", "diff.algorithm=myers", "diff", "--no-index", "--no-color", "--no-ext-diff", a, b)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("git diff unavailable: %v", err)
	}
	return hunks(string(out))
}

func hunks(p string) string {
	if i := strings.Index(p, "@@"); i >= 0 {
		return p[i:]
	}
	return ""
}

func TestUnifiedDiffMatchesGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git not installed: scripts/setup-host.sh installs it")
	}
	long := lines(40, func(i int) string { return fmt.Sprintf("line %d", i) })
	tests := []struct{ name, old, new string }{
		{"small edit", "a\nb\nc\n", "a\nB\nc\n"},
		{"replace only line", "old\n", "new\n"},
		{"append", "a\nb\n", "a\nb\nc\n"},
		{"no newline at end", "a\nb", "a\nc"},
		{"newline added at end", "a\nb", "a\nb\n"},
		{"delete all", "a\nb\n", ""},
		{"from empty", "", "x\ny\n"},
		{"two hunks", long, strings.Replace(strings.Replace(long, "line 5\n", "five\n", 1), "line 35\n", "", 1)},
		{"merged hunks", long, strings.Replace(strings.Replace(long, "line 10\n", "ten\n", 1), "line 15\n", "fifteen\n", 1)},
		{"function context", "func a() {\n" + long + "}\n", "func a() {\n" + strings.Replace(long, "line 30\n", "thirty\n", 1) + "}\n"},
		{"insert function (indent heuristic)", "func a() {\n\tx()\n}\n\nfunc c() {\n\tz()\n}\n",
			"func a() {\n\tx()\n}\n\nfunc b() {\n\ty()\n}\n\nfunc c() {\n\tz()\n}\n"},
		{"nested block added", "if a {\n\tfoo()\n}\nbar()\n", "if a {\n\tfoo()\n}\nif b {\n\tfoo()\n}\nbar()\n"},
		{"insert middle", long, strings.Replace(long, "line 20\n", "line 20\nnew a\nnew b\n", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			patch, ins, del := UnifiedDiff("f.txt", []byte(tt.old), []byte(tt.new), 3)
			if want := gitHunks(t, tt.old, tt.new); hunks(patch) != want {
				t.Fatalf("hunks differ from git\n--- ours:\n%s\n--- git:\n%s", hunks(patch), want)
			}
			var gi, gd int
			for _, l := range strings.Split(hunks(patch), "\n") {
				if strings.HasPrefix(l, "+") {
					gi++
				} else if strings.HasPrefix(l, "-") {
					gd++
				}
			}
			if ins != gi || del != gd {
				t.Errorf("counts = +%d -%d, patch has +%d -%d", ins, del, gi, gd)
			}
			if !strings.HasPrefix(patch, "--- a/f.txt\n+++ b/f.txt\n") {
				t.Errorf("missing headers:\n%s", patch)
			}
		})
	}
}

func TestUnifiedDiffCostBound(t *testing.T) {
	a := lines(5000, func(i int) string { return fmt.Sprintf("a%d", i) })
	b := lines(5000, func(i int) string { return fmt.Sprintf("b%d", i) })
	patch, ins, del := UnifiedDiff("big", []byte(a), []byte(b), 3)
	if ins != 5000 || del != 5000 || !strings.Contains(patch, "@@ -1,5000 +1,5000 @@") {
		t.Fatalf("ins=%d del=%d patch head %q", ins, del, patch[:min(80, len(patch))])
	}
	if p, _, _ := UnifiedDiff("same", []byte(a), []byte(a), 3); p != "" {
		t.Fatalf("identical inputs gave a patch")
	}
}

func TestIsBinary(t *testing.T) {
	tests := []struct {
		in   []byte
		want bool
	}{
		{[]byte("hello\n"), false},
		{[]byte("héllo ✓\n"), false},
		{[]byte{}, false},
		{[]byte("\x00\x01\x02binary"), true},
		{[]byte("latin1 \xe9\n"), true},
		{append(bytes.Repeat([]byte("a"), 9000), 0), false}, // NUL after 8000 bytes, valid UTF-8
	}
	for i, tt := range tests {
		if got := IsBinary(tt.in); got != tt.want {
			t.Errorf("%d: IsBinary = %v, want %v", i, got, tt.want)
		}
	}
}

func TestBuildAndFormat(t *testing.T) {
	base := []me{file("blob.bin", 0o644, 4, 1, "b1"), file("edit.txt", 0o644, 4, 1, "e1"), file("gone.txt", 0o644, 4, 1, "g1"),
		file("keep.txt", 0o644, 6, 1, "k1"), file("huge.log", 0o644, 2<<20, 1, "h1"), link("link", "keep.txt")}
	live := []me{file("added.txt", 0o644, 3, 2, ""), file("blob.bin", 0o644, 5, 2, ""), file("edit.txt", 0o644, 4, 2, "e2"),
		file("huge.log", 0o644, 2<<20+1, 2, ""), file("keep.txt", 0o755, 6, 1, ""), link("link", "edit.txt")}
	content := map[Side]map[string]string{
		Old: {"blob.bin": "\x00\x01\x02\x03", "edit.txt": "old\n", "gone.txt": "bye\n"},
		New: {"blob.bin": "\x00\x01\x02\x03\x04", "edit.txt": "new\n", "added.txt": "hi\n"},
	}
	load := func(_ context.Context, s Side, p string, _ int64) ([]byte, error) {
		c, ok := content[s][p]
		if !ok {
			return nil, fmt.Errorf("no content for %s", p)
		}
		return []byte(c), nil
	}
	res, err := Build(context.Background(), Compare(base, live), load, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Added: 1, Modified: 4, Deleted: 1, ModeChanged: 1, Files: 7, Insertions: 3, Deletions: 3}
	if res.Summary != want {
		t.Errorf("summary = %+v, want %+v", res.Summary, want)
	}
	byPath := map[string]File{}
	for _, f := range res.Files {
		byPath[f.Path] = f
	}
	if f := byPath["edit.txt"]; !strings.Contains(f.Patch, "-old\n+new\n") || f.Binary {
		t.Errorf("edit.txt = %+v", f)
	}
	if f := byPath["blob.bin"]; !f.Binary || f.Patch != "" {
		t.Errorf("blob.bin = %+v", f)
	}
	if f := byPath["huge.log"]; f.PatchOmitted != OmittedTooLarge {
		t.Errorf("huge.log = %+v", f)
	}
	if f := byPath["keep.txt"]; f.Status != ModeChanged || f.OldMode != "0644" || f.NewMode != "0755" {
		t.Errorf("keep.txt = %+v", f)
	}
	if f := byPath["link"]; f.OldTarget != "keep.txt" || f.NewTarget != "edit.txt" {
		t.Errorf("link = %+v", f)
	}
	js, _ := json.Marshal(byPath["keep.txt"])
	if !strings.Contains(string(js), `"old_mode":"0644","new_mode":"0755"`) {
		t.Errorf("json = %s", js)
	}

	var git bytes.Buffer
	FormatGit(&git, res)
	for _, s := range []string{
		"diff --git a/added.txt b/added.txt\nnew file mode 100644\n--- /dev/null\n+++ b/added.txt\n@@ -0,0 +1 @@\n+hi\n",
		"diff --git a/blob.bin b/blob.bin\nBinary files a/blob.bin and b/blob.bin differ\n",
		"diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n",
		"diff --git a/keep.txt b/keep.txt\nold mode 100644\nnew mode 100755\n",
		"diff --git a/link b/link\n--- a/link\n+++ b/link\n@@ -1 +1 @@\n-keep.txt\n\\ No newline at end of file\n+edit.txt\n\\ No newline at end of file\n",
	} {
		if !strings.Contains(git.String(), s) {
			t.Errorf("FormatGit lacks %q in:\n%s", s, git.String())
		}
	}

	var stat bytes.Buffer
	FormatStat(&stat, res)
	wantStat := ` added.txt | 1 +
 blob.bin  | Bin 4 -> 5 bytes
 edit.txt  | 2 +-
 gone.txt  | 1 -
 huge.log  | ? (too large)
 keep.txt  | 0
 link      | 2 +-
 7 files changed, 3 insertions(+), 3 deletions(-)
`
	if stat.String() != wantStat {
		t.Errorf("FormatStat =\n%s\nwant\n%s", stat.String(), wantStat)
	}
}

func TestFormatStatSummaryForms(t *testing.T) {
	tests := []struct {
		ins, del int
		want     string
	}{
		{1, 0, " 1 file changed, 1 insertion(+)\n"},
		{0, 2, " 1 file changed, 2 deletions(-)\n"},
		{0, 0, " 1 file changed, 0 insertions(+), 0 deletions(-)\n"},
	}
	for _, tt := range tests {
		r := &Result{Files: []File{{Path: "p", Insertions: tt.ins, Deletions: tt.del}}, Summary: Summary{Insertions: tt.ins, Deletions: tt.del}}
		var b bytes.Buffer
		FormatStat(&b, r)
		if got := b.String()[strings.IndexByte(b.String(), '\n')+1:]; got != tt.want {
			t.Errorf("summary = %q, want %q", got, tt.want)
		}
	}
}

// TestDiffBlocksApply checks on pseudo-random inputs that the change blocks
// turn the old lines into the new ones.
func TestDiffBlocksApply(t *testing.T) {
	seed := uint32(1)
	rnd := func(n int) int { seed = seed*1664525 + 1013904223; return int(seed>>8) % n }
	for iter := 0; iter < 300; iter++ {
		mk := func() []string {
			out := make([]string, rnd(30))
			for i := range out {
				out[i] = string(rune('a'+rnd(4))) + "\n"
			}
			return out
		}
		a, b := mk(), mk()
		var got []string
		pos := 0
		for _, bl := range diffBlocks(a, b) {
			got = append(got, a[pos:bl.A0]...)
			got = append(got, b[bl.B0:bl.B1]...)
			pos = bl.A1
		}
		got = append(got, a[pos:]...)
		if strings.Join(got, "") != strings.Join(b, "") {
			t.Fatalf("iteration %d: applying blocks to %q gave %q, want %q", iter, a, got, b)
		}
	}
}

func TestBuildEqualContentWithoutHash(t *testing.T) {
	base := []me{file("same", 0o644, 2, 1, ""), file("chmod", 0o644, 2, 1, "")}
	live := []me{file("same", 0o644, 2, 5, ""), file("chmod", 0o600, 2, 5, "")}
	load := func(context.Context, Side, string, int64) ([]byte, error) { return []byte("x\n"), nil }
	res, err := Build(context.Background(), Compare(base, live), load, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || res.Files[0].Path != "chmod" || res.Files[0].Status != ModeChanged || res.Summary.ModeChanged != 1 || res.Summary.Modified != 0 {
		t.Fatalf("res = %+v", res)
	}
}

// TestScatteredChangesLargeFile checks that a file with more changes than
// Myers' bound still gets a minimal-looking patch (through patience
// anchors) and that the blocks apply.
func TestScatteredChangesLargeFile(t *testing.T) {
	var a, b []string
	for i := 0; i < 30000; i++ {
		a = append(a, fmt.Sprintf("line %d\n", i))
		if i%20 == 0 {
			b = append(b, fmt.Sprintf("changed %d\n", i))
		} else {
			b = append(b, fmt.Sprintf("line %d\n", i))
		}
	}
	_, ins, del := UnifiedDiff("x", []byte(strings.Join(a, "")), []byte(strings.Join(b, "")), 3)
	if ins != 1500 || del != 1500 {
		t.Fatalf("ins=%d del=%d, want 1500 each", ins, del)
	}
	var got []string
	pos := 0
	for _, bl := range diffBlocks(a, b) {
		got = append(got, a[pos:bl.A0]...)
		got = append(got, b[bl.B0:bl.B1]...)
		pos = bl.A1
	}
	got = append(got, a[pos:]...)
	if strings.Join(got, "") != strings.Join(b, "") {
		t.Fatal("blocks do not apply")
	}
}

// TestBuildBounds: the per-file and total patch bounds, no_patch with line
// counts, and results in path order whatever the load order.
func TestBuildBounds(t *testing.T) {
	text := func(n int) string { return strings.Repeat("line\n", n) } // 5 bytes a line
	var base, live []me
	content := map[Side]map[string]string{Old: {}, New: {}}
	for i := range 40 {
		p := fmt.Sprintf("f%02d.txt", i)
		base = append(base, file(p, 0o644, 50, 1, "o"+p))
		live = append(live, file(p, 0o644, 55, 2, "n"+p))
		content[Old][p] = text(10)
		content[New][p] = text(11)
	}
	base = append(base, file("g.txt", 0o644, 500, 1, "og"))
	live = append(live, file("g.txt", 0o644, 5, 2, "ng"))
	content[Old]["g.txt"] = text(100)
	content[New]["g.txt"] = text(1)
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	load := func(ctx context.Context, s Side, p string, limit int64) ([]byte, error) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		if len(p) > 0 && p[len(p)-5]%3 == 0 {
			time.Sleep(time.Millisecond) // finish out of order
		}
		if int64(len(content[s][p])) > limit {
			return nil, fmt.Errorf("over %d", limit)
		}
		return []byte(content[s][p]), nil
	}
	changes := Compare(base, live)
	for _, tc := range []struct {
		name     string
		opts     Options
		patches  int // files with a patch
		omitted  map[string]int
		totalMax int
	}{
		{"defaults", Options{}, 41, nil, DefaultMaxTotalPatchBytes},
		{"per file", Options{MaxPatchBytes: 100}, 40, map[string]int{OmittedTooLarge: 1}, DefaultMaxTotalPatchBytes},
		{"patch too large", Options{MaxPatchBytes: 500, Context: 20}, 40, map[string]int{OmittedPatchTooLarge: 1}, DefaultMaxTotalPatchBytes},
		// Each patch of an f file is 73 bytes: five fit in 400.
		{"total", Options{MaxTotalPatchBytes: 400}, 5, map[string]int{OmittedBudget: 36}, 400},
		{"no patch", Options{NoPatch: true}, 0, nil, 0},
		{"one worker", Options{Workers: 1, MaxTotalPatchBytes: 400}, 5, map[string]int{OmittedBudget: 36}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			maxInFlight = 0
			res, err := Build(context.Background(), changes, load, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Files) != 41 {
				t.Fatalf("%d files", len(res.Files))
			}
			patches, total := 0, 0
			omitted := map[string]int{}
			for i, f := range res.Files {
				if i > 0 && res.Files[i-1].Path >= f.Path {
					t.Fatalf("out of order: %s after %s", f.Path, res.Files[i-1].Path)
				}
				if f.Patch != "" {
					patches++
					total += len(f.Patch)
				}
				if f.PatchOmitted != "" {
					omitted[f.PatchOmitted]++
				}
				if CountsKnown(&f) {
					want := [2]int{1, 0}
					if f.Path == "g.txt" {
						want = [2]int{0, 99}
					}
					if got := [2]int{f.Insertions, f.Deletions}; got != want {
						t.Errorf("%s: +%d -%d, want %v", f.Path, got[0], got[1], want)
					}
				}
			}
			if patches != tc.patches || total > tc.totalMax || len(omitted) != len(tc.omitted) {
				t.Errorf("%d patches (%d bytes), omitted %v; want %d patches, omitted %v", patches, total, omitted, tc.patches, tc.omitted)
			}
			for k, n := range tc.omitted {
				if omitted[k] != n {
					t.Errorf("omitted %q: %d, want %d", k, omitted[k], n)
				}
			}
			if res.Summary.Insertions != 40 {
				t.Errorf("summary %+v", res.Summary)
			}
			workers := tc.opts.Workers
			if workers == 0 {
				workers = 4
			}
			if maxInFlight > 2*(workers+2) { // two sides a file
				t.Errorf("%d loads at once with %d workers", maxInFlight, workers)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, changes, load, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

func TestFormatStatLines(t *testing.T) {
	i64 := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name string
		f    File
		want string
	}{
		{"text", File{Path: "f.txt", Status: Modified, Insertions: 1, Deletions: 1}, " f.txt | 2 +-\n"},
		{"binary added", File{Path: "x.pyc", Status: Added, Binary: true, NewSize: i64(1234)}, " x.pyc | Bin 0 -> 1234 bytes\n"},
		{"binary deleted", File{Path: "x.pyc", Status: Deleted, Binary: true, OldSize: i64(10)}, " x.pyc | Bin 10 -> 0 bytes\n"},
		{"binary modified", File{Path: "x.pyc", Status: Modified, Binary: true, OldSize: i64(3), NewSize: i64(4)}, " x.pyc | Bin 3 -> 4 bytes\n"},
		{"too large", File{Path: "big", Status: Modified, PatchOmitted: OmittedTooLarge}, " big | ? (too large)\n"},
		{"over the budget keeps counts", File{Path: "b", Status: Modified, PatchOmitted: OmittedBudget, Insertions: 2}, " b | 2 ++\n"},
		{"mode only", File{Path: "m", Status: ModeChanged}, " m | 0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{Files: []File{tc.f}, Summary: Summary{Insertions: tc.f.Insertions, Deletions: tc.f.Deletions}}
			var b bytes.Buffer
			if err := FormatStat(&b, r); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := strings.Cut(b.String(), "\n"); got+"\n" != tc.want {
				t.Errorf("got %q, want %q", got+"\n", tc.want)
			}
		})
	}
}

// TestBuildCounter: with no_patch, added and deleted files are counted
// through the Counter, not loaded, with the same result.
func TestBuildCounter(t *testing.T) {
	base := []me{file("gone.txt", 0o644, 4, 1, "g"), file("edit.txt", 0o644, 4, 1, "e1"), file("big", 0o644, 10, 1, "b")}
	live := []me{file("added.txt", 0o644, 3, 2, ""), file("added.bin", 0o644, 3, 2, ""), file("edit.txt", 0o644, 4, 2, "e2"), file("big2", 0o644, 10, 2, "")}
	content := map[Side]map[string]string{
		Old: {"gone.txt": "a\nb\n", "edit.txt": "old\n", "big": "0123456789"},
		New: {"added.txt": "x\ny", "added.bin": "\x00\x01\x02", "edit.txt": "new\n", "big2": "0123456789"},
	}
	var loaded []string
	var mu sync.Mutex
	load := func(_ context.Context, s Side, p string, limit int64) ([]byte, error) {
		mu.Lock()
		loaded = append(loaded, p)
		mu.Unlock()
		return []byte(content[s][p]), nil
	}
	count := func(_ context.Context, s Side, p string, limit int64) (int, bool, error) {
		b := []byte(content[s][p])
		return CountLines(b), IsBinary(b), nil
	}
	opts := Options{NoPatch: true, MaxPatchBytes: 8}
	viaLoad, err := Build(context.Background(), Compare(base, live), load, opts)
	if err != nil {
		t.Fatal(err)
	}
	loaded = nil
	opts.Count = count
	viaCount, err := Build(context.Background(), Compare(base, live), load, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(viaLoad, viaCount) {
		t.Errorf("via Count %+v\nvia load %+v", viaCount, viaLoad)
	}
	if want := []string{"edit.txt", "edit.txt"}; !reflect.DeepEqual(loaded, want) {
		t.Errorf("loaded %q with a Counter, want only %q", loaded, want)
	}
	byPath := map[string]File{}
	for _, f := range viaCount.Files {
		byPath[f.Path] = f
	}
	if f := byPath["added.txt"]; f.Insertions != 2 || f.Binary {
		t.Errorf("added.txt %+v", f)
	}
	if f := byPath["gone.txt"]; f.Deletions != 2 {
		t.Errorf("gone.txt %+v", f)
	}
	if f := byPath["added.bin"]; !f.Binary {
		t.Errorf("added.bin %+v", f)
	}
	if f := byPath["big2"]; f.PatchOmitted != OmittedTooLarge {
		t.Errorf("big2 %+v", f)
	}
}
