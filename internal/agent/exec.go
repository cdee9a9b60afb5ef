package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// Exec tuning.
const (
	// execDrainIdle is how long, after the command exited, the output pipes
	// may stay silent before they are closed: a background child that
	// inherited them must not keep the operation open.
	execDrainIdle = 150 * time.Millisecond
	// execDrainMax bounds what is still read after the command exited (more
	// than any pipe holds), so a background child that writes forever
	// cannot keep the operation open either.
	execDrainMax = 4 << 20
	// execDefaultCwd is where commands run when the request names no cwd
	// (when it exists; "/" otherwise).
	execDefaultCwd = "/workspace"
)

// DefaultPath is the PATH every process in the guest gets by default.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execDefaultEnv is the environment exec'd processes start from; the
// request's Env is merged over it.
var execDefaultEnv = []string{
	"PATH=" + DefaultPath,
	"HOME=/root",
	"LANG=C.UTF-8",
	"TERM=dumb",
	"PAGER=cat",
	"GIT_PAGER=cat",
	"GIT_EDITOR=:",
}

func init() {
	register(guestproto.OpExec, handleExec)
}

// execSpec is a validated exec request.
type execSpec struct {
	argv    []string // argv[0] as given (the name reported in errors)
	path    string   // resolved executable; "" when lookup failed
	cwd     string
	env     []string
	stdin   bool
	timeout time.Duration
	// startErr, when set, is why the command cannot start; startCode is
	// its exit code (127 not found, 126 not executable).
	startErr  string
	startCode int
}

func handleExec(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	spec, err := prepareExec(req.Exec)
	if err != nil {
		return nil, err
	}
	res := runExec(ctx, s, st, spec)
	return &guestproto.Response{Exec: res}, nil
}

// prepareExec validates r and resolves the program, cwd and environment.
func prepareExec(r *guestproto.ExecRequest) (*execSpec, error) {
	if r == nil {
		return nil, errorf(guestproto.CodeInvalid, "exec request has no exec body")
	}
	switch {
	case len(r.Argv) > 0 && r.Shell != "":
		return nil, errorf(guestproto.CodeInvalid, "exec: give either argv or shell, not both")
	case len(r.Argv) == 0 && r.Shell == "":
		return nil, errorf(guestproto.CodeInvalid, "exec: no command: give argv or shell")
	case len(r.Argv) > 0 && r.Argv[0] == "":
		return nil, errorf(guestproto.CodeInvalid, "exec: argv[0] is empty")
	case r.TimeoutMS < 0:
		return nil, errorf(guestproto.CodeInvalid, "exec: timeout_ms %d is negative", r.TimeoutMS)
	}
	for _, kv := range r.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			return nil, errorf(guestproto.CodeInvalid, "exec: env entry %q is not KEY=VALUE", kv)
		}
	}
	spec := &execSpec{
		argv:    r.Argv,
		env:     mergeEnv(defaultEnv(), r.Env),
		stdin:   r.Stdin,
		timeout: time.Duration(r.TimeoutMS) * time.Millisecond,
	}
	if r.Shell != "" {
		spec.argv = []string{"/bin/sh", "-c", r.Shell}
	}
	cwd, err := execCwd(r.Cwd)
	if err != nil {
		return nil, err
	}
	spec.cwd = cwd
	spec.path, spec.startCode, spec.startErr = lookPath(spec.argv[0], envValue(spec.env, "PATH"), cwd)
	return spec, nil
}

// execCwd resolves the working directory: the request's (which must be an
// existing directory), else /workspace when it exists, else "/".
func execCwd(cwd string) (string, error) {
	if cwd == "" {
		if fi, err := os.Stat(execDefaultCwd); err == nil && fi.IsDir() {
			return execDefaultCwd, nil
		}
		return "/", nil
	}
	if !filepath.IsAbs(cwd) {
		cwd = filepath.Join(execDefaultCwd, cwd)
	}
	fi, err := os.Stat(cwd)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", errorf(guestproto.CodeInvalid, "exec: working directory %s does not exist in the guest", cwd)
	case err != nil:
		return "", errorf(guestproto.CodeInvalid, "exec: working directory %s: %v", cwd, err)
	case !fi.IsDir():
		return "", errorf(guestproto.CodeInvalid, "exec: working directory %s is not a directory", cwd)
	}
	return cwd, nil
}

// mergeEnv returns base with the entries of over added; an entry of over
// replaces the base entry with the same key. Order is kept.
func mergeEnv(base, over []string) []string {
	out := make([]string, 0, len(base)+len(over))
	idx := make(map[string]int, len(base)+len(over))
	for _, list := range [][]string{base, over} {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// envValue returns the value of key in env ("" when absent).
func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookPath finds name the way a shell does, using the command's own PATH
// (not the agent's): a name with a slash is used as is (relative to cwd);
// otherwise the first executable regular file in PATH wins. On failure it
// returns the shell's exit code (127 not found, 126 found but not
// executable) and a message naming the command.
func lookPath(name, pathEnv, cwd string) (path string, code int, msg string) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		fi, err := os.Stat(p)
		switch {
		case err != nil && errors.Is(err, fs.ErrNotExist):
			return "", 127, name + ": No such file or directory"
		case err != nil:
			return "", 126, name + ": " + err.Error()
		case fi.IsDir():
			return "", 126, name + ": Is a directory"
		case fi.Mode().Perm()&0o111 == 0:
			return "", 126, name + ": Permission denied"
		}
		return p, 0, ""
	}
	var denied string
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if fi.Mode().Perm()&0o111 == 0 {
			if denied == "" {
				denied = p
			}
			continue
		}
		return p, 0, ""
	}
	if denied != "" {
		return "", 126, denied + ": Permission denied"
	}
	return "", 127, name + ": command not found"
}
