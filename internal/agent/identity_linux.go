package agent

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
)

// identityFile, on the data disk, names the workspace the disk's machine
// identity was made for.
const identityFile = dataMount + "/.hearth/identity"

// ensureIdentity gives the guest a machine-id of its own. A workspace's
// disk records the id of the workspace it was made for; a disk copied for
// a fork carries its parent's, so at the fork's first boot the id differs
// and the guest gets a new /etc/machine-id (the hostname comes from the
// kernel command line at every boot). Failures are logged.
func ensureIdentity(log *slog.Logger, cfg bootConfig) {
	owner := readTrimmed(identityFile)
	mid := readTrimmed("/etc/machine-id")
	if len(mid) == 32 && (owner == cfg.ID || cfg.ID == "") {
		return
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		log.Warn("machine-id: no randomness", "err", err)
		return
	}
	if err := writeFileAtomic("/etc/machine-id", []byte(hex.EncodeToString(b[:])+"\n"), 0o444); err != nil {
		log.Warn("write /etc/machine-id", "err", err)
		return
	}
	if cfg.ID != "" {
		if err := writeFileAtomic(identityFile, []byte(cfg.ID+"\n"), 0o644); err != nil {
			log.Warn("record the disk's identity", "err", err)
		}
	}
	if owner != "" && owner != cfg.ID {
		log.Info("new machine identity for a copied disk", "was", owner, "now", cfg.ID)
	}
}

// writeFileAtomic writes path through a temporary file and a rename.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
