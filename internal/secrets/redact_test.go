package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

func TestRedactForms(t *testing.T) {
	v := "s3cr3t/val+ue=="
	r := NewRedactor([]Secret{{Name: "API", Value: []byte(v)}})
	for _, tc := range []struct{ name, in string }{
		{"plain", "key=" + v + "!"},
		{"base64", "b64 " + base64.StdEncoding.EncodeToString([]byte(v)) + " end"},
		{"base64url", base64.RawURLEncoding.EncodeToString([]byte(v))},
		{"query", "?k=" + url.QueryEscape(v) + "&x=1"},
		{"path", "/p/" + url.PathEscape(v) + "/q"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.String(tc.in)
			if strings.Contains(got, v) || !strings.Contains(got, "[REDACTED:API]") {
				t.Fatalf("%q -> %q", tc.in, got)
			}
		})
	}
	// Only the value's bytes change.
	if got := r.String("a " + v + " b"); got != "a [REDACTED:API] b" {
		t.Fatalf("got %q", got)
	}
	if got := r.String("nothing here"); got != "nothing here" {
		t.Fatalf("got %q", got)
	}
	var nilR *Redactor
	if nilR.String("x") != "x" || NewRedactor(nil) != nil {
		t.Fatal("nil redactor must pass through")
	}
}

func TestRedactOverlapping(t *testing.T) {
	// LONG starts with SHORT's value: the longer wins where both match.
	r := NewRedactor([]Secret{{Name: "SHORT", Value: []byte("abcdef")}, {Name: "LONG", Value: []byte("abcdefghij")}})
	for in, want := range map[string]string{
		"xabcdefghijx": "x[REDACTED:LONG]x",
		"xabcdefx":     "x[REDACTED:SHORT]x",
		"abcdefabcdef": "[REDACTED:SHORT][REDACTED:SHORT]",
		"abcdeabcdefg": "abcde[REDACTED:SHORT]g",
	} {
		if got := r.String(in); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
	// Secrets overlapping each other's ends: "1234xyz" with "xyz9876".
	r = NewRedactor([]Secret{{Name: "A", Value: []byte("1234xyz")}, {Name: "B", Value: []byte("xyz9876")}})
	if got := r.String("1234xyz9876"); got != "[REDACTED:A]9876" {
		t.Fatalf("got %q", got)
	}
}

// stream writes in through a streaming redactor in chunks of the given
// sizes (cycled) and returns what came out.
func stream(t *testing.T, r *Redactor, in []byte, sizes []int) string {
	t.Helper()
	var out bytes.Buffer
	w := r.NewWriter(&out)
	for i, k := 0, 0; i < len(in); k++ {
		n := min(sizes[k%len(sizes)], len(in)-i)
		if m, err := w.Write(in[i : i+n]); err != nil || m != n {
			t.Fatalf("write: %d %v", m, err)
		}
		if held := len(in[:i+n]) - out.Len(); r != nil && held > r.MaxHold()+len(in) { // sanity
			t.Fatalf("held %d", held)
		}
		i += n
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestRedactStreamChunkBoundaries(t *testing.T) {
	secs := []Secret{{Name: "ONE", Value: []byte("hs-0123456789abcdef")}, {Name: "TWO", Value: []byte("fs-zyxwvut")}, {Name: "TRI", Value: []byte("hs-0123")}}
	r := NewRedactor(secs)
	in := []byte("start hs-0123456789abcdef mid fs-zyxwvut " + base64.StdEncoding.EncodeToString([]byte("fs-zyxwvut")) +
		" hs-0123 hs-012 end hs-0123456789abcdef")
	want := r.String(string(in))
	if strings.Contains(want, "zyxwvut") || strings.Contains(want, "456789") {
		t.Fatalf("one-shot left a value: %q", want)
	}
	// Every split point, and every chunk size.
	for cut := 0; cut <= len(in); cut++ {
		var out bytes.Buffer
		w := r.NewWriter(&out)
		w.Write(in[:cut])
		w.Write(in[cut:])
		w.Flush()
		if out.String() != want {
			t.Fatalf("cut at %d: %q, want %q", cut, out.String(), want)
		}
	}
	for size := 1; size <= 40; size++ {
		if got := stream(t, r, in, []int{size}); got != want {
			t.Fatalf("chunks of %d: %q, want %q", size, got, want)
		}
	}
}

func TestRedactStreamHoldsAtMostMaxHold(t *testing.T) {
	r := NewRedactor([]Secret{{Name: "K", Value: []byte("abcdefgh")}})
	var out bytes.Buffer
	w := r.NewWriter(&out)
	w.Write([]byte("0123456789abcdefg")) // ends in a prefix of the value
	if held := 17 - out.Len(); held != 7 || held > r.MaxHold() {
		t.Fatalf("held %d bytes, want 7 (max %d)", held, r.MaxHold())
	}
	w.Write([]byte("X"))
	w.Flush()
	if out.String() != "0123456789abcdefgX" {
		t.Fatalf("got %q", out.String())
	}
}

func TestRedactStreamRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "ab=+/%-_xy"
	gen := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for iter := range 300 {
		var secs []Secret
		for i := range 1 + rng.IntN(3) {
			secs = append(secs, Secret{Name: fmt.Sprintf("S%d", i), Value: []byte(gen(4 + rng.IntN(6)))})
		}
		r := NewRedactor(secs)
		var sb strings.Builder
		for range 20 {
			if rng.IntN(3) == 0 {
				f := Forms(string(secs[rng.IntN(len(secs))].Value))
				sb.WriteString(f[rng.IntN(len(f))])
			} else {
				sb.WriteString(gen(rng.IntN(5)))
			}
		}
		in := []byte(sb.String())
		want := r.String(string(in))
		sizes := []int{1 + rng.IntN(7), 1 + rng.IntN(3), 1 + rng.IntN(11)}
		if got := stream(t, r, in, sizes); got != want {
			t.Fatalf("iter %d secrets %q chunks %v:\n in  %q\n got %q\nwant %q", iter, secs, sizes, in, got, want)
		}
		for _, s := range secs {
			if strings.Contains(want, string(s.Value)) {
				t.Fatalf("iter %d: %q still holds %q", iter, want, s.Value)
			}
		}
	}
}

func TestRedactError(t *testing.T) {
	r := NewRedactor([]Secret{{Name: "K", Value: []byte("topsecret")}})
	base := errors.New("boom")
	err := r.Error(fmt.Errorf("command printed topsecret: %w", base))
	if strings.Contains(err.Error(), "topsecret") || !errors.Is(err, base) {
		t.Fatalf("got %v", err)
	}
}

func TestRedactSplitForShellReads(t *testing.T) {
	r := NewRedactor([]Secret{{Name: "K", Value: []byte("topsecret")}})
	out, held := r.Split([]byte("prompt$ echo top"))
	if string(out) != "prompt$ echo " || held != 3 {
		t.Fatalf("got %q held %d", out, held)
	}
	out, held = r.Split([]byte("a topsecret b"))
	if string(out) != "a [REDACTED:K] b" || held != 0 {
		t.Fatalf("got %q held %d", out, held)
	}
}

func BenchmarkRedactWriter(b *testing.B) {
	chunk := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog 0123456789\n"), 600) // ~32 KiB
	for _, n := range []int{0, 3} {
		var secs []Secret
		for i := range n {
			secs = append(secs, Secret{Name: fmt.Sprintf("S%d", i), Value: []byte(fmt.Sprintf("sk-%02d-9f8e7d6c5b4a39281706", i))})
		}
		r := NewRedactor(secs)
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(chunk)))
			w := r.NewWriter(io.Discard)
			for b.Loop() {
				w.Write(chunk)
			}
		})
	}
}
