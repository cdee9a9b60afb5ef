package secrets

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Secret is a named value to redact.
type Secret struct {
	Name  string
	Value []byte
}

// form is one byte sequence that reveals a secret.
type form struct {
	pat  []byte
	repl []byte
}

// Redactor replaces the forms of secret values (the plain bytes, their
// base64 in the standard and URL alphabets with and without padding, and
// their URL encodings) with [REDACTED:NAME]. Only those bytes change. A nil
// *Redactor redacts nothing; its methods return their input.
type Redactor struct {
	secs   []Secret
	forms  []form
	maxLen int
	// groups are the forms' indexes by first byte (longest first): one
	// IndexByte pass per distinct first byte finds candidates for all.
	groups []group
}

type group struct {
	c     byte
	forms []int
}

// Marker is the text a secret's value is replaced with.
func Marker(name string) string { return "[REDACTED:" + name + "]" }

// NewRedactor returns a redactor of secs, or nil when there is nothing to
// redact. Values shorter than MinValue are skipped (the store refuses
// them).
func NewRedactor(secs []Secret) *Redactor {
	seen := map[string]bool{}
	r := &Redactor{secs: secs}
	add := func(p string, name string) {
		if len(p) < MinValue || seen[p] {
			return
		}
		seen[p] = true
		r.forms = append(r.forms, form{pat: []byte(p), repl: []byte(Marker(name))})
		r.maxLen = max(r.maxLen, len(p))
	}
	for _, s := range secs {
		v := string(s.Value)
		for _, p := range Forms(v) {
			add(p, s.Name)
		}
	}
	if len(r.forms) == 0 {
		return nil
	}
	// Longest first: at one position the longest form wins (the padded
	// base64 over the unpadded, a secret over a shorter one it starts with).
	sort.SliceStable(r.forms, func(i, j int) bool { return len(r.forms[i].pat) > len(r.forms[j].pat) })
	byFirst := map[byte]int{}
	for k, f := range r.forms {
		g, ok := byFirst[f.pat[0]]
		if !ok {
			g = len(r.groups)
			byFirst[f.pat[0]] = g
			r.groups = append(r.groups, group{c: f.pat[0]})
		}
		r.groups[g].forms = append(r.groups[g].forms, k)
	}
	return r
}

// Forms returns the encodings of v that are redacted: v itself (and v
// without surrounding white space), its base64 (standard and URL
// alphabets, padded and not) and its URL encodings (query and path).
func Forms(v string) []string {
	out := []string{v}
	if t := strings.TrimSpace(v); t != v && t != "" {
		out = append(out, t)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		out = append(out, enc.EncodeToString([]byte(v)))
	}
	out = append(out, url.QueryEscape(v), url.PathEscape(v))
	return out
}

// Secrets returns the secrets r redacts.
func (r *Redactor) Secrets() []Secret {
	if r == nil {
		return nil
	}
	return r.secs
}

// MaxHold is the most bytes a streaming writer holds back: the longest
// form less one.
func (r *Redactor) MaxHold() int {
	if r == nil {
		return 0
	}
	return r.maxLen - 1
}

// Names returns the names of the secrets redacted.
func (r *Redactor) Names() []string {
	if r == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range r.forms {
		n := string(f.repl)
		if !seen[n] {
			seen[n] = true
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(n, "[REDACTED:"), "]"))
		}
	}
	sort.Strings(out)
	return out
}

// Bytes returns b with every form replaced (b itself when none occurs).
func (r *Redactor) Bytes(b []byte) []byte {
	if r == nil {
		return b
	}
	out, _, _ := r.scan(nil, b, true)
	return out
}

// String is Bytes for a string.
func (r *Redactor) String(s string) string {
	if r == nil || s == "" {
		return s
	}
	return string(r.Bytes([]byte(s)))
}

// Error returns err with its message redacted, keeping what errors.Is and
// errors.As find in it; err itself when nothing changes.
func (r *Redactor) Error(err error) error {
	if r == nil || err == nil {
		return err
	}
	msg := err.Error()
	red := r.String(msg)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Split redacts a prefix of buf that is decided and says how many bytes
// at its end are held back (at most MaxHold): a form may begin there and
// end in bytes not yet seen, or a longer form may still match where a
// shorter one did. Redact buf[len(buf)-held:] together with what follows.
func (r *Redactor) Split(buf []byte) (out []byte, held int) {
	if r == nil {
		return buf, 0
	}
	out, n, changed := r.scan(nil, buf, false)
	rest := buf[n:]
	q := r.holdFrom(rest)
	if q > 0 {
		if !changed {
			out = buf[:n+q] // nothing replaced: out aliases buf
		} else {
			out = append(out, rest[:q]...)
		}
	}
	return out, len(rest) - q
}

// mayComplete reports whether a form could begin at a position in
// [from, to] and run past the end of buf.
func (r *Redactor) mayComplete(buf []byte, from, to int) bool {
	for q := from; q <= to; q++ {
		t := buf[q:]
		for _, f := range r.forms {
			if len(f.pat) > len(t) && bytes.HasPrefix(f.pat, t) {
				return true
			}
		}
	}
	return false
}

// holdFrom returns the first position in b where a form starts (whole in
// b) or where b's end is a proper prefix of a form; len(b) when none.
func (r *Redactor) holdFrom(b []byte) int {
	for q := range b {
		t := b[q:]
		for _, f := range r.forms {
			if len(f.pat) <= len(t) {
				if bytes.HasPrefix(t, f.pat) {
					return q
				}
			} else if bytes.HasPrefix(f.pat, t) {
				return q
			}
		}
	}
	return len(b)
}

// scan appends to dst the redaction of buf. When final is false, a match
// is only taken where every form starting there fits in buf, and the
// undecided end of buf (at most maxLen-1 bytes) is not consumed: consumed
// says how much of buf was. It reports whether anything was replaced.
func (r *Redactor) scan(dst, buf []byte, final bool) (out []byte, consumed int, changed bool) {
	// next[g] is the leftmost match of group g at or after i (its form in
	// nextK[g]); -1 none, -2 not searched yet.
	next := make([]int, len(r.groups))
	nextK := make([]int, len(r.groups))
	for g := range next {
		next[g] = -2
	}
	i := 0
	start := dst
	for {
		best, bestK := -1, -1
		for g := range r.groups {
			if next[g] == -2 || (next[g] >= 0 && next[g] < i) {
				next[g], nextK[g] = r.groups[g].find(r.forms, buf, i)
			}
			if next[g] >= 0 && (best < 0 || next[g] < best || (next[g] == best && len(r.forms[nextK[g]].pat) > len(r.forms[bestK].pat))) {
				best, bestK = next[g], nextK[g]
			}
		}
		if best < 0 {
			break
		}
		if !final && best+r.maxLen > len(buf) && r.mayComplete(buf, max(i, len(buf)-r.maxLen+1), best) {
			break // a form starting at or before best may still complete, and win
		}
		if !changed && dst == nil {
			start = make([]byte, 0, len(buf))
		}
		changed = true
		start = append(start, buf[i:best]...)
		start = append(start, r.forms[bestK].repl...)
		i = best + len(r.forms[bestK].pat)
	}
	end := len(buf)
	if !final {
		end = max(i, len(buf)-(r.maxLen-1))
	}
	if !changed && dst == nil {
		return buf[:end], end, false
	}
	start = append(start, buf[i:end]...)
	return start, end, changed
}

// find returns the leftmost position at or after from where a form of g
// matches, and the longest form there; -1 when none does.
func (g *group) find(forms []form, buf []byte, from int) (int, int) {
	for from < len(buf) {
		j := bytes.IndexByte(buf[from:], g.c)
		if j < 0 {
			return -1, -1
		}
		p := from + j
		for _, k := range g.forms {
			if bytes.HasPrefix(buf[p:], forms[k].pat) {
				return p, k
			}
		}
		from = p + 1
	}
	return -1, -1
}

// Writer redacts a stream: it writes to w what it is given, with forms
// replaced, holding back at most MaxHold bytes that may begin a form
// until more arrives or Flush (or Close) is called.
type Writer struct {
	r    *Redactor
	w    io.Writer
	mu   sync.Mutex
	held []byte
	buf  []byte
	err  error
}

// NewWriter returns a streaming redactor in front of w; w itself (as a
// nopFlusher) when r is nil.
func (r *Redactor) NewWriter(w io.Writer) FlushWriter {
	if r == nil {
		return nopFlusher{w}
	}
	return &Writer{r: r, w: w}
}

// FlushWriter is a writer that may hold bytes back until Flush.
type FlushWriter interface {
	io.Writer
	Flush() error
}

type nopFlusher struct{ io.Writer }

func (nopFlusher) Flush() error { return nil }

// Write redacts p and writes what is decided. It always reports len(p)
// written unless the underlying writer failed.
func (x *Writer) Write(p []byte) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		return 0, x.err
	}
	var in []byte
	if len(x.held) == 0 {
		in = p
	} else {
		x.buf = append(append(x.buf[:0], x.held...), p...)
		in = x.buf
	}
	out, held := x.r.Split(in)
	if len(out) > 0 {
		if _, err := x.w.Write(out); err != nil {
			x.err = err
			return 0, err
		}
	}
	x.held = append(x.held[:0], in[len(in)-held:]...)
	return len(p), nil
}

// Flush writes what is held back (the stream ended: nothing more can
// complete a form).
func (x *Writer) Flush() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		return x.err
	}
	if len(x.held) == 0 {
		return nil
	}
	out, _, _ := x.r.scan(nil, x.held, true)
	x.held = x.held[:0]
	if _, err := x.w.Write(out); err != nil {
		x.err = err
		return err
	}
	return nil
}

// Close flushes.
func (x *Writer) Close() error { return x.Flush() }
