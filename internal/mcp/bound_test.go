package mcp

import (
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hearthvm/hearth/api"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

// TestBoundExec: a bounded stream keeps its last StreamKeep bytes exactly
// (never a marker inside), with the offset and the truncation in fields.
func TestBoundExec(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 4096) // 64 KiB
	utf := strings.Repeat("é", 40000)               // 80,000 bytes of 2-byte runes
	bin := []byte(big)
	bin[7] = 0xff
	for _, tc := range []struct {
		name      string
		res       api.ExecResult
		wantData  string
		wantOff   int64
		truncated bool
	}{
		{"small", api.ExecResult{Stdout: "hi\n", StdoutBytes: 3}, "hi\n", 0, false},
		{"big", api.ExecResult{Stdout: big, StdoutBytes: int64(len(big))}, big[len(big)-StreamKeep:], int64(len(big) - StreamKeep), true},
		{"utf8 boundary", api.ExecResult{Stdout: utf, StdoutBytes: int64(len(utf))}, utf[len(utf)-StreamKeep:], int64(len(utf) - StreamKeep), true},
		{"base64", api.ExecResult{Stdout: base64.StdEncoding.EncodeToString(bin), StdoutEncoding: "base64", StdoutBytes: int64(len(bin))},
			base64.StdEncoding.EncodeToString(bin[len(bin)-StreamKeep:]), int64(len(bin) - StreamKeep), true},
		{"engine already cut", api.ExecResult{Stdout: "abc", StdoutBytes: 5000, StdoutTruncated: true}, "abc", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.res
			boundExec(&r)
			if r.Stdout != tc.wantData || r.StdoutOffset != tc.wantOff || r.StdoutTruncated != tc.truncated {
				t.Errorf("got %d bytes at offset %d truncated=%v, want %d at %d truncated=%v", len(r.Stdout), r.StdoutOffset, r.StdoutTruncated, len(tc.wantData), tc.wantOff, tc.truncated)
			}
			if r.StdoutEncoding == "" && !utf8.ValidString(r.Stdout) {
				t.Error("cut inside a rune")
			}
			if strings.Contains(r.Stdout, "hearth:") {
				t.Error("a marker went into the bytes")
			}
		})
	}
}
