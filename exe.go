package hearth

import (
	"os"
	"os/exec"
	"path/filepath"
)

// defaultExe finds the hearth binary that runs supervisors: $HEARTH_BIN,
// the running executable when it is hearth, else hearth on PATH.
func defaultExe() string {
	if p := os.Getenv("HEARTH_BIN"); p != "" {
		return p
	}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "hearth" {
		return exe
	}
	if p, err := exec.LookPath("hearth"); err == nil {
		return p
	}
	exe, _ := os.Executable()
	return exe
}
