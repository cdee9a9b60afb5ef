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

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/spf13/cobra"
)

// globals are the flags and streams every command shares.
type globals struct {
	home   string
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
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%v (see 'hearth %s --help'): %w", err, c.Name(), errdefs.ErrInvalidArgument)
	})
	for _, add := range commands {
		root.AddCommand(add(g))
	}
	return root
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
