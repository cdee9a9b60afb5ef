// Package cli is the hearth command line: flags in, one SDK call, output
// out. It holds no domain logic; every command is a thin layer over the Go
// SDK (package hearth at the module root) or, for image and host commands,
// the package that owns the concept.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/hearthvm/hearth/internal/version"
	"github.com/spf13/cobra"
)

// globals are the flags and streams every command shares.
type globals struct {
	home   string
	remote string
	json   bool
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
}

// exitError carries an exit status that is not an error's kind (a guest
// command's own status).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Run runs the CLI with args (without the program name) and returns the
// process exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr, stdin: stdin}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetIn(stdin)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if g.json {
		writeJSONError(stdout, err)
	}
	fmt.Fprintf(stderr, "hearth: %s\n", cliMessage(cmd, err))
	return errdefs.ExitCode(err)
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "hearth",
		Short: "Persistent microVM workspaces for agents, people and programs",
		Long: `hearth runs Linux workspaces in microVMs (Firecracker, or QEMU's microvm machine)
on this machine. A workspace persists between calls: run commands, keep shells open,
push files in, diff against the create-time baseline, and export results out.

State lives under $HEARTH_HOME (default ${XDG_DATA_HOME:-$HOME/.local/share}/hearth).`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if g.home == "" {
				g.home = home.Dir()
			}
			return nil
		},
	}
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print machine-readable JSON (documented in docs/public-contract.md)")
	root.PersistentFlags().StringVar(&g.home, "home", "", "state directory (default $HEARTH_HOME or ~/.local/share/hearth)")
	root.PersistentFlags().StringVar(&g.remote, "remote", "", "ADDR of a hearth serve API to drive instead of this machine's state: unix:///path/hearth.sock or https://host:port (token from $HEARTH_TOKEN; default $HEARTH_REMOTE)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%v (see '%s --help'): %w", err, c.CommandPath(), errdefs.ErrInvalidArgument)
	})
	root.SetVersionTemplate(versionLine(version.Get(api.ContractVersion)) + "\n")
	for _, add := range commands {
		root.AddCommand(add(g))
	}
	root.SetHelpCommand(newHelpCmd(root))
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	strictArgs(root)
	return root
}

// strictArgs makes every command that has subcommands fail
// with exit 2 on an argument that names none of them. Cobra checks this
// only at the root; below it a command without its own Run prints its help
// and succeeds, so `hearth workspace frobnicate` looked like it had worked.
// A group called with no arguments still prints its help. Every other
// command's argument check is made to report a usage error (exit 2), which
// cobra's own checks (cobra.NoArgs, …) do not.
func strictArgs(c *cobra.Command) {
	switch {
	case c.HasSubCommands():
		c.Args = knownSubcommand
		if c.Run == nil && c.RunE == nil {
			c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
		}
	case c.Args != nil:
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				return fmt.Errorf("%w (see '%s --help'): %w", err, cmd.CommandPath(), errdefs.ErrInvalidArgument)
			}
			return err
		}
	}
	for _, sub := range c.Commands() {
		strictArgs(sub)
	}
}

// knownSubcommand is the positional-argument check of a command group: any
// argument left over is an unknown subcommand.
func knownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return unknownCommandError(cmd, args[0])
}

// unknownCommandError names the unknown command and the nearest known one,
// or lists the known ones when none is near.
func unknownCommandError(parent *cobra.Command, typed string) error {
	var names []string
	for _, c := range parent.Commands() {
		if c.IsAvailableCommand() || c.Name() == "help" {
			names = append(names, c.Name())
		}
	}
	hint := "its commands are " + strings.Join(names, ", ")
	if near := nearestCommand(parent, typed); near != "" {
		hint = fmt.Sprintf("did you mean %q?", near)
	}
	return fmt.Errorf("unknown command %q for %q; %s (see '%s --help'): %w",
		typed, parent.CommandPath(), hint, parent.CommandPath(), errdefs.ErrInvalidArgument)
}

// nearestCommand is the available subcommand of parent closest to typed:
// one it is a prefix of, one typed is an alias or SuggestFor entry of, else
// the one at the smallest edit distance if that distance is small for the
// word's length. It returns "" when nothing is near.
func nearestCommand(parent *cobra.Command, typed string) string {
	t := strings.ToLower(typed)
	best, bestDist := "", -1
	for _, c := range parent.Commands() {
		if !c.IsAvailableCommand() {
			continue
		}
		d := editDistance(t, strings.ToLower(c.Name()))
		for _, s := range append(append([]string{}, c.Aliases...), c.SuggestFor...) {
			if strings.EqualFold(s, typed) {
				d = 0
			}
			if ad := editDistance(t, strings.ToLower(s)); ad < d {
				d = ad
			}
		}
		if t != "" && strings.HasPrefix(strings.ToLower(c.Name()), t) && d > 1 {
			d = 1
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = c.Name(), d
		}
	}
	if bestDist < 0 || bestDist > max(2, len(t)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// newHelpCmd is `hearth help [COMMAND...]`: like cobra's, except that an
// unknown topic is an error (exit 2) rather than the root's usage and exit 0.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND...]",
		Short: "Help about any command",
		Args:  cobra.ArbitraryArgs,
		Long:  "Print the help of a command: hearth help workspace exec.",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := root.Find(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 && cmd.HasSubCommands() {
				return unknownCommandError(cmd, rest[0])
			}
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
	}
}

// commands are the top-level command constructors; each command file adds
// its own in an init function.
var commands []func(*globals) *cobra.Command

// printJSON writes v as indented JSON.
func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
