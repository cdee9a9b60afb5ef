package agent

import (
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/fsdiff"
)

func TestCleanRel(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"a", "a", true},
		{"./a/b", "a/b", true},
		{"a//b/./c", "a/b/c", true},
		{".", "", true},
		{"", "", true},
		{"a/", "a", true},
		{"../x", "", false},
		{"a/../../x", "", false},
		{"a/../b", "", false},
		{"/etc/passwd", "", false},
		{"a\x00b", "", false},
	}
	for _, tt := range tests {
		got, err := cleanRel(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("cleanRel(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestLineCounter: counting as the guest does it, in any chunking, agrees
// with how the host's diff counts lines and tells binary content.
func TestLineCounter(t *testing.T) {
	for _, in := range []string{
		"", "a", "a\n", "a\nb", "a\nb\n", "\n\n\n",
		"héllo ✓ 𝄞\nwörld\n",
		"nul\x00inside\n",
		"latin1 \xe9\n",
		"cut 𝄞"[:7], // a truncated 4-byte sequence at the end
		strings.Repeat("x", 9000) + "\x00",
	} {
		want, wantBin := fsdiff.CountLines([]byte(in)), fsdiff.IsBinary([]byte(in))
		for chunk := 1; chunk <= len(in)+1; chunk++ {
			var c lineCounter
			for i := 0; i < len(in); i += chunk {
				c.Write([]byte(in[i:min(len(in), i+chunk)]))
			}
			n, bin := c.result()
			if int(n) != want || bin != wantBin {
				t.Fatalf("%q in chunks of %d: %d lines, binary %v; want %d, %v", in, chunk, n, bin, want, wantBin)
			}
			if len(in) > 100 {
				chunk += 997
			}
		}
	}
}
