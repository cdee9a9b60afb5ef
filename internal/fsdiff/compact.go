package fsdiff

// This file normalises an edit script the way git's xdiff does
// (xdl_change_compact, without the indent heuristic): each run of changed
// lines is slid up as far as equal lines allow, merging with runs it
// touches, then down as far as possible; if somewhere on the way it lined
// up with a change in the other file, it is put there. The result has fewer,
// larger change groups, placed like git places them.

// side is one file's view for compaction: line ids and changed flags with
// a false sentinel at both ends (chg[i+1] is line i).
type side struct {
	recs []int32
	chg  []bool
}

func (s *side) changed(i int) bool { return s.chg[i+1] }
func (s *side) set(i int, v bool)  { s.chg[i+1] = v }
func (s *side) n() int             { return len(s.recs) }

// group is a maximal run [start, end) of changed lines, possibly empty.
type group struct{ start, end int }

func (s *side) first() group {
	g := group{}
	for s.changed(g.end) {
		g.end++
	}
	return g
}

func (s *side) next(g *group) bool {
	if g.end == s.n() {
		return false
	}
	g.start = g.end + 1
	g.end = g.start
	for s.changed(g.end) {
		g.end++
	}
	return true
}

func (s *side) prev(g *group) bool {
	if g.start == 0 {
		return false
	}
	g.end = g.start - 1
	g.start = g.end
	for s.changed(g.start - 1) {
		g.start--
	}
	return true
}

func (s *side) slideDown(g *group) bool {
	if g.end < s.n() && s.recs[g.start] == s.recs[g.end] {
		s.set(g.start, false)
		s.set(g.end, true)
		g.start++
		g.end++
		for s.changed(g.end) {
			g.end++
		}
		return true
	}
	return false
}

func (s *side) slideUp(g *group) bool {
	if g.start > 0 && s.recs[g.start-1] == s.recs[g.end-1] {
		g.start--
		g.end--
		s.set(g.start, true)
		s.set(g.end, false)
		for s.changed(g.start - 1) {
			g.start--
		}
		return true
	}
	return false
}

// compact normalises the changes of x against the other file o.
func compact(x, o *side) {
	g, og := x.first(), o.first()
	for {
		if g.end != g.start {
			var earliestEnd, endMatchingOther int
			for {
				size := g.end - g.start
				endMatchingOther = -1
				for x.slideUp(&g) {
					o.prev(&og)
				}
				earliestEnd = g.end
				if og.end > og.start {
					endMatchingOther = g.end
				}
				for x.slideDown(&g) {
					o.next(&og)
					if og.end > og.start {
						endMatchingOther = g.end
					}
				}
				if size == g.end-g.start {
					break
				}
			}
			if g.end != earliestEnd && endMatchingOther != -1 {
				for og.end == og.start {
					x.slideUp(&g)
					o.prev(&og)
				}
			}
		}
		if !x.next(&g) {
			break
		}
		o.next(&og)
	}
}

// compactBlocks applies compact to both files of a block list over line
// ids a and b and returns the new blocks.
func compactBlocks(a, b []int32, blocks []block) []block {
	x := &side{recs: a, chg: make([]bool, len(a)+2)}
	y := &side{recs: b, chg: make([]bool, len(b)+2)}
	for _, bl := range blocks {
		for i := bl.A0; i < bl.A1; i++ {
			x.set(i, true)
		}
		for j := bl.B0; j < bl.B1; j++ {
			y.set(j, true)
		}
	}
	compact(x, y)
	compact(y, x)
	// Walk both files in step, cutting at unchanged lines.
	var out []block
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if i < len(a) && j < len(b) && !x.changed(i) && !y.changed(j) {
			i++
			j++
			continue
		}
		bl := block{A0: i, B0: j}
		for i < len(a) && x.changed(i) {
			i++
		}
		for j < len(b) && y.changed(j) {
			j++
		}
		bl.A1, bl.B1 = i, j
		out = append(out, bl)
	}
	return out
}
