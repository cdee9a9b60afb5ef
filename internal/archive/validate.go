package archive

import (
	"fmt"
	"path"
	"strings"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// kinds recorded per name by the validator.
const (
	kDir      = 'd' // explicit directory entry
	kImplicit = 'i' // directory implied by a deeper name
	kFile     = 'f'
	kSymlink  = 'l'
	kHardlink = 'h' // a hard link to a regular file: itself a regular file
)

// validator applies the package's naming and linking rules to a stream of
// entries. label names the kind of input in errors ("seed entry",
// "archive entry"); strict rejects symlinks that are absolute or escape the
// root instead of warning about them.
type validator struct {
	label    string
	strict   bool
	seen     map[string]byte
	symlinks map[string]string
}

func newValidator(label string, strict bool) *validator {
	return &validator{label: label, strict: strict, seen: map[string]byte{}, symlinks: map[string]string{}}
}

// reject builds the error for a bad entry.
func (v *validator) reject(name, problem, fix string) error {
	return fmt.Errorf("%s %q: %s: %w (%s)", v.label, name, problem, errdefs.ErrInvalidArgument, fix)
}

// cleanName validates a raw archive name and returns its cleaned form
// ("" for the root itself, which callers skip).
func (v *validator) cleanName(raw string) (string, error) {
	fix := "rebuild the archive with relative names inside one directory"
	if strings.IndexByte(raw, 0) >= 0 {
		return "", v.reject(raw, "name contains a NUL byte", fix)
	}
	if strings.HasPrefix(raw, "/") {
		return "", v.reject(raw, "absolute name", fix)
	}
	for _, c := range strings.Split(raw, "/") {
		if c == ".." {
			return "", v.reject(raw, `name contains a ".." component`, fix)
		}
	}
	n := path.Clean(raw)
	if n == "." {
		return "", nil
	}
	return n, nil
}

// strip removes prefix (already cleaned) from name. ok is false for the
// prefix itself (the new root).
func (v *validator) strip(name, prefix string) (string, bool, error) {
	if prefix == "" {
		return name, true, nil
	}
	if name == prefix {
		return "", false, nil
	}
	if rest, found := strings.CutPrefix(name, prefix+"/"); found {
		return rest, true, nil
	}
	return "", false, v.reject(name, fmt.Sprintf("entry is outside the directory %q being stripped", prefix),
		"strip a directory that holds every entry, or none")
}

// add records an entry of kind k (kDir, kFile, kSymlink, kHardlink) after
// checking its parents and duplicates. For hard links, link is the cleaned
// target name; for symlinks, the target. It returns a warning for symlinks
// that point outside the root in non-strict mode.
func (v *validator) add(name string, k byte, link string) (warning string, err error) {
	// Parents must be directories, never symlinks or files.
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		parent := name[:i]
		switch v.seen[parent] {
		case 0:
			v.seen[parent] = kImplicit
		case kDir, kImplicit:
		case kSymlink:
			return "", v.reject(name, fmt.Sprintf("entry is beneath the symlink %q", parent),
				"an archive may not write through its own symlinks; remove the symlink or the entry")
		default:
			return "", v.reject(name, fmt.Sprintf("entry is beneath %q, which is not a directory", parent),
				"remove one of the conflicting entries")
		}
	}
	if prev, dup := v.seen[name]; dup {
		isDir := func(b byte) bool { return b == kDir || b == kImplicit }
		if !(isDir(prev) && k == kDir) {
			return "", v.reject(name, "duplicate entry conflicts with an earlier one", "keep only one entry with this name")
		}
	}
	switch k {
	case kHardlink:
		if t := v.seen[link]; t != kFile && t != kHardlink {
			return "", v.reject(name, fmt.Sprintf("hard link to %q, which is not an earlier regular file of the archive", link),
				"replace the hard link with a copy of the file")
		}
	case kSymlink:
		if link == "" {
			return "", v.reject(name, "symlink has an empty target", "remove the symlink")
		}
		if strings.IndexByte(link, 0) >= 0 {
			return "", v.reject(name, "symlink target contains a NUL byte", "remove the symlink")
		}
		if escapes(name, link, nil) {
			if v.strict {
				return "", v.reject(name, fmt.Sprintf("symlink target %q is absolute or points outside the tree", link),
					"make the link relative and inside the tree, or replace it with the file it points to")
			}
			warning = fmt.Sprintf("symlink %s -> %s points outside the tree; kept as a symlink, not followed", safeName(name), safeName(link))
		}
		v.symlinks[name] = link
	}
	v.seen[name] = k
	return warning, nil
}

// finish runs the checks that need the whole archive: in strict mode, every
// symlink must resolve inside the root when the other symlinks of the
// archive are followed (so "d/up -> .." plus "d/x -> up/.." is caught).
func (v *validator) finish() error {
	if !v.strict {
		return nil
	}
	for name, target := range v.symlinks {
		if escapes(name, target, v.symlinks) {
			return v.reject(name, fmt.Sprintf("symlink target %q resolves outside the tree through other symlinks", target),
				"make the link point inside the tree without passing through other symlinks")
		}
	}
	return nil
}

// escapes reports whether the symlink name -> target leaves the root. With
// links non-nil, symlinks met on the way are followed (up to 40 hops).
func escapes(name, target string, links map[string]string) bool {
	if strings.HasPrefix(target, "/") {
		return true
	}
	var stack []string // resolved components from the root
	if d := path.Dir(name); d != "." {
		stack = strings.Split(d, "/")
	}
	todo := strings.Split(target, "/")
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return true
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		if links == nil {
			continue
		}
		cur := strings.Join(stack, "/")
		t, ok := links[cur]
		if !ok {
			continue
		}
		if hops++; hops > 40 {
			return false // a loop inside the tree: dangling, but harmless
		}
		if strings.HasPrefix(t, "/") {
			return true
		}
		stack = stack[:len(stack)-1]
		todo = append(strings.Split(t, "/"), todo...)
	}
	return false
}
