package fsdiff

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxEditCost bounds the Myers search (edit distance D, memory ~D² int32s);
// myersBudget bounds its time ((N+M)·D steps). Beyond them the range is
// split at lines unique to both sides (patience anchors) and each piece is
// diffed alone; a piece without anchors that is still too costly is
// reported as one replaced block: a correct patch, just not a minimal one.
const (
	maxEditCost = 1500
	myersBudget = 40_000_000
)

// IsBinary reports whether content should be treated as binary: a NUL byte
// in the first 8000 bytes (git's rule), or content that is not valid UTF-8
// (a JSON patch could not carry it faithfully).
func IsBinary(b []byte) bool {
	head := b
	if len(head) > 8000 {
		head = head[:8000]
	}
	return bytes.IndexByte(head, 0) >= 0 || !utf8.Valid(b)
}

// block is one change: a[A0:A1] replaced by b[B0:B1].
type block struct{ A0, A1, B0, B1 int }

// splitLines splits after each '\n'; a final line without one is kept.
func splitLines(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}

// diffBlocks returns the change blocks turning a into b, in order.
func diffBlocks(a, b []string) []block {
	// Trim the common prefix and suffix; intern the rest.
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ids := map[string]int32{}
	var indents []int // per line id, for the indent heuristic
	intern := func(ls []string) []int32 {
		out := make([]int32, len(ls))
		for i, l := range ls {
			id, ok := ids[l]
			if !ok {
				id = int32(len(ids))
				ids[l] = id
				indents = append(indents, lineIndent(l))
			}
			out[i] = id
		}
		return out
	}
	x, y := intern(a), intern(b)
	if pre == len(a) && pre == len(b) {
		return nil
	}
	var blocks []block
	diffRange(x[pre:len(x)-suf], y[pre:len(y)-suf], pre, pre, &blocks)
	return compactBlocks(x, y, indents, blocks)
}

// myers runs the O((N+M)D) greedy algorithm, keeping for each d only the
// diagonals -d..d, and backtracks into change blocks. ok is false if the
// edit distance exceeds maxD.
func myers(a, b []int32, maxD int) ([]block, bool) {
	n, m := len(a), len(b)
	max := n + m
	if max < maxD {
		maxD = max
	}
	var trace [][]int32 // trace[d][k+d] = furthest x on diagonal k after step d
	prev := []int32{0}
	var final int
	found := false
	for d := 0; d <= maxD && !found; d++ {
		cur := make([]int32, 2*d+1)
		get := func(k int) int32 { return prev[k+d-1] } // prev covers -(d-1)..d-1
		for k := -d; k <= d; k += 2 {
			var x int
			if d == 0 {
				x = 0
			} else if k == -d || (k != d && get(k-1) < get(k+1)) {
				x = int(get(k + 1))
			} else {
				x = int(get(k-1)) + 1
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			cur[k+d] = int32(x)
			if x >= n && y >= m {
				found, final = true, d
				break
			}
		}
		trace = append(trace, cur)
		prev = cur
	}
	if !found {
		return nil, false
	}
	// Backtrack from (n, m), collecting single-line edits in reverse.
	type edit struct {
		del  bool
		a, b int
	}
	var edits []edit
	x, y := n, m
	for d := final; d > 0; d-- {
		p := trace[d-1]
		get := func(k int) int { return int(p[k+d-1]) }
		k := x - y
		var pk int
		if k == -d || (k != d && get(k-1) < get(k+1)) {
			pk = k + 1 // came down: insertion of b[y-1]
		} else {
			pk = k - 1 // came right: deletion of a[x-1]
		}
		px := get(pk)
		py := px - pk
		if pk == k+1 {
			edits = append(edits, edit{false, px, py}) // b[py] inserted before a[px]
		} else {
			edits = append(edits, edit{true, px, py}) // a[px] deleted at b position py
		}
		x, y = px, py
	}
	// Group edits (reversed) into blocks of adjacent changes.
	var blocks []block
	for i := len(edits) - 1; i >= 0; i-- {
		e := edits[i]
		a0, b0 := e.a, e.b
		if len(blocks) > 0 {
			l := &blocks[len(blocks)-1]
			if e.a == l.A1 && e.b == l.B1 {
				if e.del {
					l.A1++
				} else {
					l.B1++
				}
				continue
			}
		}
		if e.del {
			blocks = append(blocks, block{a0, a0 + 1, b0, b0})
		} else {
			blocks = append(blocks, block{a0, a0, b0, b0 + 1})
		}
	}
	return blocks, true
}

// UnifiedDiff returns a git-style unified diff of old and new ("--- a/path",
// "+++ b/path", "@@ -l,n +l,n @@" hunks with context lines of context, and
// "\ No newline at end of file" markers) with the number of inserted and
// deleted lines. Identical inputs give an empty patch. The line diff is
// Myers' algorithm followed by git's change compaction (see compact.go), so
// ordinary edits produce the same hunks as `git diff` (git's indent
// heuristic is not applied, so a few ambiguous edits are placed
// differently). Deleted lines come before inserted ones within a change;
// hunk headers carry git's default function context. Inputs with very many
// changes are split at lines unique to both sides first (see diffRange), so
// the cost stays bounded; the patch is always correct, if not always
// minimal.
func UnifiedDiff(path string, old, new []byte, context int) (patch string, ins, del int) {
	return unified("a/"+path, "b/"+path, old, new, context)
}

func unified(oldName, newName string, old, new []byte, context int) (string, int, int) {
	if context < 0 {
		context = 0
	}
	a, b := splitLines(old), splitLines(new)
	blocks := diffBlocks(a, b)
	if len(blocks) == 0 {
		return "", 0, 0
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", oldName, newName)
	line := func(prefix byte, s string) {
		sb.WriteByte(prefix)
		sb.WriteString(s)
		if !strings.HasSuffix(s, "\n") {
			sb.WriteString("\n\\ No newline at end of file\n")
		}
	}
	ins, del := 0, 0
	for i := 0; i < len(blocks); {
		j := i // blocks i..j form one hunk
		for j+1 < len(blocks) && blocks[j+1].A0-blocks[j].A1 <= 2*context {
			j++
		}
		a0 := max(0, blocks[i].A0-context)
		a1 := min(len(a), blocks[j].A1+context)
		b0 := blocks[i].B0 - (blocks[i].A0 - a0)
		b1 := blocks[j].B1 + (a1 - blocks[j].A1)
		fmt.Fprintf(&sb, "@@ -%s +%s @@%s\n", rangeStr(a0, a1-a0), rangeStr(b0, b1-b0), funcContext(a, a0))
		pos := a0
		for _, bl := range blocks[i : j+1] {
			for ; pos < bl.A0; pos++ {
				line(' ', a[pos])
			}
			for _, s := range a[bl.A0:bl.A1] {
				line('-', s)
			}
			for _, s := range b[bl.B0:bl.B1] {
				line('+', s)
			}
			del += bl.A1 - bl.A0
			ins += bl.B1 - bl.B0
			pos = bl.A1
		}
		for ; pos < a1; pos++ {
			line(' ', a[pos])
		}
		i = j + 1
	}
	return sb.String(), ins, del
}

// CountLines returns the number of lines of b as a patch counts them: a
// last line without a newline counts.
func CountLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// countLines returns the lines a patch from old to new would insert and
// delete, without writing the patch.
func countLines(old, new []byte) (ins, del int) {
	for _, bl := range diffBlocks(splitLines(old), splitLines(new)) {
		del += bl.A1 - bl.A0
		ins += bl.B1 - bl.B0
	}
	return ins, del
}

// rangeStr formats a hunk range like xdiff: "l,n", "l" when n is 1, and
// the line before the hunk when n is 0.
func rangeStr(start, n int) string {
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

// funcContext is git's default hunk-header function line: the nearest line
// before the hunk that starts with a letter, '_' or '$', trimmed and cut
// to 80 bytes, preceded by a space.
func funcContext(a []string, start int) string {
	for i := start - 1; i >= 0; i-- {
		l := a[i]
		if l == "" {
			continue
		}
		c := l[0]
		if c == '_' || c == '$' || (c|0x20 >= 'a' && c|0x20 <= 'z') {
			if len(l) > 80 {
				l = l[:80]
			}
			return " " + strings.TrimRight(l, " \t\r\n\v\f")
		}
	}
	return ""
}
