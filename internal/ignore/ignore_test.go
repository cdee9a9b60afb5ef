package ignore

import (
	"errors"
	"testing"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// The expectations agree with `git check-ignore --no-index` (git 2.39) on
// the same patterns and paths, except where marked: git matches "?" and
// classes against bytes, this package against UTF-8 characters.
func TestExcluded(t *testing.T) {
	type c struct {
		path string
		dir  bool
		want bool
	}
	cases := []struct {
		name     string
		patterns []string
		checks   []c
	}{
		{"dir pattern at any depth", []string{"__pycache__/"}, []c{
			{"__pycache__", true, true},
			{"__pycache__/x.pyc", false, true},
			{"src/__pycache__/x.pyc", false, true},
			{"__pycache__", false, false}, // a file of that name is not a directory
			{"src/__pycache__x", true, false},
		}},
		{"star", []string{"*.pyc"}, []c{
			{"x.pyc", false, true},
			{"a/b/x.pyc", false, true},
			{".pyc", false, true},
			{"x.pyco", false, false},
			{"x.py", false, false},
		}},
		{"star does not cross slash", []string{"a/*.c"}, []c{
			{"a/x.c", false, true},
			{"a/b/x.c", false, false},
			{"b/a/x.c", false, false}, // anchored: a slash in the middle
		}},
		{"leading slash anchors", []string{"/build"}, []c{
			{"build", true, true},
			{"build/out.o", false, true},
			{"src/build", true, false},
		}},
		{"name without slash at any depth", []string{"build"}, []c{
			{"build", true, true},
			{"src/build", false, true},
			{"src/build/x", false, true},
			{"builds", false, false},
		}},
		{"question mark", []string{"?.txt"}, []c{
			{"a.txt", false, true},
			{"é.txt", false, true}, // git: false (bytes)
			{"ab.txt", false, false},
			{".txt", false, false},
		}},
		{"character classes", []string{"file[0-9].log", "[!a-c]x", "[[:upper:]]*.md", `\[lit\]`}, []c{
			{"file3.log", false, true},
			{"fileA.log", false, false},
			{"dx", false, true},
			{"bx", false, false},
			{"README.md", false, true},
			{"readme.md", false, false},
			{"[lit]", false, true},
			{"l", false, false},
		}},
		{"caret negates a class", []string{"[^x]y"}, []c{
			{"ay", false, true},
			{"xy", false, false},
		}},
		{"bracket first is literal", []string{"[]a]"}, []c{
			{"]", false, true},
			{"a", false, true},
			{"b", false, false},
		}},
		{"leading double star", []string{"**/logs"}, []c{
			{"logs", true, true},
			{"a/b/logs", true, true},
			{"a/b/logs/x", false, true},
		}},
		{"trailing double star", []string{"out/**"}, []c{
			{"out", true, false},
			{"out/x", false, true},
			{"out/a/b", false, true},
			{"x/out/y", false, false},
		}},
		{"middle double star", []string{"a/**/b"}, []c{
			{"a/b", false, true},
			{"a/x/b", false, true},
			{"a/x/y/b", false, true},
			{"a/x/y/c", false, false},
			{"z/a/b", false, false},
		}},
		{"double star inside a name is a star", []string{"a**z"}, []c{
			{"abcz", false, true},
			{"ab/cz", false, false},
		}},
		{"negation", []string{"*.log", "!keep.log"}, []c{
			{"x.log", false, true},
			{"keep.log", false, false},
			{"d/keep.log", false, false},
		}},
		{"negation after a later exclude", []string{"!keep.log", "*.log"}, []c{
			{"keep.log", false, true},
		}},
		{"no re-include inside an excluded dir", []string{"cache/", "!cache/keep"}, []c{
			{"cache/keep", false, true},
			{"cache/other", false, true},
		}},
		{"re-include with dir contents excluded", []string{"cache/*", "!cache/keep"}, []c{
			{"cache", true, false},
			{"cache/keep", false, false},
			{"cache/other", false, true},
		}},
		{"escaped leading characters", []string{`\!bang`, `\#hash`}, []c{
			{"!bang", false, true},
			{"#hash", false, true},
			{"bang", false, false},
		}},
		{"trailing spaces", []string{"a.txt   ", `b\ `}, []c{
			{"a.txt", false, true},
			{"b ", false, true},
			{"b", false, false},
		}},
		{"star matches dotfiles", []string{"*"}, []c{
			{".env", false, true},
			{"a/.b", false, true},
		}},
		{"anchored dir-only", []string{"/node_modules/"}, []c{
			{"node_modules", true, true},
			{"node_modules/x/y.js", false, true},
			{"pkg/node_modules", true, false},
		}},
		{"backtracking star", []string{"a*b*c"}, []c{
			{"aXbYbZc", false, true},
			{"abcab", false, false},
			{"ac", false, false},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Compile(tc.patterns)
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range tc.checks {
				if got := m.Excluded(ch.path, ch.dir); got != ch.want {
					t.Errorf("%q (dir %v) against %q: excluded %v, want %v", ch.path, ch.dir, tc.patterns, got, ch.want)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, p := range []string{"", "   ", "#comment", "[abc", "a[z-a]", `x\`, "/", "[[:nope:]]"} {
		_, err := Compile([]string{p})
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v, want an invalid-argument error", p, err)
		}
	}
}

func TestNilMatcher(t *testing.T) {
	m, err := Compile(nil)
	if err != nil || m != nil {
		t.Fatalf("Compile(nil) = %v, %v", m, err)
	}
	if m.Excluded("anything", false) || m.ExcludedSelf("x", true) {
		t.Error("the nil matcher excluded something")
	}
}

func TestExcludedSelf(t *testing.T) {
	m := MustCompile("cache/")
	if m.ExcludedSelf("cache/x", false) {
		t.Error("ExcludedSelf looked at the directories above")
	}
	if !m.Excluded("cache/x", false) {
		t.Error("Excluded missed the excluded parent")
	}
}
