package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// allCommands is every command under root, root included, depth first.
func allCommands(root *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{root}
	for _, c := range root.Commands() {
		out = append(out, allCommands(c)...)
	}
	return out
}

// runCLI runs the CLI with a scratch home and returns exit code, stdout and
// stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), append(args, "--home", t.TempDir()), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// cmdArgs is the argument list that reaches c (its path without "hearth").
func cmdArgs(c *cobra.Command) []string {
	return strings.Fields(strings.TrimPrefix(c.CommandPath(), "hearth"))
}

// TestUnknownSubcommand walks every command group, root included, and
// checks that an unknown subcommand exits 2 naming it and its group, and
// that a one-letter typo of a subcommand suggests that subcommand. A group
// added later is covered without touching this test.
func TestUnknownSubcommand(t *testing.T) {
	root := newRoot(&globals{stdout: io.Discard, stderr: io.Discard})
	groups := 0
	for _, c := range allCommands(root) {
		if !c.HasSubCommands() {
			continue
		}
		groups++
		path := c.CommandPath()
		t.Run(path, func(t *testing.T) {
			code, out, errb := runCLI(t, append(cmdArgs(c), "frobnicate")...)
			if code != 2 || !strings.Contains(errb, `unknown command "frobnicate" for "`+path+`"`) {
				t.Errorf("%s frobnicate: exit %d, stderr %q; want exit 2 naming the command", path, code, errb)
			}
			if out != "" {
				t.Errorf("%s frobnicate: printed %q to stdout; want nothing", path, out)
			}
			typo, want := uniqueTypo(c)
			if typo == "" {
				return
			}
			code, _, errb = runCLI(t, append(cmdArgs(c), typo)...)
			if code != 2 || !strings.Contains(errb, `did you mean "`+want+`"?`) {
				t.Errorf("%s %s: exit %d, stderr %q; want exit 2 suggesting %q", path, typo, code, errb, want)
			}
			// The group alone still prints its help and succeeds.
			code, out, errb = runCLI(t, cmdArgs(c)...)
			if code != 0 || !strings.Contains(out, "Usage:") {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want its help", path, code, out, errb)
			}
		})
	}
	// root, workspace, workspace shell, workspace sync, image, mcp, completion
	if groups < 7 {
		t.Fatalf("found %d command groups; the walk is broken", groups)
	}
	// help on an unknown topic is an error too.
	if code, _, errb := runCLI(t, "help", "workspace", "frobnicate"); code != 2 || !strings.Contains(errb, `unknown command "frobnicate" for "hearth workspace"`) {
		t.Errorf("help workspace frobnicate: exit %d, stderr %q", code, errb)
	}
	if code, out, _ := runCLI(t, "help", "workspace", "exec"); code != 0 || !strings.Contains(out, "hearth workspace exec") {
		t.Errorf("help workspace exec: exit %d, stdout %q", code, out)
	}
}

// uniqueTypo returns a one-letter misspelling of one of c's subcommands that
// is nearer to it than to any sibling, and that subcommand; "" if none is.
func uniqueTypo(c *cobra.Command) (string, string) {
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() || len(sub.Name()) < 3 {
			continue
		}
		n := sub.Name()
		typo := n[:len(n)-1] + "q"
		if n[len(n)-1] == 'q' {
			typo = n[:len(n)-1] + "z"
		}
		unique := true
		for _, o := range c.Commands() {
			if o != sub && o.IsAvailableCommand() && (editDistance(typo, o.Name()) <= 1 || strings.HasPrefix(o.Name(), typo)) {
				unique = false
			}
		}
		if unique {
			return typo, n
		}
	}
	return "", ""
}

// TestEveryCommandChecksArgs fails when a command leaves its positional
// arguments unchecked, so that a stray word is silently ignored.
func TestEveryCommandChecksArgs(t *testing.T) {
	root := newRoot(&globals{stdout: io.Discard, stderr: io.Discard})
	for _, c := range allCommands(root) {
		if c.Args == nil && c.Runnable() {
			t.Errorf("%s: no Args check (use cobra.NoArgs, exactArgs, ...)", c.CommandPath())
		}
	}
}

// TestFlagUsageHasNoBackquote: pflag takes back-quoted text in a usage
// string as the flag's value name (`--detach workspace wait`).
func TestFlagUsageHasNoBackquote(t *testing.T) {
	root := newRoot(&globals{stdout: io.Discard, stderr: io.Discard})
	n := 0
	for _, c := range allCommands(root) {
		check := func(f *pflag.Flag) {
			n++
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: back quote in usage %q", c.CommandPath(), f.Name, f.Usage)
			}
		}
		c.LocalFlags().VisitAll(check)
		c.PersistentFlags().VisitAll(check)
	}
	if n < 20 {
		t.Fatalf("visited %d flags; the walk is broken", n)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, errb := runCLI(t, args...)
		if code != 0 || !strings.HasPrefix(out, "hearth ") || !strings.Contains(out, "contract "+api.ContractVersion) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errb)
		}
	}
	code, out, errb := runCLI(t, "version", "--json")
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("version --json: exit %d, %v, stdout %q, stderr %q", code, err, out, errb)
	}
	for _, k := range []string{"version", "contract_version", "go_version"} {
		if v[k] == "" {
			t.Errorf("version --json: no %s in %v", k, v)
		}
	}
	if v["contract_version"] != api.ContractVersion {
		t.Errorf("contract_version %q, want %q", v["contract_version"], api.ContractVersion)
	}
	if code, _, errb := runCLI(t, "version", "extra"); code != 2 {
		t.Errorf("version extra: exit %d, stderr %q; want 2", code, errb)
	}
}

// TestFlagErrorNamesCommand: a bad flag's message points at the command's
// own help, not 'hearth hearth --help'.
func TestFlagErrorNamesCommand(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"workspace", "list", "--bogus"}} {
		code, _, errb := runCLI(t, args...)
		want := "see 'hearth --help'"
		if len(args) > 1 {
			want = "see 'hearth workspace list --help'"
		}
		if code != 2 || !strings.Contains(errb, want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", args, code, errb, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	cases := []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"", "abc", 3}, {"exec", "exec", 0}, {"exce", "exec", 2}, {"stop", "stoq", 1}, {"kitten", "sitting", 3}}
	for _, c := range cases {
		if d := editDistance(c.a, c.b); d != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, d, c.d)
		}
	}
}
