package diskfs

import (
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// Layer is a directory tree of one image: its root directory inode.
type Layer struct {
	Img  *Image
	Root uint64
}

// Mount puts a tree at a path of a View: a plain Layer (Upper nil), or an
// overlay of Upper over Lower the way Linux overlayfs merges them.
type Mount struct {
	Path  string
	Upper *Layer
	Lower *Layer
}

// View is a read-only file system tree made of mounts, resolved on the
// host. A View caches directory listings: use one per request.
type View struct {
	mounts []Mount
	dirs   map[layerRef][]Dirent
	stats  map[layerRef]*Inode
}

// NewView returns a view of mounts; one must be at "/".
func NewView(mounts ...Mount) (*View, error) {
	v := &View{dirs: map[layerRef][]Dirent{}, stats: map[layerRef]*Inode{}}
	root := false
	for _, m := range mounts {
		m.Path = path.Clean(m.Path)
		if m.Path == "/" {
			root = true
		}
		if m.Upper == nil && m.Lower == nil {
			return nil, fmt.Errorf("mount %s has no layer: %w", m.Path, errdefs.ErrInternal)
		}
		v.mounts = append(v.mounts, m)
	}
	if !root {
		return nil, fmt.Errorf("view without a root mount: %w", errdefs.ErrInternal)
	}
	return v, nil
}

// SubLayer returns the layer rooted at dir (a path without symlinks) in
// img, or nil when dir does not exist there.
func SubLayer(ctx context.Context, img *Image, dir string) (*Layer, error) {
	ino := uint64(RootIno)
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		if c == "" {
			continue
		}
		ents, err := img.ReadDir(ctx, ino)
		if err != nil {
			return nil, err
		}
		var found *Dirent
		for i := range ents {
			if ents[i].Name == c {
				found = &ents[i]
				break
			}
		}
		if found == nil || found.Mode&ModeType != ModeDir {
			return nil, nil
		}
		ino = found.Ino
	}
	return &Layer{Img: img, Root: ino}, nil
}

type layerRef struct {
	img *Image
	ino uint64
}

// node is a resolved entry: the top layer's entry and, for a directory,
// every layer that contributes to it (top first).
type node struct {
	ent    Dirent
	top    layerRef
	layers []layerRef
	// overlay: layers[0] is an upper directory whose whiteouts count.
	overlay bool
}

func (n *node) isDir() bool { return n.ent.Mode&ModeType == ModeDir }

// Entry is one entry of a listing.
type Entry struct {
	Name string `json:"name"`
	// Type is "file", "dir", "symlink" or "other".
	Type string `json:"type"`
	// Mode is the permission bits (0o7777).
	Mode   uint32    `json:"mode"`
	Size   int64     `json:"size"`
	UID    int       `json:"uid"`
	GID    int       `json:"gid"`
	Target string    `json:"target,omitempty"`
	Mtime  time.Time `json:"mtime"`

	ref layerRef
}

// TypeOf names the type of a st_mode.
func TypeOf(mode uint32) string {
	switch mode & ModeType {
	case ModeReg:
		return "file"
	case ModeDir:
		return "dir"
	case ModeLnk:
		return "symlink"
	}
	return "other"
}

// CleanPath makes p absolute (relative to base) and clean, refusing a path
// whose ".." climbs above the root: such a path leaves the disk.
func CleanPath(p, base string) (string, error) {
	if p == "" {
		p = base
	}
	if strings.ContainsRune(p, 0) {
		return "", errdefs.Arg("path", "%q holds a NUL byte", p)
	}
	if !strings.HasPrefix(p, "/") {
		p = strings.TrimSuffix(base, "/") + "/" + p
	}
	depth := 0
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			if depth == 0 {
				return "", errdefs.Arg("path", "%q leaves the disk: \"..\" climbs above its root", p)
			}
			depth--
		default:
			depth++
		}
	}
	return path.Clean(p), nil
}

func (v *View) mountAt(p string) *Mount {
	for i := range v.mounts {
		if v.mounts[i].Path == p {
			return &v.mounts[i]
		}
	}
	return nil
}

// mountNode is the root node of a mount.
func (v *View) mountNode(ctx context.Context, m *Mount) (*node, error) {
	n := &node{ent: Dirent{Mode: ModeDir | 0o755}}
	if m.Upper != nil {
		n.layers = append(n.layers, layerRef{m.Upper.Img, m.Upper.Root})
		n.overlay = m.Lower != nil
	}
	if m.Lower != nil {
		n.layers = append(n.layers, layerRef{m.Lower.Img, m.Lower.Root})
	}
	n.top = n.layers[0]
	st, err := v.stat(ctx, n.top)
	if err != nil {
		return nil, err
	}
	n.ent = Dirent{Ino: n.top.ino, Mode: st.Mode, UID: st.UID, GID: st.GID, Size: st.Size}
	return n, nil
}

func (v *View) list(ctx context.Context, r layerRef) ([]Dirent, error) {
	if d, ok := v.dirs[r]; ok {
		return d, nil
	}
	d, err := r.img.ReadDir(ctx, r.ino)
	if err != nil {
		return nil, err
	}
	v.dirs[r] = d
	return d, nil
}

func (v *View) stat(ctx context.Context, r layerRef) (*Inode, error) {
	if err := v.statAll(ctx, r.img, []uint64{r.ino}); err != nil {
		return nil, err
	}
	st := v.stats[r]
	if st == nil {
		return nil, fmt.Errorf("inode %d of %s: %w", r.ino, r.img.Path, errdefs.ErrNotFound)
	}
	return st, nil
}

// statAll stats the inodes not yet cached, in one run.
func (v *View) statAll(ctx context.Context, img *Image, inos []uint64) error {
	var need []uint64
	for _, n := range inos {
		if _, ok := v.stats[layerRef{img, n}]; !ok {
			need = append(need, n)
		}
	}
	if len(need) == 0 {
		return nil
	}
	st, err := img.Stat(ctx, need)
	if err != nil {
		return err
	}
	for n, in := range st {
		v.stats[layerRef{img, n}] = in
	}
	return nil
}

// isWhiteout reports whether e, an entry of an upper directory, is an
// overlayfs whiteout (a character device 0/0).
func (v *View) isWhiteout(ctx context.Context, img *Image, e *Dirent) (bool, error) {
	if e.Mode&ModeType != ModeChr {
		return false, nil
	}
	st, err := v.stat(ctx, layerRef{img, e.Ino})
	if err != nil {
		return false, err
	}
	return st.RdevMaj == 0 && st.RdevMin == 0, nil
}

// isOpaque reports whether an upper directory hides its lower ones.
func (v *View) isOpaque(ctx context.Context, r layerRef) (bool, error) {
	st, err := v.stat(ctx, r)
	if err != nil {
		return false, err
	}
	return st.Xattrs["trusted.overlay.opaque"] == "y" || st.Xattrs["user.overlay.opaque"] == "y", nil
}

func find(ents []Dirent, name string) *Dirent {
	for i := range ents {
		if ents[i].Name == name {
			return &ents[i]
		}
	}
	return nil
}

// lookup finds name in the merged directory dir; nil when absent (or
// deleted in the upper layer).
func (v *View) lookup(ctx context.Context, dir *node, name string) (*node, error) {
	var found *node
	for i, l := range dir.layers {
		ents, err := v.list(ctx, l)
		if err != nil {
			return nil, err
		}
		e := find(ents, name)
		if e == nil {
			continue
		}
		upper := dir.overlay && i == 0
		if upper {
			wh, err := v.isWhiteout(ctx, l.img, e)
			if err != nil {
				return nil, err
			}
			if wh {
				return nil, nil
			}
		}
		ref := layerRef{l.img, e.Ino}
		if found == nil {
			found = &node{ent: *e, top: ref}
			if e.Mode&ModeType != ModeDir {
				return found, nil
			}
			found.layers = []layerRef{ref}
			if upper {
				op, err := v.isOpaque(ctx, ref)
				if err != nil {
					return nil, err
				}
				if op {
					return found, nil
				}
				found.overlay = true
			}
			continue
		}
		if e.Mode&ModeType == ModeDir {
			found.layers = append(found.layers, ref)
		}
		break
	}
	if found != nil && len(found.layers) < 2 {
		found.overlay = false
	}
	return found, nil
}

// maxLinks bounds the symlinks followed resolving one path, like Linux.
const maxLinks = 40

// resolve finds the node at p (clean, absolute). Symlinks met on the way
// are followed inside the view (absolute targets from its root); the last
// component's is followed when follow is set.
func (v *View) resolve(ctx context.Context, p string, follow bool) (*node, string, error) {
	links := 0
restart:
	cur, err := v.mountNode(ctx, v.mountAt("/"))
	if err != nil {
		return nil, "", err
	}
	curPath := "/"
	comps := strings.Split(strings.Trim(p, "/"), "/")
	if p == "/" {
		comps = nil
	}
	for i, c := range comps {
		if !cur.isDir() {
			return nil, "", fmt.Errorf("%s is not a directory: %w", curPath, errdefs.ErrInvalidArgument)
		}
		childPath := path.Join(curPath, c)
		if c == ".." {
			p = path.Join(path.Dir(curPath), path.Join(comps[i+1:]...))
			goto restart
		}
		var child *node
		if m := v.mountAt(childPath); m != nil {
			child, err = v.mountNode(ctx, m)
		} else {
			child, err = v.lookup(ctx, cur, c)
		}
		if err != nil {
			return nil, "", err
		}
		if child == nil {
			return nil, "", fmt.Errorf("%s does not exist: %w", childPath, errdefs.ErrNotFound)
		}
		last := i == len(comps)-1
		if child.ent.Mode&ModeType == ModeLnk && (!last || follow) {
			links++
			if links > maxLinks {
				return nil, "", fmt.Errorf("%s: too many levels of symbolic links: %w", p, errdefs.ErrInvalidArgument)
			}
			target, err := v.readlink(ctx, child.top)
			if err != nil {
				return nil, "", err
			}
			if !strings.HasPrefix(target, "/") {
				target = path.Join(curPath, target)
			}
			p = path.Clean("/" + path.Join(target, path.Join(comps[i+1:]...)))
			goto restart
		}
		cur, curPath = child, childPath
	}
	return cur, curPath, nil
}

func (v *View) readlink(ctx context.Context, r layerRef) (string, error) {
	st, err := v.stat(ctx, r)
	if err != nil {
		return "", err
	}
	if st.HasFastLink {
		return st.FastLink, nil
	}
	return r.img.Readlink(ctx, r.ino)
}

// Stat returns the entry at p, following symlinks when follow is set.
func (v *View) Stat(ctx context.Context, p string, follow bool) (*Entry, error) {
	n, rp, err := v.resolve(ctx, p, follow)
	if err != nil {
		return nil, err
	}
	ents, err := v.entries(ctx, []*node{n}, []string{path.Base(rp)})
	if err != nil {
		return nil, err
	}
	return &ents[0], nil
}

// entries describes nodes (stat'ing them for mtimes and link targets).
func (v *View) entries(ctx context.Context, nodes []*node, names []string) ([]Entry, error) {
	byImg := map[*Image][]uint64{}
	for _, n := range nodes {
		byImg[n.top.img] = append(byImg[n.top.img], n.top.ino)
	}
	for img, inos := range byImg {
		if err := v.statAll(ctx, img, inos); err != nil {
			return nil, err
		}
	}
	out := make([]Entry, len(nodes))
	for i, n := range nodes {
		st := v.stats[n.top]
		e := Entry{Name: names[i], Type: TypeOf(n.ent.Mode), Mode: n.ent.Mode & 0o7777, Size: n.ent.Size, UID: n.ent.UID, GID: n.ent.GID, ref: n.top}
		if st != nil {
			e.Mtime = st.Mtime.UTC()
			if n.isDir() {
				e.Size = st.Size
			}
		}
		if e.Type == "symlink" {
			t, err := v.readlink(ctx, n.top)
			if err != nil {
				return nil, err
			}
			e.Target = t
		}
		out[i] = e
	}
	return out, nil
}

// List lists the directory at p (following symlinks to it), sorted by
// name. A path that is not a directory lists as itself.
func (v *View) List(ctx context.Context, p string) ([]Entry, error) {
	n, rp, err := v.resolve(ctx, p, true)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return v.entries(ctx, []*node{n}, []string{path.Base(rp)})
	}
	return v.listNode(ctx, n, rp)
}

func (v *View) listNode(ctx context.Context, n *node, dirPath string) ([]Entry, error) {
	seen := map[string]bool{}
	var nodes []*node
	var names []string
	for i, l := range n.layers {
		ents, err := v.list(ctx, l)
		if err != nil {
			return nil, err
		}
		upper := n.overlay && i == 0
		if upper {
			var chr []uint64
			for _, e := range ents {
				if e.Mode&ModeType == ModeChr {
					chr = append(chr, e.Ino)
				}
			}
			if err := v.statAll(ctx, l.img, chr); err != nil {
				return nil, err
			}
		}
		for j := range ents {
			e := &ents[j]
			if seen[e.Name] {
				continue
			}
			seen[e.Name] = true
			if upper {
				wh, err := v.isWhiteout(ctx, l.img, e)
				if err != nil {
					return nil, err
				}
				if wh {
					continue
				}
			}
			nodes = append(nodes, &node{ent: *e, top: layerRef{l.img, e.Ino}})
			names = append(names, e.Name)
		}
	}
	// Mount points under this directory show their mount's root.
	for _, m := range v.mounts {
		if m.Path != "/" && path.Dir(m.Path) == dirPath {
			mn, err := v.mountNode(ctx, &m)
			if err != nil {
				return nil, err
			}
			name := path.Base(m.Path)
			if k := indexOf(names, name); k >= 0 {
				nodes[k] = mn
			} else {
				nodes, names = append(nodes, mn), append(names, name)
			}
		}
	}
	out, err := v.entries(ctx, nodes, names)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func indexOf(l []string, s string) int {
	for i, x := range l {
		if x == s {
			return i
		}
	}
	return -1
}

// window passes on bytes [off, off+n) of what is written to it (n < 0:
// to the end).
type window struct {
	w      io.Writer
	skip   int64
	left   int64
	copied int64
	done   bool
}

func (w *window) Write(p []byte) (int, error) {
	total := len(p)
	if w.skip > 0 {
		if int64(len(p)) <= w.skip {
			w.skip -= int64(len(p))
			return total, nil
		}
		p = p[w.skip:]
		w.skip = 0
	}
	if w.left >= 0 && int64(len(p)) >= w.left {
		p = p[:w.left]
		w.done = true
	}
	n, err := w.w.Write(p)
	w.copied += int64(n)
	if w.left >= 0 {
		w.left -= int64(n)
	}
	if err != nil {
		return n, err
	}
	if w.done {
		return total, errWindowDone
	}
	return total, nil
}

var errWindowDone = fmt.Errorf("window complete")

// Cat writes bytes [off, off+n) of the regular file at p (symlinks
// followed) to w; n < 0 reads to the end. It returns the file's entry and
// the bytes written.
func (v *View) Cat(ctx context.Context, p string, off, n int64, w io.Writer) (*Entry, int64, error) {
	e, err := v.Stat(ctx, p, true)
	if err != nil {
		return nil, 0, err
	}
	if e.Type != "file" {
		return e, 0, fmt.Errorf("%s is a %s, not a regular file: %w", p, describeType(e.Type), errdefs.ErrInvalidArgument)
	}
	if off >= e.Size || n == 0 {
		return e, 0, nil
	}
	win := &window{w: w, skip: off, left: n}
	err = e.ref.img.Cat(ctx, e.ref.ino, win)
	if win.done {
		err = nil
	}
	return e, win.copied, err
}

func describeType(t string) string {
	switch t {
	case "dir":
		return "directory"
	case "other":
		return "special file"
	}
	return t
}

// Open streams the content of an entry returned by List, Stat or Walk.
func (v *View) Open(ctx context.Context, e *Entry, w io.Writer) error {
	return e.ref.img.Cat(ctx, e.ref.ino, w)
}

// WalkFunc receives each entry of a walk; rel is its path relative to
// the walk's root ("" for the root itself).
type WalkFunc func(rel string, e *Entry) error

// Walk visits p (following a symlink to it) and, if it is a directory,
// everything under it, parents before children, in name order. Mounts
// below p are entered.
func (v *View) Walk(ctx context.Context, p string, fn WalkFunc) error {
	n, rp, err := v.resolve(ctx, p, true)
	if err != nil {
		return err
	}
	ents, err := v.entries(ctx, []*node{n}, []string{path.Base(rp)})
	if err != nil {
		return err
	}
	if err := fn("", &ents[0]); err != nil {
		return err
	}
	if !n.isDir() {
		return nil
	}
	return v.walkDir(ctx, n, rp, "", fn)
}

func (v *View) walkDir(ctx context.Context, n *node, abs, rel string, fn WalkFunc) error {
	ents, err := v.listNode(ctx, n, abs)
	if err != nil {
		return err
	}
	for i := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := &ents[i]
		childRel := path.Join(rel, e.Name)
		if err := fn(childRel, e); err != nil {
			return err
		}
		if e.Type != "dir" {
			continue
		}
		childAbs := path.Join(abs, e.Name)
		var child *node
		if m := v.mountAt(childAbs); m != nil {
			child, err = v.mountNode(ctx, m)
		} else {
			child, err = v.lookup(ctx, n, e.Name)
		}
		if err != nil {
			return err
		}
		if child == nil {
			continue
		}
		if err := v.walkDir(ctx, child, childAbs, childRel, fn); err != nil {
			return err
		}
	}
	// Listings of a finished directory are not needed again.
	for _, l := range n.layers {
		delete(v.dirs, l)
	}
	return nil
}
