package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/proc"
)

// TestSweepStaging: the staging of a process that is gone is removed by
// the next write into the same directory; a live process's, another
// start time's owner that still runs, and names without an owner stay.
func TestSweepStaging(t *testing.T) {
	dir := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Start(); err != nil {
		t.Fatal(err)
	}
	goneID, err := proc.Of(gone.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	gone.Wait()
	self, err := proc.Self()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{ // name: swept
		fmt.Sprintf(".out.hearth-tmp-%d.%d-123", goneID.PID, goneID.StartTicks): true,
		fmt.Sprintf(".other.hearth-tmp-%d.%d-9", goneID.PID, goneID.StartTicks): true,
		fmt.Sprintf(".out.hearth-tmp-%d.%d-456", self.PID, self.StartTicks):     false,
		fmt.Sprintf(".out.hearth-tmp-%d.%d-789", self.PID, self.StartTicks+1):   true, // pid reused
		".out.hearth-tmp-12345678": false, // no owner in the name
		"out.hearth-tmp-1.1-1":     false, // not hidden
		fmt.Sprintf(".out.hearth-tmp-%d.%d-file", goneID.PID, goneID.StartTicks+1): true,
	}
	for n := range names {
		p := filepath.Join(dir, n)
		if strings.HasSuffix(n, "file") {
			os.WriteFile(p, []byte("x"), 0o600)
		} else {
			os.MkdirAll(filepath.Join(p, "sub"), 0o700)
			os.WriteFile(filepath.Join(p, "sub", "f"), []byte("x"), 0o600)
		}
	}
	// A real extraction into the directory sweeps, then writes.
	if _, err := Extract(context.Background(), bytes.NewReader(tarBytes(t, reg("a.txt", "a"))), filepath.Join(dir, "new"), ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for n, swept := range names {
		_, err := os.Lstat(filepath.Join(dir, n))
		if swept != os.IsNotExist(err) {
			t.Errorf("%s: swept %v, want %v", n, !swept, swept)
		}
	}
	if pat := StagingPattern("/x/out"); pat != fmt.Sprintf(".out.hearth-tmp-%d.%d-", self.PID, self.StartTicks) {
		t.Errorf("StagingPattern: %q", pat)
	}
}
