package mcp

import (
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/fsdiff"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

func TestHeadTail(t *testing.T) {
	mark := func(c cut) string { return "[cut]" }
	for _, tc := range []struct {
		name       string
		in         string
		head, tail int
		want       string
		cut        bool
		from, to   int64
	}{
		{"fits", "abcdef", 3, 3, "abcdef", false, 0, 0},
		{"empty", "", 3, 3, "", false, 0, 0},
		{"cut", "abc\ndefghij\nxyz", 4, 4, "abc\n[cut]\n\nxyz", true, 4, 11},
		{"no newline at head", "abcdefghij", 2, 2, "ab\n[cut]\nij", true, 2, 8},
		// "é" is two bytes: the cut moves to a rune boundary on both sides.
		{"utf8", "aééééb", 2, 2, "a\n[cut]\nb", true, 1, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, c, ok := headTail(tc.in, tc.head, tc.tail, mark)
			if got != tc.want || ok != tc.cut || c.From != tc.from || c.To != tc.to {
				t.Errorf("headTail(%q) = %q %v %+v, want %q %v [%d,%d)", tc.in, got, ok, c, tc.want, tc.cut, tc.from, tc.to)
			}
			if !utf8.ValidString(got) {
				t.Errorf("invalid UTF-8: %q", got)
			}
		})
	}
}

func TestBoundExec(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 4096) // 64 KiB
	for _, tc := range []struct {
		name      string
		res       api.ExecResult
		truncated bool
		maxLen    int
		notes     []string
	}{
		{"small", api.ExecResult{CommandID: "c1", Stdout: "hi\n", StdoutBytes: 3}, false, 3, nil},
		{"big", api.ExecResult{CommandID: "c1", Stdout: big, StdoutBytes: int64(len(big))}, true, StreamHead + StreamTail + 200,
			[]string{"command_read offset=16384"}},
		{"captured less than total", api.ExecResult{CommandID: "c1", Stdout: "abc", StdoutBytes: 5000}, true, 3,
			[]string{"offset=3"}},
		{"base64", api.ExecResult{CommandID: "c1", Stdout: base64.StdEncoding.EncodeToString([]byte(big)), StdoutEncoding: "base64", StdoutBytes: int64(len(big))},
			true, base64.StdEncoding.EncodedLen(StreamHead + StreamTail), []string{"base64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.res
			notes := boundExec(&r)
			if r.StdoutTruncated != tc.truncated {
				t.Errorf("truncated = %v", r.StdoutTruncated)
			}
			if len(r.Stdout) > tc.maxLen {
				t.Errorf("stdout is %d bytes, want at most %d", len(r.Stdout), tc.maxLen)
			}
			all := strings.Join(notes, " ")
			for _, n := range tc.notes {
				if !strings.Contains(all, n) {
					t.Errorf("notes %q lack %q", all, n)
				}
			}
			if tc.notes == nil && len(notes) > 0 {
				t.Errorf("unexpected notes %q", notes)
			}
		})
	}
	r := api.ExecResult{CommandID: "c1", Stdout: big, StdoutBytes: int64(len(big))}
	boundExec(&r)
	if !strings.HasPrefix(r.Stdout, big[:StreamHead]) || !strings.HasSuffix(r.Stdout, big[len(big)-StreamTail:]) {
		t.Error("head or tail not kept")
	}
	if !strings.Contains(r.Stdout, `[hearth: 32768 bytes of stdout cut here (bytes 16384 to 49152); read them with command_read command_id="c1" stream="stdout" offset=16384]`) {
		t.Errorf("marker missing: %q", r.Stdout[StreamHead-10:StreamHead+200])
	}
}

func TestBoundDiff(t *testing.T) {
	line := strings.Repeat("x", 99) + "\n"
	patch := func(n int) string { return strings.Repeat(line, n) }
	r := &fsdiff.Result{Files: []fsdiff.File{
		{Path: "small", Patch: patch(10)},
		{Path: "huge", Patch: patch(1000)}, // 100 KB: cut to 16 KiB
		{Path: "binary"},
		{Path: "a", Patch: patch(150)},
		{Path: "b", Patch: patch(150)},
		{Path: "c", Patch: patch(150)},
		{Path: "d", Patch: patch(150)},
	}}
	notes := boundDiff(r)
	total := 0
	for _, f := range r.Files {
		total += len(f.Patch)
		if len(f.Patch) > PatchFileLimit+200 {
			t.Errorf("%s: patch %d bytes", f.Path, len(f.Patch))
		}
	}
	if total > PatchTotalLimit+1000 {
		t.Errorf("patches total %d bytes", total)
	}
	if r.Files[0].Patch != patch(10) || r.Files[0].PatchOmitted != "" {
		t.Error("small patch changed")
	}
	h := r.Files[1]
	if !strings.Contains(h.Patch, "workspace_export") || !strings.Contains(h.PatchOmitted, "cut after") || !strings.HasPrefix(h.Patch, line) {
		t.Errorf("huge: %q / %q", h.PatchOmitted, h.Patch[len(h.Patch)-200:])
	}
	last := r.Files[len(r.Files)-1]
	if last.Patch != "" || !strings.Contains(last.PatchOmitted, `workspace_diff with paths=["d"]`) {
		t.Errorf("d: patch %d bytes, omitted %q", len(last.Patch), last.PatchOmitted)
	}
	all := strings.Join(notes, " ")
	if !strings.Contains(all, "huge") || !strings.Contains(all, "d") {
		t.Errorf("notes: %q", all)
	}
}
