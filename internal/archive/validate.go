package archive

import (
	"fmt"
	"hash/maphash"
	"os"
	"path"
	"strconv"
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

// DefaultMaxEntries is the default bound on the names one archive may
// hold, counting the directories its names imply: it bounds the memory
// (under 100 bytes a name, whatever its length) and time spent on an
// untrusted archive. MaxEntriesEnv raises or lowers it for a process.
const DefaultMaxEntries = 500_000

// MaxEntriesEnv is the environment variable that sets the entry limit of
// every archive a process reads (seeds, exports, sync pushes).
const MaxEntriesEnv = "HEARTH_MAX_ARCHIVE_ENTRIES"

// maxNameBytes bounds entry names and symlink targets (Linux's PATH_MAX).
const maxNameBytes = 4096

// maxResolveSteps bounds the work of resolving a seed's symlinks through
// each other (see validator.finish).
const maxResolveSteps = 50_000_000

// maxEntries is the entry limit for options asking for n (0: the
// environment's, else the default).
func maxEntries(n int) int {
	if n > 0 {
		return n
	}
	if v, err := strconv.Atoi(os.Getenv(MaxEntriesEnv)); err == nil && v > 0 {
		return v
	}
	return DefaultMaxEntries
}

// validator applies the package's naming and linking rules to a stream of
// entries. label names the kind of input in errors ("seed entry",
// "archive entry"); strict rejects symlinks that are absolute or escape the
// root instead of warning about them.
//
// Names are remembered by a keyed 64-bit hash, so memory does not grow with
// their length, and their number is bounded by max. A hash collision (about
// one chance in 10^8 for a full archive, and not something an archive can
// aim for, since the key is random) can only make a valid archive look
// conflicting, never let a bad one through.
type validator struct {
	label    string
	strict   bool
	max      int
	hint     string // appended to symlink fixes ("or exclude it")
	seed     maphash.Seed
	seen     map[uint64]byte
	symlinks map[string]string // strict only: name -> target
}

func newValidator(label string, strict bool) *validator {
	return newValidatorMax(label, strict, 0)
}

func newValidatorMax(label string, strict bool, limit int) *validator {
	v := &validator{label: label, strict: strict, max: maxEntries(limit), seed: maphash.MakeSeed(), seen: map[uint64]byte{}}
	if strict {
		v.symlinks = map[string]string{}
	}
	return v
}

func (v *validator) key(name string) uint64 { return maphash.String(v.seed, name) }

// tooMany is the error for an archive over the entry limit.
func (v *validator) tooMany() error {
	return tooManyEntries(strings.TrimSuffix(v.label, " entry"), v.max)
}

// tooManyEntries is the error for an input (what: "seed", "archive") with
// more than max entries.
func tooManyEntries(what string, max int) error {
	return fmt.Errorf("%s has more than %d entries (counting the directories their names imply): %w "+
		"(hearth bounds the entries of an archive to bound its memory; set %s to a larger number to raise the limit, or leave files out)",
		what, max, errdefs.ErrResourceExhausted, MaxEntriesEnv)
}

// record sets the kind of a name, enforcing the entry limit for new names.
func (v *validator) record(k uint64, kind byte) error {
	if _, ok := v.seen[k]; !ok && len(v.seen) >= v.max {
		return v.tooMany()
	}
	v.seen[k] = kind
	return nil
}

// reject builds the error for a bad entry.
func (v *validator) reject(name, problem, fix string) error {
	return fmt.Errorf("%s %q: %s: %w (%s)", v.label, name, problem, errdefs.ErrInvalidArgument, fix)
}

// cleanName validates a raw archive name and returns its cleaned form
// ("" for the root itself, which callers skip).
func (v *validator) cleanName(raw string) (string, error) {
	fix := "rebuild the archive with relative names inside one directory"
	if len(raw) > maxNameBytes {
		return "", v.reject(raw[:64]+"...", fmt.Sprintf("name is %d bytes long, more than %d", len(raw), maxNameBytes), fix)
	}
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
		pk := v.key(parent)
		switch v.seen[pk] {
		case 0:
			if err := v.record(pk, kImplicit); err != nil {
				return "", err
			}
		case kDir, kImplicit:
		case kSymlink:
			return "", v.reject(name, fmt.Sprintf("entry is beneath the symlink %q", parent),
				"an archive may not write through its own symlinks; remove the symlink or the entry")
		default:
			return "", v.reject(name, fmt.Sprintf("entry is beneath %q, which is not a directory", parent),
				"remove one of the conflicting entries")
		}
	}
	nk := v.key(name)
	if prev, dup := v.seen[nk]; dup {
		isDir := func(b byte) bool { return b == kDir || b == kImplicit }
		if !(isDir(prev) && k == kDir) {
			return "", v.reject(name, "duplicate entry conflicts with an earlier one", "keep only one entry with this name")
		}
	}
	switch k {
	case kHardlink:
		if t := v.seen[v.key(link)]; t != kFile && t != kHardlink {
			return "", v.reject(name, fmt.Sprintf("hard link to %q, which is not an earlier regular file of the archive", link),
				"replace the hard link with a copy of the file")
		}
	case kSymlink:
		if link == "" {
			return "", v.reject(name, "symlink has an empty target", "remove the symlink")
		}
		if len(link) > maxNameBytes {
			return "", v.reject(name, fmt.Sprintf("symlink target is %d bytes long, more than %d", len(link), maxNameBytes), "remove the symlink")
		}
		if strings.IndexByte(link, 0) >= 0 {
			return "", v.reject(name, "symlink target contains a NUL byte", "remove the symlink")
		}
		steps := 0
		if escapes(name, link, nil, &steps) {
			if v.strict {
				return "", v.reject(name, fmt.Sprintf("symlink target %q is absolute or points outside the tree", link),
					"make the link relative and inside the tree, or replace it with the file it points to"+v.hint)
			}
			warning = fmt.Sprintf("symlink %s -> %s points outside the tree; kept as a symlink, not followed", safeName(name), safeName(link))
		}
		if v.strict {
			v.symlinks[name] = link
		}
	}
	if err := v.record(nk, k); err != nil {
		return "", err
	}
	return warning, nil
}

// finish runs the checks that need the whole archive: in strict mode, every
// symlink must resolve inside the root when the other symlinks of the
// archive are followed (so "d/up -> .." plus "d/x -> up/.." is caught).
func (v *validator) finish() error {
	if !v.strict {
		return nil
	}
	steps := 0
	for name, target := range v.symlinks {
		if escapes(name, target, v.symlinks, &steps) {
			return v.reject(name, fmt.Sprintf("symlink target %q resolves outside the tree through other symlinks", target),
				"make the link point inside the tree without passing through other symlinks"+v.hint)
		}
		if steps > maxResolveSteps {
			what := strings.TrimSuffix(v.label, " entry")
			return fmt.Errorf("%s: its symlinks point through each other too deeply to check (more than %d steps): %w (replace chains of symlinks with direct links)",
				what, maxResolveSteps, errdefs.ErrResourceExhausted)
		}
	}
	return nil
}

// escapes reports whether the symlink name -> target leaves the root. With
// links non-nil, symlinks met on the way are followed (up to 40 hops).
// steps counts the components resolved, across calls.
func escapes(name, target string, links map[string]string, steps *int) bool {
	if strings.HasPrefix(target, "/") {
		return true
	}
	// cur is the resolved path from the root; ends[i] is where its
	// component i ends, so going up is a cut and lookups need no join.
	var cur []byte
	var ends []int
	push := func(c string) {
		if len(cur) > 0 {
			cur = append(cur, '/')
		}
		cur = append(cur, c...)
		ends = append(ends, len(cur))
	}
	pop := func() {
		ends = ends[:len(ends)-1]
		if len(ends) == 0 {
			cur = cur[:0]
		} else {
			cur = cur[:ends[len(ends)-1]]
		}
	}
	if d := path.Dir(name); d != "." {
		for _, c := range strings.Split(d, "/") {
			push(c)
		}
	}
	todo := strings.Split(target, "/")
	hops := 0
	for len(todo) > 0 {
		*steps++
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(ends) == 0 {
				return true
			}
			pop()
			continue
		}
		push(c)
		if links == nil {
			continue
		}
		t, ok := links[string(cur)]
		if !ok {
			continue
		}
		if hops++; hops > 40 {
			return false // a loop inside the tree: dangling, but harmless
		}
		if strings.HasPrefix(t, "/") {
			return true
		}
		pop()
		todo = append(strings.Split(t, "/"), todo...)
	}
	return false
}
