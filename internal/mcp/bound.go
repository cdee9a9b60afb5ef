package mcp

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/fsdiff"
)

// Bounds on what one MCP result carries, so a result fits in a model's
// context. The full data stays reachable through other tools (command_read
// for command output, workspace_diff with paths or workspace_export for
// files).
const (
	// StreamHead and StreamTail are the bytes of each command output
	// stream kept from its start and from its end.
	StreamHead = 16 << 10
	StreamTail = 16 << 10
	// PatchFileLimit bounds one file's patch; PatchTotalLimit all patches
	// of one diff result.
	PatchFileLimit  = 16 << 10
	PatchTotalLimit = 64 << 10
	// ReadLimit bounds command_read's limit.
	ReadLimit = 64 << 10
)

// cut is what headTail removed: the stream bytes [From, To).
type cut struct {
	From, To int64
}

// headTail keeps the first head and last tail bytes of s, cutting on
// UTF-8 boundaries, with a marker line between naming the removed byte
// range. ok is false when s fits and is returned unchanged.
func headTail(s string, head, tail int, marker func(c cut) string) (string, cut, bool) {
	if len(s) <= head+tail {
		return s, cut{}, false
	}
	h := head
	for h > 0 && !utf8.RuneStart(s[h]) {
		h--
	}
	t := len(s) - tail
	for t < len(s) && !utf8.RuneStart(s[t]) {
		t++
	}
	c := cut{From: int64(h), To: int64(t)}
	var b strings.Builder
	b.Grow(h + (len(s) - t) + 200)
	b.WriteString(s[:h])
	if h > 0 && s[h-1] != '\n' {
		b.WriteByte('\n')
	}
	b.WriteString(marker(c))
	b.WriteByte('\n')
	b.WriteString(s[t:])
	return b.String(), c, true
}

// boundExec limits res's stdout and stderr to StreamHead+StreamTail bytes
// each (in place), sets the *_truncated flags, and returns notes for the
// model saying what was cut and how to read it (command_read).
func boundExec(res *api.ExecResult) []string {
	if res == nil {
		return nil
	}
	var notes []string
	for _, st := range []struct {
		name      string
		data      *string
		enc       string
		total     int64
		truncated *bool
	}{
		{"stdout", &res.Stdout, res.StdoutEncoding, res.StdoutBytes, &res.StdoutTruncated},
		{"stderr", &res.Stderr, res.StderrEncoding, res.StderrBytes, &res.StderrTruncated},
	} {
		kept := int64(len(*st.data))
		if st.enc == "base64" {
			raw, err := base64.StdEncoding.DecodeString(*st.data)
			if err != nil {
				continue
			}
			kept = int64(len(raw))
			if len(raw) > StreamHead+StreamTail {
				// A marker line would break base64: keep the head only.
				*st.data = base64.StdEncoding.EncodeToString(raw[:StreamHead+StreamTail])
				*st.truncated = true
				notes = append(notes, fmt.Sprintf("%s (base64) shows its first %d bytes of %d; read the rest with command_read (command_id %q, stream %q, offset %d).",
					st.name, StreamHead+StreamTail, st.total, res.CommandID, st.name, StreamHead+StreamTail))
				continue
			}
		} else {
			id, name := res.CommandID, st.name
			out, c, ok := headTail(*st.data, StreamHead, StreamTail, func(c cut) string {
				return fmt.Sprintf("[hearth: %d bytes of %s cut here (bytes %d to %d); read them with command_read command_id=%q stream=%q offset=%d]",
					c.To-c.From, name, c.From, c.To, id, name, c.From)
			})
			if ok {
				*st.data = out
				*st.truncated = true
				notes = append(notes, fmt.Sprintf("%s was cut to its first and last 16 KiB (bytes %d to %d left out): page them with command_read offset=%d.",
					st.name, c.From, c.To, c.From))
			}
		}
		if st.total > kept {
			*st.truncated = true
			if res.CommandID != "" {
				notes = append(notes, fmt.Sprintf("%s has %d bytes in all, of which the first %d were captured: read on with command_read stream=%q offset=%d.",
					st.name, st.total, kept, st.name, kept))
			}
		}
	}
	return notes
}

// boundDiff limits the patches of r (in place): a patch over PatchFileLimit
// keeps its head, cut at a line end, and says so; once PatchTotalLimit is
// used up, later patches are left out with a pointer to workspace_diff
// with paths. It returns notes for the model.
func boundDiff(r *fsdiff.Result) []string {
	if r == nil {
		return nil
	}
	var cutFiles, dropped []string
	total := 0
	for i := range r.Files {
		f := &r.Files[i]
		if f.Patch == "" {
			continue
		}
		if rest := PatchTotalLimit - total; rest < 4096 && len(f.Patch) > rest {
			f.PatchOmitted = fmt.Sprintf("left out to bound this result (%d bytes): call workspace_diff with paths=[%q] to see it", len(f.Patch), f.Path)
			f.Patch = ""
			dropped = append(dropped, f.Path)
			continue
		}
		limit := min(PatchFileLimit, PatchTotalLimit-total)
		if len(f.Patch) > limit {
			n := len(f.Patch)
			keep := strings.LastIndexByte(f.Patch[:limit], '\n') + 1
			if keep == 0 {
				keep = limit
				for keep > 0 && !utf8.RuneStart(f.Patch[keep]) {
					keep--
				}
			}
			f.Patch = f.Patch[:keep] + fmt.Sprintf("[hearth: patch cut after %d of %d bytes; see the whole file with workspace_export guest_path=%q]\n", keep, n, f.Path)
			f.PatchOmitted = fmt.Sprintf("cut after %d of %d bytes: workspace_export the file (or workspace_diff with paths=[%q] when other patches crowded it out)", keep, n, f.Path)
			cutFiles = append(cutFiles, f.Path)
		}
		total += len(f.Patch)
	}
	var notes []string
	if len(cutFiles) > 0 {
		notes = append(notes, fmt.Sprintf("Patches cut short (%s): export a file with workspace_export to see it whole.", listShort(cutFiles)))
	}
	if len(dropped) > 0 {
		notes = append(notes, fmt.Sprintf("Patches left out to keep this result small (%s): call workspace_diff with paths to see them.", listShort(dropped)))
	}
	return notes
}

// listShort joins up to five names and says how many more there are.
func listShort(names []string) string {
	if len(names) <= 5 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:5], ", "), len(names)-5)
}
