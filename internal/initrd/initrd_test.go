package initrd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestWriteReadableByCpio checks the archive with the real cpio tool.
func TestWriteReadableByCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Fatal("cpio not installed: scripts/setup-host.sh installs it")
	}
	var b bytes.Buffer
	if err := Write(&b, []byte("#!/bin/true\nagent")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-itv")
	cmd.Stdin = &b
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}
	for _, want := range []string{"init", "dev/console", "newroot"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("listing lacks %s:\n%s", want, out)
		}
	}
}

func TestEnsureCachesByContent(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "agent")
	os.WriteFile(a, []byte("one"), 0o755)
	p1, err := Ensure(dir, a)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := Ensure(dir, a)
	if p1 != p2 {
		t.Fatalf("same agent, different initrd: %s %s", p1, p2)
	}
	os.WriteFile(a, []byte("two"), 0o755)
	p3, _ := Ensure(dir, a)
	if p3 == p1 {
		t.Fatal("changed agent reused the old initrd")
	}
}
