// Package ignore matches slash-separated relative paths against exclude
// patterns written in gitignore syntax. diff, export and sync push use it
// for their exclude arguments.
//
// The syntax is git's, one pattern per string:
//
//   - "*" matches any run of characters except "/"; "?" matches one
//     character except "/"; "[a-z]", "[!a-z]" (or "[^a-z]") and POSIX
//     classes such as "[[:digit:]]" match one character of a set.
//     A backslash makes the next character literal. Unlike git, which
//     compares bytes, "?" and classes match one UTF-8 character.
//   - A pattern without a "/" except at its end matches a name at any
//     depth ("*.pyc", "__pycache__/"). A pattern with a "/" at its start
//     or in its middle is anchored to the root of the operation
//     ("/build", "docs/*.html").
//   - A trailing "/" matches directories only.
//   - "**" as a whole component: "**/x" matches x at any depth, "a/**"
//     everything inside a (not a itself), "a/**/b" zero or more
//     directories between a and b. Elsewhere "**" is an ordinary "*".
//   - A leading "!" re-includes what an earlier pattern excluded. As in
//     git, nothing inside an excluded directory can be re-included.
//   - Trailing spaces are dropped unless escaped ("\ "); "\!" and "\#"
//     start a pattern with a literal "!" or "#".
//
// A pattern that is empty or a comment (a leading "#") is an error here:
// given as an argument, it is more likely a mistake than a choice.
package ignore

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// Matcher is a compiled list of patterns. The nil Matcher excludes nothing.
type Matcher struct {
	pats []pattern
}

type pattern struct {
	negate  bool
	dirOnly bool
	// segs are the components to match; a nil seg is "**".
	segs []segment
	// trailing is set for a pattern ending in "/**": it must match at
	// least one component below what comes before.
	trailing bool
}

// segment is one component of a pattern.
type segment []token

type tokenKind uint8

const (
	tLit   tokenKind = iota
	tAny             // ?
	tStar            // *
	tClass           // [...]
)

type token struct {
	kind  tokenKind
	r     rune
	class *class
}

type class struct {
	negate bool
	ranges [][2]rune
	named  []func(rune) bool
}

// Compile parses patterns. An empty list gives a nil Matcher. Errors wrap
// errdefs.ErrInvalidArgument and name the bad pattern.
func Compile(patterns []string) (*Matcher, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	m := &Matcher{}
	for _, s := range patterns {
		p, err := parse(s)
		if err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %s: %w", s, err, errdefs.ErrInvalidArgument)
		}
		m.pats = append(m.pats, p)
	}
	return m, nil
}

// MustCompile is Compile that panics on error, for tests and constants.
func MustCompile(patterns ...string) *Matcher {
	m, err := Compile(patterns)
	if err != nil {
		panic(err)
	}
	return m
}

func parse(s string) (pattern, error) {
	var p pattern
	s = trimTrailingSpace(s)
	switch {
	case s == "":
		return p, fmt.Errorf("empty pattern")
	case s[0] == '#':
		return p, fmt.Errorf(`a leading "#" makes a gitignore comment; write \# for a name that starts with "#"`)
	case s[0] == '!':
		p.negate = true
		s = s[1:]
	}
	if strings.HasSuffix(s, "/") && !strings.HasSuffix(s, `\/`) {
		p.dirOnly = true
		s = strings.TrimRight(s, "/")
	}
	if s == "" {
		return p, fmt.Errorf("pattern matches nothing")
	}
	anchored := strings.Contains(s, "/")
	s = strings.TrimPrefix(s, "/")
	if s == "" {
		return p, fmt.Errorf("pattern matches nothing")
	}
	parts := strings.Split(s, "/")
	if !anchored {
		p.segs = append(p.segs, nil) // "**/" in front
	}
	for i, part := range parts {
		if part == "**" {
			if i == len(parts)-1 && i > 0 {
				p.trailing = true
				continue
			}
			if len(p.segs) > 0 && p.segs[len(p.segs)-1] == nil {
				continue // "**/**" is one "**"
			}
			p.segs = append(p.segs, nil)
			continue
		}
		if part == "" {
			continue // "a//b" is "a/b"
		}
		seg, err := parseSegment(part)
		if err != nil {
			return p, err
		}
		p.segs = append(p.segs, seg)
	}
	return p, nil
}

// trimTrailingSpace drops trailing spaces that are not escaped.
func trimTrailingSpace(s string) string {
	for strings.HasSuffix(s, " ") {
		i := len(s) - 1
		// Count the backslashes before the space.
		n := 0
		for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
			n++
		}
		if n%2 == 1 {
			break
		}
		s = s[:i]
	}
	return s
}

func parseSegment(s string) (segment, error) {
	var seg segment
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("a trailing backslash escapes nothing")
			}
			r, n := utf8.DecodeRuneInString(s[i+1:])
			seg = append(seg, token{kind: tLit, r: r})
			i += 1 + n
		case '?':
			seg = append(seg, token{kind: tAny})
			i++
		case '*':
			for i < len(s) && s[i] == '*' {
				i++ // runs of "*" inside a component are one "*"
			}
			seg = append(seg, token{kind: tStar})
		case '[':
			cl, n, err := parseClass(s[i:])
			if err != nil {
				return nil, err
			}
			seg = append(seg, token{kind: tClass, class: cl})
			i += n
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			seg = append(seg, token{kind: tLit, r: r})
			i += n
		}
	}
	return seg, nil
}

var namedClasses = map[string]func(rune) bool{
	"alnum":  func(r rune) bool { return isAlpha(r) || isDigit(r) },
	"alpha":  isAlpha,
	"blank":  func(r rune) bool { return r == ' ' || r == '\t' },
	"cntrl":  func(r rune) bool { return r < 0x20 || r == 0x7f },
	"digit":  isDigit,
	"graph":  func(r rune) bool { return r > 0x20 && r < 0x7f },
	"lower":  func(r rune) bool { return r >= 'a' && r <= 'z' },
	"print":  func(r rune) bool { return r >= 0x20 && r < 0x7f },
	"punct":  func(r rune) bool { return r > 0x20 && r < 0x7f && !isAlpha(r) && !isDigit(r) },
	"space":  func(r rune) bool { return r == ' ' || (r >= '\t' && r <= '\r') },
	"upper":  func(r rune) bool { return r >= 'A' && r <= 'Z' },
	"xdigit": func(r rune) bool { return isDigit(r) || (r|0x20 >= 'a' && r|0x20 <= 'f') },
}

func isAlpha(r rune) bool { return r|0x20 >= 'a' && r|0x20 <= 'z' }
func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// parseClass parses a bracket expression at the start of s and returns it
// with the number of bytes it spans.
func parseClass(s string) (*class, int, error) {
	cl := &class{}
	i := 1
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		cl.negate = true
		i++
	}
	first := true
	for {
		if i >= len(s) {
			return nil, 0, fmt.Errorf("unterminated character class %q (escape a literal [ as \\[)", s)
		}
		if s[i] == ']' && !first {
			return cl, i + 1, nil
		}
		first = false
		if strings.HasPrefix(s[i:], "[:") {
			end := strings.Index(s[i+2:], ":]")
			if end < 0 {
				return nil, 0, fmt.Errorf("unterminated character class %q", s)
			}
			name := s[i+2 : i+2+end]
			fn, ok := namedClasses[name]
			if !ok {
				return nil, 0, fmt.Errorf("unknown character class [:%s:]", name)
			}
			cl.named = append(cl.named, fn)
			i += 2 + end + 2
			continue
		}
		lo, n := classChar(s[i:])
		if n == 0 {
			return nil, 0, fmt.Errorf("unterminated character class %q", s)
		}
		i += n
		hi := lo
		if i+1 < len(s) && s[i] == '-' && s[i+1] != ']' {
			h, m := classChar(s[i+1:])
			if m == 0 {
				return nil, 0, fmt.Errorf("unterminated character class %q", s)
			}
			hi = h
			i += 1 + m
			if hi < lo {
				return nil, 0, fmt.Errorf("character range %c-%c is reversed", lo, hi)
			}
		}
		cl.ranges = append(cl.ranges, [2]rune{lo, hi})
	}
}

// classChar reads one (possibly escaped) character of a bracket expression.
func classChar(s string) (rune, int) {
	if s == "" {
		return 0, 0
	}
	if s[0] == '\\' {
		if len(s) < 2 {
			return 0, 0
		}
		r, n := utf8.DecodeRuneInString(s[1:])
		return r, 1 + n
	}
	return utf8.DecodeRuneInString(s)
}

func (c *class) match(r rune) bool {
	in := false
	for _, rg := range c.ranges {
		if r >= rg[0] && r <= rg[1] {
			in = true
			break
		}
	}
	if !in {
		for _, fn := range c.named {
			if fn(r) {
				in = true
				break
			}
		}
	}
	return in != c.negate
}

// matchSegment matches one path component against a pattern component.
func matchSegment(seg segment, name string) bool {
	// Backtracking on the last star: linear for patterns with one star,
	// and never worse than len(seg)*len(name).
	ti, ni := 0, 0
	starT, starN := -1, 0
	for ni < len(name) || ti < len(seg) {
		if ti < len(seg) {
			t := seg[ti]
			switch t.kind {
			case tStar:
				starT, starN = ti, ni
				ti++
				continue
			case tAny, tLit, tClass:
				if ni < len(name) {
					r, n := utf8.DecodeRuneInString(name[ni:])
					ok := t.kind == tAny || (t.kind == tLit && r == t.r) || (t.kind == tClass && t.class.match(r))
					if ok {
						ti++
						ni += n
						continue
					}
				}
			}
		}
		if starT >= 0 && starN < len(name) {
			_, n := utf8.DecodeRuneInString(name[starN:])
			starN += n
			ti, ni = starT+1, starN
			continue
		}
		return false
	}
	return true
}

// matchSegs matches pattern components (nil = "**") against path
// components.
func matchSegs(segs []segment, parts []string) bool {
	if len(segs) == 0 {
		return len(parts) == 0
	}
	if segs[0] == nil {
		// "**": zero or more components.
		for i := 0; i <= len(parts); i++ {
			if matchSegs(segs[1:], parts[i:]) {
				return true
			}
		}
		return false
	}
	if len(parts) == 0 || !matchSegment(segs[0], parts[0]) {
		return false
	}
	return matchSegs(segs[1:], parts[1:])
}

func (p *pattern) match(parts []string, isDir bool) bool {
	if p.dirOnly && !isDir {
		return false
	}
	if p.trailing {
		// "a/**": a strict prefix of the path matches the rest.
		for i := len(parts) - 1; i >= 1; i-- {
			if matchSegs(p.segs, parts[:i]) {
				return true
			}
		}
		return false
	}
	return matchSegs(p.segs, parts)
}

// decide applies every pattern, last match winning, to one path.
func (m *Matcher) decide(parts []string, isDir bool) bool {
	excluded := false
	for i := range m.pats {
		p := &m.pats[i]
		if p.negate != excluded {
			continue // cannot change the outcome
		}
		if p.match(parts, isDir) {
			excluded = !p.negate
		}
	}
	return excluded
}

// Excluded reports whether the relative slash-separated path rel (a
// directory when isDir) is excluded, either itself or because a directory
// above it is.
func (m *Matcher) Excluded(rel string, isDir bool) bool {
	if m == nil || rel == "" || rel == "." {
		return false
	}
	parts := strings.Split(strings.Trim(rel, "/"), "/")
	for i := 1; i < len(parts); i++ {
		if m.decide(parts[:i], true) {
			return true
		}
	}
	return m.decide(parts, isDir)
}

// ExcludedSelf is Excluded without the check of the directories above
// rel, for walkers that skip excluded directories and so never reach
// what lies inside them.
func (m *Matcher) ExcludedSelf(rel string, isDir bool) bool {
	if m == nil || rel == "" || rel == "." {
		return false
	}
	return m.decide(strings.Split(strings.Trim(rel, "/"), "/"), isDir)
}
