package image

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// MirrorEnv overrides the Debian mirror debootstrap downloads from.
const MirrorEnv = "HEARTH_DEBIAN_MIRROR"

// mirrorSuite is the suite whose "main" component the mirror must serve.
const mirrorSuite = "bookworm"

// aptSources are the host's apt source files, in apt's order; a variable
// so tests can point it elsewhere.
var aptSources = func() []string {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	return files
}

// DebianMirror returns the mirror to debootstrap from: $HEARTH_DEBIAN_MIRROR,
// else the first URI in the host's apt configuration that serves bookworm
// main.
func DebianMirror() (string, error) {
	if m := strings.TrimSpace(os.Getenv(MirrorEnv)); m != "" {
		return strings.TrimRight(m, "/"), nil
	}
	files := aptSources()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var m string
		if strings.HasSuffix(f, ".sources") {
			m = mirrorFromDeb822(strings.NewReader(string(data)), mirrorSuite)
		} else {
			m = mirrorFromList(strings.NewReader(string(data)), mirrorSuite)
		}
		if m != "" {
			return m, nil
		}
	}
	return "", fmt.Errorf("no Debian mirror: none of %s has a 'deb' source for %s main; set %s to a Debian mirror URL: %w",
		strings.Join(files, ", "), mirrorSuite, MirrorEnv, errdefs.ErrFailedPrecondition)
}

// usableURI reports whether debootstrap can fetch from uri.
func usableURI(uri string) bool {
	for _, p := range []string{"http://", "https://", "file:/"} {
		if strings.HasPrefix(uri, p) {
			return true
		}
	}
	return false
}

// mirrorFromList finds the mirror in one-line-style sources.list text:
// "deb [opts] URI SUITE COMPONENT...".
func mirrorFromList(r io.Reader, suite string) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // options, possibly spread over fields
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) < 3 {
			continue
		}
		uri, s, comps := f[0], f[1], f[2:]
		if s == suite && slices.Contains(comps, "main") && usableURI(uri) {
			return strings.TrimRight(uri, "/")
		}
	}
	return ""
}

// mirrorFromDeb822 finds the mirror in deb822 .sources text: stanzas with
// Types, URIs, Suites, Components (and optional Enabled: no).
func mirrorFromDeb822(r io.Reader, suite string) string {
	var stanzas []map[string]string
	cur := map[string]string{}
	var last string
	flush := func() {
		if len(cur) > 0 {
			stanzas = append(stanzas, cur)
		}
		cur, last = map[string]string{}, ""
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				cur[last] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			cur[last] = strings.TrimSpace(v)
		}
	}
	flush()
	for _, st := range stanzas {
		if en := strings.ToLower(st["enabled"]); en == "no" || en == "false" {
			continue
		}
		if !slices.Contains(strings.Fields(st["types"]), "deb") ||
			!slices.Contains(strings.Fields(st["suites"]), suite) ||
			!slices.Contains(strings.Fields(st["components"]), "main") {
			continue
		}
		for _, uri := range strings.Fields(st["uris"]) {
			if usableURI(uri) {
				return strings.TrimRight(uri, "/")
			}
		}
	}
	return ""
}
