package agent

import "testing"

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
