package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newWorkspaceCmd) }

// workspaceCommands are the `hearth workspace` subcommands; feature files
// add theirs in init functions.
var workspaceCommands []func(*globals) *cobra.Command

func newWorkspaceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "workspace",
		Aliases: []string{"ws"},
		Short:   "Create, use and remove persistent workspaces",
		Long: `A workspace is a microVM that persists: the CLI exits, the VM keeps running; it can
be stopped and started again from its own disk. WS is a workspace id (ws-…) or its
unique name everywhere.`,
	}
	cmd.AddCommand(newWSCreate(g), newWSList(g), newWSShow(g), newWSStart(g), newWSStop(g), newWSDelete(g), newWSExec(g), newWSLogs(g), newWSNetwork(g))
	for _, add := range workspaceCommands {
		cmd.AddCommand(add(g))
	}
	return cmd
}

func (g *globals) printWorkspace(w *api.Workspace) error {
	if g.json {
		return g.printJSON(w)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\n", w.ID)
	fmt.Fprintf(tw, "name:\t%s\n", w.Name)
	fmt.Fprintf(tw, "state:\t%s\n", w.State)
	if w.Error != "" {
		fmt.Fprintf(tw, "error:\t%s\n", w.Error)
	}
	fmt.Fprintf(tw, "image:\t%s\n", w.Image)
	backend := w.Backend
	if w.Accel != "" {
		backend += " (" + w.Accel + ")"
	}
	fmt.Fprintf(tw, "backend:\t%s\n", backend)
	fmt.Fprintf(tw, "cpus:\t%d\n", w.CPUs)
	fmt.Fprintf(tw, "memory:\t%d MiB\n", w.MemoryMiB)
	fmt.Fprintf(tw, "disk:\t%s\n", humanBytes(w.DiskSizeBytes))
	fmt.Fprintf(tw, "created:\t%s (%s)\n", w.CreatedAt.Local().Format(time.RFC3339), ago(w.CreatedAt))
	if w.PID != 0 {
		fmt.Fprintf(tw, "pid:\t%d\n", w.PID)
	}
	if w.LastExit != "" && w.State != api.StateRunning {
		fmt.Fprintf(tw, "last exit:\t%s\n", w.LastExit)
	}
	if w.Suspended {
		at := ""
		if w.SuspendedAt != nil {
			at = " " + ago(*w.SuspendedAt)
		}
		fmt.Fprintf(tw, "suspended:\tyes%s: its memory is saved; start resumes its processes\n", at)
	}
	if w.Seed != "" {
		fmt.Fprintf(tw, "seed:\t%s\n", w.Seed)
	}
	for _, d := range w.Disks {
		mode := "rw"
		if d.ReadOnly {
			mode = "ro"
		}
		fmt.Fprintf(tw, "data disk:\t%s at %s (%s)\n", d.Disk, d.Path, mode)
	}
	if w.Snapshots > 0 {
		fmt.Fprintf(tw, "snapshots:\t%d (%s on the host)\n", w.Snapshots, humanBytes(w.SnapshotBytes))
	}
	if w.Parent != "" {
		fmt.Fprintf(tw, "parent:\t%s\n", w.Parent)
	}
	if len(w.Secrets) > 0 {
		var l []string
		for _, s := range w.Secrets {
			l = append(l, s.Name+" ("+s.Mode+")")
		}
		fmt.Fprintf(tw, "secrets:\t%s\n", strings.Join(l, ", "))
	}
	fmt.Fprintf(tw, "console:\t%s\n", w.ConsoleLog)
	return tw.Flush()
}

func newWSCreate(g *globals) *cobra.Command {
	var o hearth.CreateOptions
	var disk string
	var disks []string
	var nf networkFlags
	cmd := &cobra.Command{
		Use:   "create [flags]",
		Short: "Create a workspace and boot it",
		Long: `Create a workspace: a microVM with its own writable disk (root file system changes
and /workspace) over the image's shared read-only root. Returns once the guest agent
answers. --seed copies a host directory or archive (.tar, .tar.gz, .tgz, .zip) into
/workspace; the create-time contents of /workspace become the immutable baseline
that 'hearth workspace diff' compares against.`,
		Example: `  hearth workspace create --name demo
  hearth workspace create --name api --seed ./project --cpus 2 --memory 2048 --disk-size 20G --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkMachineFlags(cmd, o.CPUs, o.MemoryMiB); err != nil {
				return err
			}
			var err error
			if o.DiskSize, err = parseSize(disk); err != nil {
				return fmt.Errorf("--disk-size: %w", err)
			}
			for _, s := range disks {
				d, err := hearth.ParseDiskSpec(s)
				if err != nil {
					return fmt.Errorf("--disk: %w", err)
				}
				o.Disks = append(o.Disks, d)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if !g.json {
				o.Progress = func(s string) { fmt.Fprintf(g.stderr, "hearth: %s…\n", s) }
			}
			if o.Network, err = nf.policy(cmd); err != nil {
				return err
			}
			ws, err := c.CreateWorkspace(cmd.Context(), o)
			if err != nil {
				return err
			}
			return g.printWorkspace(&ws.Info)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "unique name (default: the id)")
	f.StringVar(&o.Image, "image", "debian-12", "image")
	f.StringVar(&o.Backend, "backend", "", "VMM backend: auto, qemu or firecracker (default $HEARTH_BACKEND or auto)")
	f.IntVar(&o.CPUs, "cpus", 2, "virtual CPUs")
	f.IntVar(&o.MemoryMiB, "memory", 1024, "memory in MiB (at least 128)")
	f.StringVar(&disk, "disk-size", "8G", "size of the writable disk (sparse), e.g. 8G, 512M")
	f.StringVar(&o.Seed, "seed", "", "host directory or archive to copy into /workspace")
	f.StringArrayVar(&o.Publish, "publish", nil, "publish [HOST_ADDR:]HOST_PORT:GUEST_PORT on the host (repeatable; see 'hearth workspace port')")
	f.BoolVar(&o.AllowNonLoopback, "allow-non-loopback", false, "allow a --publish host address other than loopback (reachable from other machines)")
	f.StringArrayVar(&disks, "disk", nil, "attach a named data disk: NAME:/mnt/PATH or NAME:/mnt/PATH:ro (repeatable)")
	f.StringArrayVar(&o.Secrets, "secret", nil, "expose a stored secret NAME or NAME:MODE (mode file, env or brokered; default env; repeatable; see 'hearth secret')")
	f.BoolVar(&o.SecretEnvAll, "secret-env-all", false, "put the env secrets in every exec's and shell's environment (default: only of those that ask with --secret-env)")
	nf.add(f)
	return cmd
}

func newWSList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List workspaces",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ws, err := c.ListWorkspaces(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(map[string]any{"workspaces": ws})
			}
			if len(ws) == 0 {
				fmt.Fprintln(g.stdout, "no workspaces: create one with `hearth workspace create --name NAME`")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tIMAGE\tCPUS\tMEMORY\tCREATED")
			for _, w := range ws {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%dM\t%s\n", w.ID, w.Name, w.State, w.Image, w.CPUs, w.MemoryMiB, ago(w.CreatedAt))
			}
			return tw.Flush()
		},
	}
}

func wsCmd(g *globals, use, short string, do func(cmd *cobra.Command, ws *hearth.Workspace) (*api.Workspace, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use + " WS",
		Short: short,
		Args:  exactArgs(1, "WS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			w, err := do(cmd, c.Workspace(args[0]))
			if err != nil {
				return err
			}
			return g.printWorkspace(w)
		},
	}
}

// exactArgs is cobra.ExactArgs with an error that names what is missing.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %s (got %d arguments); see `%s --help`: %w", cmd.CommandPath(), names, len(args), cmd.CommandPath(), errdefs.ErrInvalidArgument)
		}
		return nil
	}
}

func newWSShow(g *globals) *cobra.Command {
	return wsCmd(g, "show", "Show a workspace", func(cmd *cobra.Command, ws *hearth.Workspace) (*api.Workspace, error) {
		return ws.Show(cmd.Context())
	})
}

func newWSStart(g *globals) *cobra.Command {
	return wsCmd(g, "start", "Boot a stopped workspace from its disk (or resume a suspended one)", func(cmd *cobra.Command, ws *hearth.Workspace) (*api.Workspace, error) {
		return ws.Start(cmd.Context())
	})
}

func newWSStop(g *globals) *cobra.Command {
	var force bool
	var suspend bool
	cmd := wsCmd(g, "stop", "Shut a workspace down cleanly (its disk is kept), or suspend it", func(cmd *cobra.Command, ws *hearth.Workspace) (*api.Workspace, error) {
		switch {
		case suspend && force:
			return nil, errdefs.Arg("suspend", "--suspend waits for calls in flight; it does not go with --force")
		case suspend:
			return ws.Suspend(cmd.Context())
		case force:
			return ws.StopForce(cmd.Context())
		}
		return ws.Stop(cmd.Context())
	})
	cmd.Flags().BoolVar(&force, "force", false, "stop even while calls (exec, export, ...) are in flight; they fail")
	cmd.Flags().BoolVar(&suspend, "suspend", false, "save the guest's memory as it stops (QEMU): the next start resumes its processes")
	return cmd
}

func newWSDelete(g *globals) *cobra.Command {
	var force bool
	cmd := wsCmd(g, "delete", "Delete a workspace and every file it had", func(cmd *cobra.Command, ws *hearth.Workspace) (*api.Workspace, error) {
		return ws.Delete(cmd.Context(), force)
	})
	cmd.Flags().BoolVar(&force, "force", false, "delete even if it is running (the VM is killed)")
	return cmd
}

func newWSExec(g *globals) *cobra.Command {
	var o hearth.ExecOptions
	var env []string
	var stdin bool
	var yield time.Duration
	cmd := &cobra.Command{
		Use:   "exec WS [flags] (-- CMD [ARG...] | --shell 'CMD LINE')",
		Short: "Run a command in a running workspace",
		Long: `Run a command in a running workspace. Output streams as exact bytes to stdout and
stderr and the command's exit code becomes hearth's. Standard input is closed (the
command reads EOF) unless --stdin is given. With --json the result is one object:
exit_code, stdout, stderr (at most 1 MiB each, with *_truncated flags; base64 with
*_encoding when not UTF-8), duration_ms, timed_out, reason and command_id — the full
output stays in the command log ('hearth workspace logs WS ID'). A stopped workspace
is an error: start it with 'hearth workspace start WS'.`,
		Example: `  hearth workspace exec demo -- ls -la /workspace
  hearth workspace exec demo --cwd /tmp --env DEBUG=1 --timeout 1m -- make test
  echo 'print(1)' | hearth workspace exec demo --stdin -- python3`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash > 1 || (dash < 0 && len(args) > 1) {
				return fmt.Errorf("usage: hearth workspace exec WS [flags] -- CMD [ARG...] (put the command after `--`): %w", errdefs.ErrInvalidArgument)
			}
			if err := commandArgs(args[1:], o.Shell); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if o.Env, err = parseEnv(env); err != nil {
				return err
			}
			o.Argv = args[1:]
			o.Yield = yield
			if o.Detach || o.Yield > 0 {
				if stdin {
					o.Stdin = g.stdin
				}
				res, err := c.Workspace(args[0]).Exec(cmd.Context(), o)
				if err != nil {
					return err
				}
				if res.Status == api.StatusRunning {
					if g.json {
						return g.printJSON(res)
					}
					fmt.Fprintln(g.stdout, res.CommandID)
					fmt.Fprintf(g.stderr, "hearth: %s runs detached: `hearth workspace wait %s %s`, `... output %s %s --follow`, `... kill %s %s`\n",
						res.CommandID, args[0], res.CommandID, args[0], res.CommandID, args[0], res.CommandID)
					return nil
				}
				if !g.json {
					fmt.Fprint(g.stdout, res.Stdout)
					fmt.Fprint(g.stderr, res.Stderr)
				}
				return g.finishExec(res, o.Timeout)
			}
			if !g.json {
				o.Stdout, o.Stderr = g.stdout, g.stderr
			}
			if stdin {
				o.Stdin = g.stdin
			}
			res, err := c.Workspace(args[0]).Exec(cmd.Context(), o)
			if err != nil {
				return err
			}
			return g.finishExec(res, o.Timeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Cwd, "cwd", "/workspace", "working directory in the guest")
	f.StringVar(&o.Shell, "shell", "", "run this command line with /bin/sh -c (instead of CMD after --)")
	f.StringArrayVar(&env, "env", nil, "set an environment variable KEY=VALUE (repeatable)")
	f.DurationVar(&o.Timeout, "timeout", 0, "kill the command's process group after this long (e.g. 30s); 0 means no limit")
	f.BoolVar(&stdin, "stdin", false, "pass this process's standard input to the command")
	f.BoolVar(&o.Detach, "detach", false, "start the command and print its id at once; it keeps running (see workspace wait, output and kill)")
	f.DurationVar(&yield, "yield", 0, "wait at most this long; a command still running then detaches and its id is printed")
	f.StringArrayVar(&o.SecretEnv, "secret-env", nil, "set the workspace's env secret NAME in the command's environment (repeatable; its value is redacted from all output)")
	return cmd
}

func newWSLogs(g *globals) *cobra.Command {
	var tail int
	var stream string
	var follow, prune bool
	var pruneOpts hearth.PruneLogsOptions
	var maxBytes string
	cmd := &cobra.Command{
		Use:   "logs WS [COMMAND_ID]",
		Short: "Show the command log, or one command's full output",
		Long: `Without COMMAND_ID: every exec in the workspace with its id, argv, cwd, start time,
duration, exit code and output sizes. With COMMAND_ID: that command's full output
(stdout, or stderr with --stream stderr) as exact bytes; with --json, the command's
record plus its output; with --follow, its output as it grows until it finishes. The log is kept on the host and survives restarts. Shell
sessions, diff, export and sync never appear in it.

The host keeps at most 64 MiB of each stream of a command (the rest is counted,
not kept: see stdout_dropped_bytes) and about 1 GiB per workspace: past that,
the oldest finished commands' output is pruned. --prune removes finished
commands' output now, oldest first (all of it, or as --keep-last,
--older-than and --max-bytes select); their entries stay, marked pruned.`,
		Example: `  hearth workspace logs demo --tail 5
  hearth workspace logs demo cmd-000003 --stream stderr
  hearth workspace logs demo --prune --keep-last 20`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ws := c.Workspace(args[0])
			if prune {
				if len(args) == 2 {
					return fmt.Errorf("--prune applies to the whole log, not to one command: drop %s: %w", args[1], errdefs.ErrInvalidArgument)
				}
				if pruneOpts.MaxBytes, err = parseSize(maxBytes); err != nil {
					return fmt.Errorf("--max-bytes: %w", err)
				}
				res, err := ws.PruneLogs(cmd.Context(), pruneOpts)
				if err != nil {
					return err
				}
				if g.json {
					return g.printJSON(res)
				}
				fmt.Fprintf(g.stdout, "pruned the output of %d commands (%s); the log now takes %s of its %s quota\n",
					len(res.Pruned), humanBytes(res.FreedBytes), humanBytes(res.LogBytes), humanBytes(res.QuotaBytes))
				return nil
			}
			if pruneOpts != (hearth.PruneLogsOptions{}) || maxBytes != "" {
				return fmt.Errorf("--keep-last, --older-than and --max-bytes go with --prune: %w", errdefs.ErrInvalidArgument)
			}
			if len(args) == 2 && follow {
				return followOutput(cmd.Context(), ws, args[1], stream, 0, g.stdout)
			}
			if len(args) == 2 {
				rc, rec, err := ws.CommandOutput(cmd.Context(), args[1], stream)
				if err != nil {
					return err
				}
				defer rc.Close()
				if g.json {
					b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
					if err != nil {
						return err
					}
					text, enc := string(b), ""
					if !isUTF8(b) {
						text, enc = b64(b), "base64"
					}
					return g.printJSON(map[string]any{"command": rec, "stream": stream, "output": text, "encoding": enc})
				}
				_, err = io.Copy(g.stdout, rc)
				return err
			}
			cmds, err := ws.Logs(cmd.Context(), hearth.LogsOptions{Tail: tail})
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(map[string]any{"commands": cmds})
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTARTED\tDURATION\tEXIT\tSTATUS\tOUT/ERR\tCOMMAND")
			for _, c := range cmds {
				exit := "-"
				if c.ExitCode != nil {
					exit = fmt.Sprint(*c.ExitCode)
				}
				what := c.Shell
				if len(c.Argv) > 0 {
					what = strings.Join(c.Argv, " ")
				}
				if len(what) > 60 {
					what = what[:57] + "..."
				}
				status := c.Status
				if c.Pruned {
					status += ",pruned"
				}
				fmt.Fprintf(tw, "%s\t%s\t%dms\t%s\t%s\t%s/%s\t%s\n", c.ID, c.StartedAt.Local().Format("15:04:05"), c.DurationMS, exit, status,
					humanBytes(c.StdoutBytes), humanBytes(c.StderrBytes), what)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&tail, "tail", 0, "show only the last N commands")
	cmd.Flags().StringVar(&stream, "stream", "stdout", "with COMMAND_ID: which output, stdout or stderr")
	cmd.Flags().BoolVar(&follow, "follow", false, "with COMMAND_ID: keep printing its output until it finishes")
	cmd.Flags().BoolVar(&prune, "prune", false, "remove finished commands' output (oldest first); their entries stay, marked pruned")
	cmd.Flags().IntVar(&pruneOpts.KeepLast, "keep-last", 0, "with --prune: keep the output of the last N commands")
	cmd.Flags().DurationVar(&pruneOpts.OlderThan, "older-than", 0, "with --prune: only commands started longer ago than this (e.g. 24h)")
	cmd.Flags().StringVar(&maxBytes, "max-bytes", "", "with --prune: stop once the log takes at most this much (e.g. 200M)")
	return cmd
}
