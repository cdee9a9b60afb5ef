package version

import (
	"runtime/debug"
	"testing"
)

func TestFillFromBuildInfo(t *testing.T) {
	settings := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	cases := []struct {
		name         string
		in           Info
		bi           debug.BuildInfo
		version, rev string
	}{
		{"linker flags win", Info{Version: "v1", Commit: "abc"}, debug.BuildInfo{Main: debug.Module{Version: "v9"}, Settings: settings("def", "false")}, "v1", "abc"},
		{"go install module version", Info{}, debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}}, "v0.2.0", ""},
		{"checkout build", Info{}, debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("def", "false")}, "", "def"},
		{"dirty checkout", Info{}, debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("def", "true")}, "", "def-dirty"},
	}
	for _, c := range cases {
		got := c.in
		fillFromBuildInfo(&got, &c.bi)
		if got.Version != c.version || got.Commit != c.rev {
			t.Errorf("%s: version %q commit %q, want %q %q", c.name, got.Version, got.Commit, c.version, c.rev)
		}
	}
}

func TestGet(t *testing.T) {
	i := Get("0.1")
	if i.Version == "" || i.Contract != "0.1" || i.GoVersion == "" {
		t.Fatalf("Get: %+v", i)
	}
}
