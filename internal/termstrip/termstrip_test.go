package termstrip

import "testing"

func TestStrip(t *testing.T) {
	cases := map[string]string{
		"plain\r\n":                  "plain\n",
		"\x1b[1;32mgreen\x1b[0m":     "green",
		"\x1b]0;title\x07prompt$ ":   "prompt$ ",
		"\x1b]0;title\x1b\\x":        "x",
		"ab\x08c":                    "ac",
		"\x1b(Bx\x1b[?2004h":         "x",
		"root@ws:/workspace# \x1b[K": "root@ws:/workspace# ",
	}
	for in, want := range cases {
		if got := string(Strip([]byte(in))); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}
