package fsdiff

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/hearthvm/hearth/internal/guestproto"
)

type me = guestproto.ManifestEntry

func file(p string, mode uint32, size, mtime int64, sha string) me {
	return me{Path: p, Type: "file", Mode: mode, Size: size, MtimeNS: mtime, Inode: 7, SHA256: sha}
}

func dir(p string) me { return me{Path: p, Type: "dir", Mode: 0o755, MtimeNS: 1} }

func link(p, target string) me {
	return me{Path: p, Type: "symlink", Mode: 0o777, Size: int64(len(target)), Target: target, MtimeNS: 1}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name       string
		base, live []me
		want       []string // "path status"
	}{
		{"unchanged", []me{file("a", 0o644, 3, 1, "h1")}, []me{file("a", 0o644, 3, 1, "")}, nil},
		{"touched but identical", []me{file("a", 0o644, 3, 1, "h1")}, []me{file("a", 0o644, 3, 99, "h1")}, nil},
		{"size changed", []me{file("a", 0o644, 3, 1, "h1")}, []me{file("a", 0o644, 4, 2, "")}, []string{"a modified"}},
		{"same size new content", []me{file("a", 0o644, 3, 1, "h1")}, []me{file("a", 0o644, 3, 2, "h2")}, []string{"a modified"}},
		{"stat changed without hash", []me{file("a", 0o644, 3, 1, "h1")}, []me{file("a", 0o644, 3, 2, "")}, []string{"a modified"}},
		{"mode only", []me{file("a", 0o644, 3, 1, "h1")}, []me{file("a", 0o755, 3, 1, "")}, []string{"a mode_changed"}},
		{"mode and content", []me{file("a", 0o644, 3, 1, "h1")}, []me{file("a", 0o755, 3, 2, "h2")}, []string{"a modified"}},
		{"symlink retarget", []me{link("l", "x")}, []me{link("l", "y")}, []string{"l modified"}},
		{"symlink same", []me{link("l", "x")}, []me{link("l", "x")}, nil},
		{"file to dir", []me{file("a", 0o644, 3, 1, "h1")}, []me{dir("a"), file("a/b", 0o644, 1, 1, "")}, []string{"a type_changed", "a/b added"}},
		{"file to symlink", []me{file("a", 0o644, 3, 1, "h1")}, []me{link("a", "b")}, []string{"a type_changed"}},
		{"added and deleted", []me{file("gone", 0o644, 1, 1, "h")}, []me{file("new", 0o644, 1, 1, "")}, []string{"gone deleted", "new added"}},
		{"added empty dir", nil, []me{dir("d")}, []string{"d added"}},
		{"added dir with files", nil, []me{dir("d"), file("d/f", 0o644, 1, 1, "")}, []string{"d/f added"}},
		{"deleted dir with files", []me{dir("d"), file("d/f", 0o644, 1, 1, "h")}, nil, []string{"d/f deleted"}},
		{"deleted empty dir", []me{dir("d")}, nil, []string{"d deleted"}},
		{"dir with sorting trap", nil, []me{dir("a"), dir("a-b"), file("a/x", 0o644, 1, 1, "")}, []string{"a-b added", "a/x added"}},
		{"dir mode", []me{dir("d")}, []me{{Path: "d", Type: "dir", Mode: 0o700, MtimeNS: 5}}, []string{"d mode_changed"}},
		{"unsorted input", nil, []me{file("z", 0o644, 1, 1, ""), file("a", 0o644, 1, 1, "")}, []string{"a added", "z added"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range Compare(tt.base, tt.live) {
				got = append(got, c.Path+" "+string(c.Status))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Compare = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestChanged(t *testing.T) {
	base := []me{file("same", 0o644, 3, 1, "h"), file("touched", 0o644, 3, 1, "h"), file("grown", 0o644, 3, 1, "h"),
		file("gone", 0o644, 1, 1, "h"), link("l", "x")}
	live := []me{file("added", 0o644, 1, 1, ""), file("grown", 0o644, 9, 2, ""), link("l", "y"),
		file("same", 0o644, 3, 1, ""), file("touched", 0o644, 3, 2, "")}
	cand, need := Changed(base, live)
	if want := []string{"added", "gone", "grown", "l", "touched"}; !reflect.DeepEqual(cand, want) {
		t.Errorf("candidates = %q, want %q", cand, want)
	}
	if want := []string{"touched"}; !reflect.DeepEqual(need, want) {
		t.Errorf("needHash = %q, want %q", need, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		entries []me
		ok      bool
	}{
		{"good", []me{dir("a"), file("a/b", 0o644, 1, 1, "")}, true},
		{"absolute", []me{file("/etc/passwd", 0o644, 1, 1, "")}, false},
		{"dotdot", []me{file("../x", 0o644, 1, 1, "")}, false},
		{"unclean", []me{file("a//b", 0o644, 1, 1, "")}, false},
		{"duplicate", []me{file("a", 0o644, 1, 1, ""), file("a", 0o644, 1, 1, "")}, false},
		{"unsorted", []me{file("b", 0o644, 1, 1, ""), file("a", 0o644, 1, 1, "")}, false},
		{"bad type", []me{{Path: "a", Type: "fifo"}}, false},
	}
	for _, tt := range tests {
		if err := Validate(tt.entries); (err == nil) != tt.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func BenchmarkCompare20k(b *testing.B) {
	base := make([]me, 0, 20000)
	for i := 0; i < 20000; i++ {
		base = append(base, file(fmt.Sprintf("dir%03d/file%05d.go", i/100, i), 0o644, 100, 1, "h"))
	}
	live := append([]me(nil), base...)
	for i := 0; i < 10; i++ {
		live[i*1999].Size++
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cand, _ := Changed(base, live)
		if n := len(Compare(base, live)); n != 10 || len(cand) != 10 {
			b.Fatalf("changes = %d, candidates = %d", n, len(cand))
		}
	}
}
