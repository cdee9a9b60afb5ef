package workspace

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/ignore"
)

func TestManifestRoundTrip(t *testing.T) {
	for _, man := range []*guestproto.Manifest{
		{Root: "/workspace", Entries: []guestproto.ManifestEntry{}},
		{Root: "/workspace", Entries: []guestproto.ManifestEntry{
			{Path: "a", Type: "file", Mode: 0o644, Size: 3, MtimeNS: 1, Inode: 9, SHA256: "ab"},
			{Path: "d", Type: "dir", Mode: 0o755, MtimeNS: 2},
			{Path: "d/\"odd\"\n", Type: "symlink", Mode: 0o777, Size: 1, Target: "é"},
		}, Warnings: []string{"skipped x"}},
	} {
		p := filepath.Join(t.TempDir(), "manifest.json")
		if err := writeManifest(p, man); err != nil {
			t.Fatal(err)
		}
		got, err := readManifestFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(man.Entries) == 0 {
			man.Entries = nil // decoded as absent
		}
		if !reflect.DeepEqual(got, man) {
			t.Errorf("round trip: %+v, want %+v", got, man)
		}
	}
	// What json.Marshal of a Manifest wrote (baselines before this change)
	// reads the same, unknown keys included.
	old := guestproto.Manifest{Root: "/workspace", Entries: []guestproto.ManifestEntry{{Path: "x", Type: "file"}}}
	b, _ := json.Marshal(struct {
		guestproto.Manifest
		Extra []int `json:"extra"`
	}{old, []int{1}})
	got, err := readManifest(strings.NewReader(string(b)))
	if err != nil || !reflect.DeepEqual(*got, old) {
		t.Errorf("old form: %+v, %v", got, err)
	}
	if _, err := readManifest(strings.NewReader(`{"entries":[{"path":1}]}`)); err == nil {
		t.Error("a bad entry was accepted")
	}
}

func TestExcludeEntries(t *testing.T) {
	es := []guestproto.ManifestEntry{
		{Path: "__pycache__", Type: "dir"}, {Path: "__pycache__/x.pyc", Type: "file"}, {Path: "f.txt", Type: "file"},
		{Path: "src", Type: "dir"}, {Path: "src/__pycache__", Type: "file"}, {Path: "src/a.log", Type: "file"},
	}
	got := excludeEntries(append([]guestproto.ManifestEntry(nil), es...), ignore.MustCompile("__pycache__/", "*.log"))
	var paths []string
	for _, e := range got {
		paths = append(paths, e.Path)
	}
	// src/__pycache__ is a file, and the pattern names directories.
	if want := []string{"f.txt", "src", "src/__pycache__"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("kept %q, want %q", paths, want)
	}
	if got := excludeEntries(es, nil); len(got) != len(es) {
		t.Error("a nil matcher dropped entries")
	}
}
