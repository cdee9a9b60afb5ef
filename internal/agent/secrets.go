package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/hearthvm/hearth/internal/guestproto"
)

func init() {
	register(guestproto.OpSecrets, handleSecrets)
}

// secretFiles is the guest's secret directory: a tmpfs the agent mounts at
// guestproto.SecretsDir. Tests point dir elsewhere and replace mount and
// unmount.
var secretFiles = &secretDir{dir: guestproto.SecretsDir, mount: mountSecrets, unmount: unmountSecrets, mounted: secretsMounted}

type secretDir struct {
	mu      sync.Mutex
	dir     string
	mount   func(dir string) error
	unmount func(dir string) error
	mounted func(dir string) bool
}

var secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

func handleSecrets(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r := req.Secrets
	if r == nil {
		return nil, errorf(guestproto.CodeInvalid, "secrets request has no secrets body")
	}
	// The request's bytes are not kept: zero them once written.
	defer func() {
		for i := range r.Files {
			clear(r.Files[i].Data)
		}
	}()
	if r.Unmount {
		if len(r.Files) > 0 {
			return nil, errorf(guestproto.CodeInvalid, "secrets: unmount takes no files")
		}
		return nil, secretFiles.wipe()
	}
	if err := secretFiles.replace(r.Files); err != nil {
		return nil, err
	}
	return nil, setBrokerCA(r.BrokerCA)
}

// replace makes the directory hold exactly files (mounting it first when
// there is any), each 0400 root.
func (d *secretDir) replace(files []guestproto.SecretFile) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[string]bool{}
	for _, f := range files {
		if !secretNameRE.MatchString(f.Name) {
			return errorf(guestproto.CodeInvalid, "secrets: bad secret name %q", f.Name)
		}
		if want[f.Name] {
			return errorf(guestproto.CodeInvalid, "secrets: %s given twice", f.Name)
		}
		want[f.Name] = true
	}
	if !d.mounted(d.dir) {
		if len(files) == 0 {
			return nil
		}
		if err := d.mount(d.dir); err != nil {
			return errorf(guestproto.CodeInternal, "secrets: mount a tmpfs on %s: %v", d.dir, err)
		}
	}
	for _, f := range files {
		if err := writeSecret(d.dir, f); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return errorf(guestproto.CodeInternal, "secrets: %v", err)
	}
	for _, e := range ents {
		if !want[e.Name()] {
			wipeFile(filepath.Join(d.dir, e.Name()))
		}
	}
	return nil
}

// writeSecret writes one file through a temporary name in the same
// directory, so a reader sees the old or the new value whole.
func writeSecret(dir string, f guestproto.SecretFile) error {
	tmp := filepath.Join(dir, "."+f.Name+".tmp")
	os.Remove(tmp)
	fh, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o400)
	if err != nil {
		return errorf(guestproto.CodeInternal, "secrets: create %s: %v", f.Name, err)
	}
	_, err = fh.Write(f.Data)
	if err == nil {
		err = fh.Chmod(0o400)
	}
	if err == nil {
		err = fh.Chown(0, 0)
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, f.Name))
	}
	if err != nil {
		os.Remove(tmp)
		return errorf(guestproto.CodeInternal, "secrets: write %s: %s", f.Name, scrubErr(err))
	}
	return nil
}

// scrubErr keeps an error's cause without anything a write might echo.
func scrubErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + " " + filepath.Base(pe.Path) + ": " + pe.Err.Error()
	}
	return err.Error()
}

// wipeFile overwrites a file's bytes with zeros before removing it, so
// the tmpfs pages it held do not keep the value in guest memory.
func wipeFile(p string) {
	if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
		os.Chmod(p, 0o600)
		if fh, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			fh.Write(make([]byte, fi.Size()))
			fh.Close()
		}
	}
	os.RemoveAll(p)
}

// wipe zeroes and removes every file, then unmounts the directory.
func (d *secretDir) wipe() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.mounted(d.dir) {
		return nil
	}
	ents, _ := os.ReadDir(d.dir)
	for _, e := range ents {
		wipeFile(filepath.Join(d.dir, e.Name()))
	}
	if err := d.unmount(d.dir); err != nil {
		return errorf(guestproto.CodePrecondition, "secrets: unmount %s: %v (a process may hold a file there open)", d.dir, err)
	}
	return nil
}

// secretsMountOptions are the tmpfs's options: root only, bounded.
const secretsMountOptions = "mode=0755,size=16m,nr_inodes=4096"
