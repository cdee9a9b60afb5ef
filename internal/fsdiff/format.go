package fsdiff

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// gitMode is the git-style mode of an entry: 100xxx for files (with the
// real permission bits), 120000 for symlinks, 040000 for directories.
func gitMode(typ, perm string) string {
	switch typ {
	case typeSymlink:
		return "120000"
	case typeDir:
		return "040000"
	}
	p, _ := strconv.ParseUint(perm, 8, 32)
	return fmt.Sprintf("100%03o", p&0o777)
}

// FormatGit writes r like `git diff`: a "diff --git" header per path, mode
// lines, "Binary files ... differ", then the patch. A type change is shown
// as a deletion followed by an addition, as git does.
func FormatGit(w io.Writer, r *Result) error {
	var sb strings.Builder
	for _, f := range r.Files {
		a, b := "a/"+f.Path, "b/"+f.Path
		head := "diff --git " + a + " " + b + "\n"
		switch f.Status {
		case Added:
			sb.WriteString(head + "new file mode " + gitMode(f.Type, f.NewMode) + "\n")
			body(&sb, f, "/dev/null", b)
		case Deleted:
			sb.WriteString(head + "deleted file mode " + gitMode(f.Type, f.OldMode) + "\n")
			body(&sb, f, a, "/dev/null")
		case TypeChanged:
			sb.WriteString(head + "deleted file mode " + gitMode(f.OldType, f.OldMode) + "\n")
			sb.WriteString(head + "new file mode " + gitMode(f.Type, f.NewMode) + "\n")
		case ModeChanged, Modified:
			sb.WriteString(head)
			if om, nm := gitMode(f.Type, f.OldMode), gitMode(f.Type, f.NewMode); om != nm {
				sb.WriteString("old mode " + om + "\nnew mode " + nm + "\n")
			}
			if f.Status == Modified {
				body(&sb, f, a, b)
			}
		}
		if sb.Len() > 64<<10 {
			if _, err := io.WriteString(w, sb.String()); err != nil {
				return err
			}
			sb.Reset()
		}
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// omittedHint says how to get a patch that was left out.
func omittedHint(reason string) string {
	switch reason {
	case OmittedTooLarge, OmittedPatchTooLarge:
		return "; raise max_patch_bytes (--max-patch-bytes) or export the file"
	case OmittedBudget:
		return "; diff this path alone, or raise max_total_patch_bytes (--max-total-patch-bytes)"
	}
	return ""
}

func body(sb *strings.Builder, f File, a, b string) {
	switch {
	case f.Binary:
		fmt.Fprintf(sb, "Binary files %s and %s differ\n", a, b)
	case f.PatchOmitted != "":
		fmt.Fprintf(sb, "Files %s and %s differ (patch omitted: %s%s)\n", a, b, f.PatchOmitted, omittedHint(f.PatchOmitted))
	default:
		sb.WriteString(f.Patch)
	}
}

// FormatStat writes r like `git diff --stat`: " path | N +++--" per path
// ("Bin X -> Y bytes" for binary files) and the summary line
// " N files changed, X insertions(+), Y deletions(-)". The graph is scaled
// to fit 80 columns.
func FormatStat(w io.Writer, r *Result) error {
	if len(r.Files) == 0 {
		return nil
	}
	nameW, maxN := 0, 0
	for _, f := range r.Files {
		nameW = max(nameW, len(f.Path))
		if !f.Binary && CountsKnown(&f) {
			maxN = max(maxN, f.Insertions+f.Deletions)
		}
	}
	numW := len(strconv.Itoa(maxN))
	graphW := max(80-nameW-numW-6, 10)
	graphW = min(graphW, 50)
	scale := func(n int) int {
		if maxN <= graphW || n == 0 {
			return n
		}
		return 1 + n*(graphW-1)/maxN
	}
	var sb strings.Builder
	for _, f := range r.Files {
		fmt.Fprintf(&sb, " %-*s | ", nameW, f.Path)
		switch {
		case f.Binary:
			fmt.Fprintf(&sb, "Bin %d -> %d bytes", deref(f.OldSize), deref(f.NewSize))
		case !CountsKnown(&f):
			sb.WriteString("? (" + f.PatchOmitted + ")")
		default:
			n := f.Insertions + f.Deletions
			fmt.Fprintf(&sb, "%*d", numW, n)
			if n > 0 {
				plus, minus := scale(f.Insertions), scale(f.Deletions)
				if plus+minus > graphW { // rounding
					if plus > minus {
						plus = graphW - minus
					} else {
						minus = graphW - plus
					}
				}
				sb.WriteString(" " + strings.Repeat("+", plus) + strings.Repeat("-", minus))
			}
		}
		sb.WriteString("\n")
	}
	s := r.Summary
	fmt.Fprintf(&sb, " %d %s changed", len(r.Files), plural(len(r.Files), "file", "files"))
	if s.Insertions > 0 || s.Deletions == 0 {
		fmt.Fprintf(&sb, ", %d %s(+)", s.Insertions, plural(s.Insertions, "insertion", "insertions"))
	}
	if s.Deletions > 0 || s.Insertions == 0 {
		fmt.Fprintf(&sb, ", %d %s(-)", s.Deletions, plural(s.Deletions, "deletion", "deletions"))
	}
	sb.WriteString("\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
