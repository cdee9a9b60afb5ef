// Package version is hearth's own version: what `hearth version`, `hearth
// doctor --json`, GET /v1/health and MCP's server info report.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Version and Commit are set at link time by the Makefile:
//
//	-X github.com/hearthvm/hearth/internal/version.Version=$(VERSION)
//	-X github.com/hearthvm/hearth/internal/version.Commit=$(COMMIT)
//
// A plain `go build` leaves them empty; Get then falls back to what the Go
// toolchain stamped into the binary (module version, VCS revision).
var (
	Version string
	Commit  string
)

// Info is `hearth version --json`.
type Info struct {
	Version   string `json:"version"`
	Contract  string `json:"contract_version"`
	GoVersion string `json:"go_version"`
	Commit    string `json:"commit,omitempty"`
}

// Get returns this binary's version information; contract is the public
// contract version (api.ContractVersion), passed in so this package stays a
// leaf.
func Get(contract string) Info {
	info := Info{Version: Version, Contract: contract, GoVersion: runtime.Version(), Commit: Commit}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		fillFromBuildInfo(&info, bi)
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}

// String is the short form: the version alone.
func String() string { return Get("").Version }

// fillFromBuildInfo fills what the linker flags left empty from the
// toolchain's stamp: a module version for `go install …@v1.2.3`, the VCS
// revision for a build inside a checkout.
func fillFromBuildInfo(info *Info, bi *debug.BuildInfo) {
	if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	if info.Commit != "" {
		return
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty && !strings.HasSuffix(rev, "-dirty") {
		rev += "-dirty"
	}
	info.Commit = rev
}
