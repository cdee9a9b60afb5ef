// Package hostpath confines the host paths a remote caller names (a seed, a
// sync push source, an export destination) to the directories the operator
// allowed (`--allow-path DIR`). The HTTP API and the MCP server check every
// request with it; the CLI and the in-process Go SDK act with the user's own
// rights and do not.
//
// A path is allowed when, after resolving symlinks, it lies under an
// allowed root. A path that does not exist yet (an export destination) is
// judged by its nearest existing ancestor with symlinks resolved, plus the
// rest of the path, which then cannot contain a symlink.
package hostpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ops"
)

// Flag is the flag that configures the roots, named in errors.
const Flag = "--allow-path"

// Roots are the allowed directories, absolute and with symlinks resolved.
type Roots []string

// NewRoots resolves the allowed directories; each must exist and be a
// directory.
func NewRoots(dirs []string) (Roots, error) {
	var r Roots
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v: %w", Flag, d, err, errdefs.ErrInvalidArgument)
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v: %w", Flag, d, err, errdefs.ErrInvalidArgument)
		}
		fi, err := os.Stat(real)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s %s: not a directory: %w", Flag, d, errdefs.ErrInvalidArgument)
		}
		if real == "/" {
			return nil, fmt.Errorf("%s /: allowing the whole file system is not confinement; name the directories callers may use: %w", Flag, errdefs.ErrInvalidArgument)
		}
		r = append(r, real)
	}
	return r, nil
}

// Check returns nil when p resolves under one of the roots; otherwise an
// invalid-argument error naming arg (the request field) and the flag.
func (r Roots) Check(arg, p string) error {
	if len(r) == 0 {
		return errdefs.Arg(arg, "this server reaches no host paths: its operator allows directories with %s DIR", Flag)
	}
	if !filepath.IsAbs(p) {
		return errdefs.Arg(arg, "%q is not an absolute host path", p)
	}
	real, err := resolve(filepath.Clean(p))
	if err != nil {
		return errdefs.Arg(arg, "%q: %v", p, err)
	}
	for _, root := range r {
		if real == root || strings.HasPrefix(real, root+string(filepath.Separator)) {
			return nil
		}
	}
	return errdefs.Arg(arg, "%q is outside the host paths this server allows (%s): its operator allows more with %s DIR", p, strings.Join(r, ", "), Flag)
}

// resolve resolves symlinks in p; for a path that does not exist, in its
// nearest existing ancestor.
func resolve(p string) (string, error) {
	rest := ""
	cur := p
	for {
		real, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return "", err
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// Guard returns a request check for servers: every request field tagged
// host:"…" (package api) must pass r.Check.
func (r Roots) Guard() func(op ops.Op, req any) error {
	return func(op ops.Op, req any) error {
		v := reflect.ValueOf(req)
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		for _, a := range op.Args() {
			if a.Host == "" {
				continue
			}
			if p := v.FieldByName(a.GoName()).String(); p != "" {
				if err := r.Check(a.Name, p); err != nil {
					return err
				}
			}
		}
		return nil
	}
}
