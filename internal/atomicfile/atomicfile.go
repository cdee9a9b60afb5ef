// Package atomicfile writes state files so that a reader sees the old
// content or the new, never a mix: write a temporary file beside the
// target, fsync it, rename it into place.
package atomicfile

import (
	"encoding/json"
	"fmt"
	"os"
)

// WriteJSON writes v as indented JSON to path with mode perm.
func WriteJSON(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return Write(path, append(b, '\n'), perm)
}

// Write writes data to path with mode perm.
func Write(path string, data []byte, perm os.FileMode) error {
	// The pid keeps concurrent writers from sharing a temporary file.
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
