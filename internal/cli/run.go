package cli

import (
	"fmt"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newRunCmd) }

func newRunCmd(g *globals) *cobra.Command {
	var o hearth.RunOptions
	var timeout time.Duration
	var env []string
	var cwd, shell string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "run [flags] (-- CMD [ARG...] | --shell 'CMD LINE')",
		Short: "Run one command in a throwaway microVM",
		Long: `Boot a throwaway microVM, run one command in it, stream its output, and exit with
its exit code. Nothing is left behind: no VMM process and no files, also on Ctrl-C,
SIGTERM or a timeout. --timeout limits the command (not the boot); a timed-out
command exits 124 with a message saying so.`,
		Example: `  hearth run -- uname -r
  hearth run --memory 1024 --timeout 30s --shell 'python3 -c "print(6*7)" | tee /tmp/out'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkMachineFlags(cmd, o.CPUs, o.MemoryMiB); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			e, err := parseEnv(env)
			if err != nil {
				return err
			}
			if err := commandArgs(args, shell); err != nil {
				return err
			}
			o.Exec = hearth.ExecOptions{Argv: args, Shell: shell, Cwd: cwd, Env: e, Timeout: timeout}
			if !g.json {
				o.Exec.Stdout, o.Exec.Stderr = g.stdout, g.stderr
			}
			if stdin {
				o.Exec.Stdin = g.stdin
			}
			res, err := c.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			return g.finishExec(res, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Image, "image", "debian-12", "image to boot")
	f.StringVar(&o.Backend, "backend", "", "VMM backend: auto, qemu or firecracker (default $HEARTH_BACKEND or auto)")
	f.IntVar(&o.CPUs, "cpus", 2, "virtual CPUs")
	f.IntVar(&o.MemoryMiB, "memory", 512, "memory in MiB (at least 128)")
	f.StringVar(&shell, "shell", "", "run this command line with /bin/sh -c (instead of CMD after --)")
	f.DurationVar(&timeout, "timeout", 0, "kill the command after this long (e.g. 30s, 5m); 0 means no limit")
	f.StringArrayVar(&env, "env", nil, "set an environment variable KEY=VALUE (repeatable)")
	f.StringVar(&cwd, "cwd", "/workspace", "working directory in the guest")
	f.BoolVar(&stdin, "stdin", false, "pass this process's standard input to the command")
	return cmd
}

// finishExec prints a result (--json) or turns it into the exit status.
func (g *globals) finishExec(res *api.ExecResult, timeout time.Duration) error {
	if g.json {
		if err := g.printJSON(res); err != nil {
			return err
		}
	} else {
		switch res.Reason {
		case api.ReasonTimeout:
			fmt.Fprintf(g.stderr, "hearth: command timed out after %s and was killed\n", timeout)
		case api.ReasonOOM:
			fmt.Fprintf(g.stderr, "hearth: command was killed by the guest's out-of-memory killer\n")
		case api.ReasonSignaled:
			fmt.Fprintf(g.stderr, "hearth: command killed by signal %s\n", res.Signal)
		}
	}
	if res.ExitCode != 0 {
		return &exitError{code: res.ExitCode}
	}
	return nil
}

// commandArgs checks that a command is given exactly one way: after --, or
// as --shell.
func commandArgs(argv []string, shell string) error {
	switch {
	case len(argv) == 0 && shell == "":
		return errdefs.Arg("argv", "no command given: put it after `--` (e.g. `-- ls -la`) or give --shell 'CMD LINE'")
	case len(argv) > 0 && shell != "":
		return errdefs.Arg("command", "give a command after `--` or --shell, not both")
	}
	return nil
}
