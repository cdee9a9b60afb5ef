package cli

import (
	"context"
	"log/slog"
	"os"

	"github.com/hearthvm/hearth/internal/backend"
	"github.com/hearthvm/hearth/internal/control"
	"github.com/hearthvm/hearth/internal/supervisor"
	"github.com/hearthvm/hearth/internal/vmm"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newSuperviseCmd) }

// newSuperviseCmd is the hidden entry point of the per-VM supervisor
// process (see package supervisor). It is started by hearth itself.
func newSuperviseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "_supervise DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			ready := os.NewFile(3, "ready")
			factory := func(name, cacheDir string, killWithParent bool) (vmm.Backend, error) {
				return backend.New(backend.Config{CacheDir: cacheDir, Log: log}, name, killWithParent)
			}
			// Signals are the supervisor's own business (TERM = clean guest shutdown),
			// so it does not use the CLI's signal-cancelled context.
			return supervisor.Run(context.Background(), args[0], ready, factory, control.NewServer().Serve, log)
		},
	}
}
