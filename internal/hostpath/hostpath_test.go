package hostpath

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ops"
)

func TestCheck(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	out := filepath.Join(base, "out")
	for _, d := range []string{root, out, filepath.Join(root, "sub")} {
		os.MkdirAll(d, 0o755)
	}
	os.Symlink(out, filepath.Join(root, "escape"))
	os.Symlink(filepath.Join(root, "sub"), filepath.Join(base, "into"))
	r, err := NewRoots([]string{root})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{root, true},
		{filepath.Join(root, "sub"), true},
		{filepath.Join(root, "new", "deeper"), true},
		{filepath.Join(base, "into", "x"), true}, // a symlink from outside into the root
		{filepath.Join(root, "escape"), false},
		{filepath.Join(root, "escape", "new"), false},
		{filepath.Join(root, "..", "out"), false},
		{root + "-sibling", false},
		{out, false},
		{"relative/path", false},
		{"/", false},
	} {
		err := r.Check("host_dest", tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%s) = %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && (errdefs.ArgOf(err) != "host_dest" || !errors.Is(err, errdefs.ErrInvalidArgument)) {
			t.Errorf("Check(%s): %v is not an argument error on host_dest", tc.path, err)
		}
	}
	if err := Roots(nil).Check("seed", root); err == nil || !strings.Contains(err.Error(), Flag) {
		t.Errorf("no roots: %v", err)
	}
	if _, err := NewRoots([]string{"/"}); err == nil {
		t.Error("/ accepted as a root")
	}
	if _, err := NewRoots([]string{filepath.Join(base, "missing")}); err == nil {
		t.Error("a missing root accepted")
	}
}

// TestGuard: every host path field of every operation is checked.
func TestGuard(t *testing.T) {
	root := t.TempDir()
	r, _ := NewRoots([]string{root})
	g := r.Guard()
	hosts := 0
	for _, op := range ops.All {
		for _, a := range op.Args() {
			if a.Host == "" {
				continue
			}
			hosts++
			for _, tc := range []struct {
				path string
				ok   bool
			}{{"/etc/passwd", false}, {filepath.Join(root, "in"), true}} {
				req := op.NewRequest()
				reflect.ValueOf(req).Elem().FieldByName(a.GoName()).SetString(tc.path)
				if err := g(op, req); (err == nil) != tc.ok {
					t.Errorf("%s.%s = %s: %v, want ok=%v", op.Name, a.Name, tc.path, err, tc.ok)
				}
			}
		}
	}
	if hosts < 3 {
		t.Errorf("only %d host path arguments in the table: the host tags went missing", hosts)
	}
}
