// Command hearth is the hearth CLI. See `hearth --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hearthvm/hearth/internal/cli"
	"github.com/hearthvm/hearth/internal/tapns"
)

func main() {
	// A VMM being started in its own network namespace passes through
	// here first (package tapns); this execs the VMM and never returns.
	tapns.Child()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
