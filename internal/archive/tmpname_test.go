package archive

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestSweepStale: temporaries of a dead writer go, those of a live one and
// foreign names stay.
func TestSweepStale(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := strconv.Itoa(dead.Process.Pid)
	mk := func(name string, isDir bool) string {
		p := filepath.Join(dir, name)
		if isDir {
			os.MkdirAll(filepath.Join(p, "sub"), 0o700)
			os.WriteFile(filepath.Join(p, "sub", "f"), []byte("x"), 0o600)
			os.Chmod(filepath.Join(p, "sub"), 0o500)
		} else {
			os.WriteFile(p, []byte("x"), 0o600)
		}
		return p
	}
	cases := []struct {
		path string
		gone bool
	}{
		{mk(".out.hearth-tmp-"+deadPid+"-123", true), true},
		{mk(".out.hearth-tmp-"+deadPid+"-456", false), true},
		{mk(".out.hearth-tmp-"+strconv.Itoa(os.Getpid())+"-789", true), false},
		{mk(".out.hearth-tmp-1-abc", true), false}, // pid 1 is alive
		{mk(".out.hearth-tmp-xyz", true), false},   // no pid: not ours to judge
		{mk(".other.hearth-tmp-"+deadPid+"-1", true), false},
		{mk("out-keep", false), false},
	}
	if n := SweepStale(dest); n != 2 {
		t.Errorf("removed %d, want 2", n)
	}
	for _, c := range cases {
		_, err := os.Lstat(c.path)
		if gone := os.IsNotExist(err); gone != c.gone {
			t.Errorf("%s: gone %v, want %v", filepath.Base(c.path), gone, c.gone)
		}
	}
}
