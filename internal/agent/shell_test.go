package agent

import (
	"bytes"
	"os"
	"testing"
)

// newHostServer is a Server for tests on the host. Its shells read no
// start-up files (Server.ShellArgv), so the host user's ~/.bashrc can
// neither slow the tests down nor write into their output.
func newHostServer() *Server {
	s := NewServer(nil)
	s.ShellArgv = []string{"/bin/sh"}
	if _, err := os.Stat("/bin/bash"); err == nil {
		s.ShellArgv = []string{"/bin/bash", "--noprofile", "--norc"}
	}
	return s
}

func TestRing(t *testing.T) {
	const size = 8
	tests := []struct {
		name   string
		writes []string
		start  int64
		kept   string
	}{
		{"empty", nil, 0, ""},
		{"linear", []string{"abc", "de"}, 0, "abcde"},
		{"exactly full", []string{"abcdefgh"}, 0, "abcdefgh"},
		{"wraps", []string{"abcdef", "ghij"}, 2, "cdefghij"},
		{"one write larger than the ring", []string{"ab", "0123456789xyz"}, 7, "56789xyz"},
		{"many wraps", []string{"abcdefgh", "ijklmnop", "qrs"}, 11, "lmnopqrs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ring{size: size}
			var all []byte
			for _, w := range tt.writes {
				r.write([]byte(w))
				all = append(all, w...)
			}
			if r.total != int64(len(all)) || r.start() != tt.start {
				t.Fatalf("total %d start %d, want %d %d", r.total, r.start(), len(all), tt.start)
			}
			if got := r.read(r.start(), 100); string(got) != tt.kept {
				t.Fatalf("kept %q, want %q", got, tt.kept)
			}
			// Every sub-range reads back what was written there.
			for from := r.start(); from <= r.total; from++ {
				for n := 0; n <= int(r.total-from); n++ {
					if got := r.read(from, n); !bytes.Equal(got, all[from:from+int64(n)]) {
						t.Fatalf("read(%d, %d) = %q, want %q", from, n, got, all[from:from+int64(n)])
					}
				}
			}
		})
	}
}

func TestShellSignalByName(t *testing.T) {
	for _, name := range []string{"INT", "int", "SIGTERM", " HUP", "KILL", "QUIT", "TSTP", "CONT"} {
		if _, err := shellSignalByName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	if _, err := shellSignalByName("STOPPIT"); err == nil {
		t.Error("unknown signal accepted")
	}
}
