package agent

import (
	"bytes"
	"log/slog"
	"reflect"
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
		{
			"hearth.root=/dev/vda hearth.disk=0123456789abcdef0123456789ABCDEF,/mnt/d,ro hearth.disk=00000000000000000000000000000001,/mnt/cache,rw hearth.disk=bad,/x,ro hearth.disk=00000000000000000000000000000002,rel,rw",
			bootConfig{Root: "/dev/vda", Disks: []diskMount{{UUID: "0123456789abcdef0123456789abcdef", Path: "/mnt/d", ReadOnly: true}, {UUID: "00000000000000000000000000000001", Path: "/mnt/cache"}}},
		},
	}
	for _, tt := range tests {
		if got := parseCmdline(tt.in); !reflect.DeepEqual(got, tt.want) {
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
