package fsdiff

// This file normalises an edit script the way git's xdiff does
// (xdl_change_compact with the indent heuristic, git's default): each run
// of changed lines is slid up as far as equal lines allow, merging with runs
// it touches, then down as far as possible; if somewhere on the way it lined
// up with a change in the other file, it is put there, otherwise where
// blank lines and indentation make the most natural split. The result has
// fewer, larger change groups, placed like git places them.

// side is one file's view for compaction: line ids and changed flags with
// a false sentinel at both ends (chg[i+1] is line i).
type side struct {
	recs    []int32
	chg     []bool
	indents []int // by line id: indentation width, -1 for blank lines
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
			} else if g.end != earliestEnd {
				best := x.bestShift(g, earliestEnd)
				for g.end > best {
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
func compactBlocks(a, b []int32, indents []int, blocks []block) []block {
	x := &side{recs: a, chg: make([]bool, len(a)+2), indents: indents}
	y := &side{recs: b, chg: make([]bool, len(b)+2), indents: indents}
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

// Indent heuristic constants, as in git's xdiffi.c.
const (
	maxIndent                       = 200
	maxBlanks                       = 20
	startOfFilePenalty              = 1
	endOfFilePenalty                = 21
	totalBlankWeight                = -30
	postBlankWeight                 = 6
	relativeIndentPenalty           = -4
	relativeIndentWithBlankPenalty  = 10
	relativeOutdentPenalty          = 24
	relativeOutdentWithBlankPenalty = 17
	relativeDedentPenalty           = 23
	relativeDedentWithBlankPenalty  = 17
	indentWeight                    = 60
	maxSliding                      = 100
)

// lineIndent is the indentation width of a line (tabs to multiples of 8),
// or -1 if the line is blank.
func lineIndent(l string) int {
	n := 0
	for i := 0; i < len(l); i++ {
		switch l[i] {
		case ' ':
			n++
		case '\t':
			n += 8 - n%8
		case '\n', '\r', '\f', '\v':
		default:
			return n
		}
		if n >= maxIndent {
			return maxIndent
		}
	}
	return -1
}

type splitMeasure struct {
	eof                                                bool
	indent, preBlank, preIndent, postBlank, postIndent int
}

func (s *side) indent(i int) int { return s.indents[s.recs[i]] }

func (s *side) measure(split int) splitMeasure {
	m := splitMeasure{indent: -1, preIndent: -1, postIndent: -1}
	if split >= s.n() {
		m.eof = true
	} else {
		m.indent = s.indent(split)
	}
	for i := split - 1; i >= 0; i-- {
		if m.preIndent = s.indent(i); m.preIndent != -1 {
			break
		}
		if m.preBlank++; m.preBlank == maxBlanks {
			m.preIndent = 0
			break
		}
	}
	for i := split + 1; i < s.n(); i++ {
		if m.postIndent = s.indent(i); m.postIndent != -1 {
			break
		}
		if m.postBlank++; m.postBlank == maxBlanks {
			m.postIndent = 0
			break
		}
	}
	return m
}

type splitScore struct{ effectiveIndent, penalty int }

func (sc *splitScore) add(m splitMeasure) {
	if m.preIndent == -1 && m.preBlank == 0 {
		sc.penalty += startOfFilePenalty
	}
	if m.eof {
		sc.penalty += endOfFilePenalty
	}
	postBlank := 0
	if m.indent == -1 {
		postBlank = 1 + m.postBlank
	}
	totalBlank := m.preBlank + postBlank
	sc.penalty += totalBlankWeight*totalBlank + postBlankWeight*postBlank
	indent := m.indent
	if indent == -1 {
		indent = m.postIndent
	}
	anyBlanks := totalBlank != 0
	sc.effectiveIndent += indent
	pick := func(withBlank, without int) int {
		if anyBlanks {
			return withBlank
		}
		return without
	}
	switch {
	case indent == -1 || m.preIndent == -1 || indent == m.preIndent:
	case indent > m.preIndent:
		sc.penalty += pick(relativeIndentWithBlankPenalty, relativeIndentPenalty)
	case m.postIndent != -1 && m.postIndent > indent:
		sc.penalty += pick(relativeOutdentWithBlankPenalty, relativeOutdentPenalty)
	default:
		sc.penalty += pick(relativeDedentWithBlankPenalty, relativeDedentPenalty)
	}
}

func (a splitScore) cmp(b splitScore) int {
	c := 0
	if a.effectiveIndent > b.effectiveIndent {
		c = 1
	} else if a.effectiveIndent < b.effectiveIndent {
		c = -1
	}
	return indentWeight*c + a.penalty - b.penalty
}

// bestShift returns the end position, between earliestEnd and g.end, at
// which group g splits the file most naturally (ties go to the later one).
func (s *side) bestShift(g group, earliestEnd int) int {
	size := g.end - g.start
	shift := max(earliestEnd, g.end-size-1, g.end-maxSliding)
	best := -1
	var bestScore splitScore
	for ; shift <= g.end; shift++ {
		var sc splitScore
		sc.add(s.measure(shift))
		sc.add(s.measure(shift - size))
		if best == -1 || sc.cmp(bestScore) <= 0 {
			best, bestScore = shift, sc
		}
	}
	return best
}
