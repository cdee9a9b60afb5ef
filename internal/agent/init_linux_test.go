package agent

import (
	"bytes"
	"log/slog"
	"testing"
)

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want bootConfig
	}{
		{
			"console=ttyS0 quiet panic=-1 hearth.root=/dev/vda hearth.data=/dev/vdb hearth.id=vm-1 hearth.hostname=box\n",
			bootConfig{Root: "/dev/vda", Data: "/dev/vdb", ID: "vm-1", Hostname: "box"},
		},
		{"console=ttyS0 hearth.root=/dev/vda hearth.id=x", bootConfig{Root: "/dev/vda", ID: "x"}},
		{"quiet", bootConfig{}},
	}
	for _, tt := range tests {
		if got := parseCmdline(tt.in); got != tt.want {
			t.Errorf("parseCmdline(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestPrefixWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &prefixWriter{w: &buf, prefix: []byte("hearth-agent: ")}
	n, err := w.Write([]byte("one\ntwo\n"))
	if err != nil || n != 8 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got, want := buf.String(), "hearth-agent: one\nhearth-agent: two\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
