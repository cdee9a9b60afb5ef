// Package dist checks the release packaging against the rest of the tree:
// the Debian package depends on what scripts/setup-host.sh installs, and its
// postinst explains how the guest image is made. `make dist-repro` and
// `make dist-check` check the artifacts themselves.
package dist

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// testOnly are the packages scripts/setup-host.sh installs for the tests
// and the demo, not for running hearth or `hearth image build`.
var testOnly = []string{"tmux", "git", "python3", "python3-build", "python3-wheel", "python3-setuptools"}

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// setupHostPackages is the pkgs="..." list of scripts/setup-host.sh.
func setupHostPackages(t *testing.T) []string {
	m := regexp.MustCompile(`(?m)^pkgs="([^"]*)"`).FindStringSubmatch(read(t, "scripts/setup-host.sh"))
	if m == nil {
		t.Fatal(`scripts/setup-host.sh: no pkgs="..." line`)
	}
	return strings.Fields(m[1])
}

// nfpmList is the YAML list under KEY: at the top level of packaging/nfpm.yaml.
func nfpmList(t *testing.T, key string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(read(t, "packaging/nfpm.yaml"), "\n") {
		switch {
		case line == key+":":
			in = true
		case in && strings.HasPrefix(line, "  - "):
			out = append(out, strings.TrimSpace(strings.TrimPrefix(line, "  - ")))
		case in && strings.HasPrefix(line, "#"):
		default:
			in = false
		}
	}
	return out
}

func TestDebDependsOnWhatSetupHostInstalls(t *testing.T) {
	host := setupHostPackages(t)
	deps := nfpmList(t, "depends")
	if len(deps) == 0 {
		t.Fatal("packaging/nfpm.yaml: no depends")
	}
	for _, d := range deps {
		if !slices.Contains(host, d) {
			t.Errorf("the .deb depends on %s, which scripts/setup-host.sh does not install", d)
		}
	}
	for _, p := range host {
		if !slices.Contains(deps, p) && !slices.Contains(testOnly, p) {
			t.Errorf("scripts/setup-host.sh installs %s; the .deb does not depend on it (add it to packaging/nfpm.yaml, or to testOnly here if only the tests need it)", p)
		}
	}
}

func TestPackageLayoutAndPostinst(t *testing.T) {
	cfg := read(t, "packaging/nfpm.yaml")
	for _, want := range []string{
		"dst: /usr/bin/hearth\n",
		// internal/initrd.FindAgent looks in ../libexec/hearth/ next to the binary.
		"dst: /usr/libexec/hearth/hearth-agent\n",
		"postinstall: ${PACKAGING}/postinst.sh",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("packaging/nfpm.yaml lacks %q", want)
		}
	}
	if post := read(t, "packaging/postinst.sh"); !strings.Contains(post, "hearth image build debian-12") {
		t.Error("packaging/postinst.sh does not say `hearth image build debian-12` makes the guest image")
	}
}
