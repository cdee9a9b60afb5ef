package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/spf13/cobra"
)

func init() {
	workspaceCommands = append(workspaceCommands, newWSSnapshot, newWSReset, newWSFork)
}

func newWSSnapshot(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Take, list, show and remove named disk snapshots",
		Long: `A snapshot is a named copy of a workspace's whole writable disk: /workspace and every
change to the root file system. Taking one of a running workspace freezes the guest's
file system for the copy only; commands keep running. A copy costs what the disk holds,
not its size. Every workspace has the snapshot "baseline": its state right after create.
Go back to a snapshot with 'hearth workspace reset WS --to NAME'; make new workspaces
from one with 'hearth workspace fork WS --name NEW --from NAME'.`,
	}
	cmd.AddCommand(newSnapCreate(g), newSnapList(g), newSnapShow(g), newSnapRemove(g))
	return cmd
}

func (g *globals) printSnapshot(s *api.Snapshot) error {
	if g.json {
		return g.printJSON(s)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", s.Name)
	fmt.Fprintf(tw, "workspace:\t%s\n", s.Workspace)
	fmt.Fprintf(tw, "kind:\t%s\n", s.Kind)
	fmt.Fprintf(tw, "created:\t%s (%s)\n", s.CreatedAt.Local().Format(time.RFC3339), ago(s.CreatedAt))
	fmt.Fprintf(tw, "size:\t%s on the host (disk %s)\n", humanBytes(s.SizeBytes), humanBytes(s.Restore.DiskSizeBytes))
	how := s.Method + " copy"
	switch {
	case s.Kind == api.SnapshotMemory:
		how += fmt.Sprintf(" of the running guest with its memory (paused %d ms)", s.FrozenMS)
	case s.Running:
		how += fmt.Sprintf(" of the running guest (frozen %d ms)", s.FrozenMS)
	}
	fmt.Fprintf(tw, "taken:\t%s in %d ms\n", how, s.DurationMS)
	if s.Parent != "" {
		fmt.Fprintf(tw, "parent:\t%s\n", s.Parent)
	}
	fmt.Fprintf(tw, "restore needs:\t%s image %s, kernel %s\n", s.Restore.Backend, s.Restore.Image, s.Restore.KernelVersion)
	if s.Kind == api.SnapshotMemory {
		fmt.Fprintf(tw, "resume needs:\tVMM %s, accel %s, CPU %s, %d CPUs, %d MiB\n", s.Restore.VMMVersion, s.Restore.Accel, s.Restore.CPUModel, s.Restore.CPUs, s.Restore.MemoryMiB)
	}
	return tw.Flush()
}

func newSnapCreate(g *globals) *cobra.Command {
	var memory bool
	cmd := &cobra.Command{
		Use:   "create WS NAME [--memory]",
		Short: "Take a disk snapshot of a workspace, running or stopped (--memory: with its running processes)",
		Long: `Take a snapshot of a workspace's whole writable disk, running or stopped. With
--memory (a running workspace, QEMU backend) the VM pauses for a moment and its memory and
device state are saved with the disk: 'reset --to NAME' and 'fork --from NAME' then resume
the processes, shells and services that ran instead of booting. A memory snapshot resumes
only under the same QEMU version, accelerator, CPU model, CPUs and memory size.`,
		Example: `  hearth workspace snapshot create demo before-upgrade
  hearth workspace snapshot create demo warm --memory`,
		Args: exactArgs(2, "WS and NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ws := c.Workspace(args[0])
			var s *api.Snapshot
			if memory {
				s, err = ws.SnapshotCreateMemory(cmd.Context(), args[1])
			} else {
				s, err = ws.SnapshotCreate(cmd.Context(), args[1])
			}
			if err != nil {
				return err
			}
			return g.printSnapshot(s)
		},
	}
	cmd.Flags().BoolVar(&memory, "memory", false, "also save the running VM's memory: a reset to it or fork of it resumes its processes")
	return cmd
}

func newSnapList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list WS",
		Short: "List a workspace's snapshots",
		Args:  exactArgs(1, "WS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.Workspace(args[0]).SnapshotList(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(l)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tCREATED\tSIZE\tPARENT")
			for _, s := range l.Snapshots {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Kind, ago(s.CreatedAt), humanBytes(s.SizeBytes), s.Parent)
			}
			fmt.Fprintf(tw, "(%d snapshots, %s on the host)\n", len(l.Snapshots), humanBytes(l.TotalBytes))
			return tw.Flush()
		},
	}
}

func newSnapShow(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show WS NAME",
		Short: "Show one snapshot",
		Args:  exactArgs(2, "WS and NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.Workspace(args[0]).SnapshotShow(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			return g.printSnapshot(s)
		},
	}
}

func newSnapRemove(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm WS NAME",
		Aliases: []string{"remove"},
		Short:   "Remove a snapshot",
		Args:    exactArgs(2, "WS and NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.Workspace(args[0]).SnapshotRemove(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(s)
			}
			fmt.Fprintf(g.stdout, "removed snapshot %s of %s (%s freed)\n", s.Name, s.Workspace, humanBytes(s.SizeBytes))
			return nil
		},
	}
}

func newWSReset(g *globals) *cobra.Command {
	var o hearth.ResetOptions
	cmd := &cobra.Command{
		Use:   "reset WS [--to NAME|baseline] [--force]",
		Short: "Put a workspace's whole disk back to a snapshot",
		Long: `Replace the workspace's whole writable disk with a snapshot's: --to NAME, or
"baseline", the state right after create (the default). A running workspace reboots on
it; a stopped one stays stopped. A memory snapshot (snapshot create --memory) resumes
its processes instead, whether the workspace was running or stopped. Without --force it
refuses while commands, shells or services run (services start again after it). The command log is kept, with an entry for the reset; 'hearth workspace diff' still
compares against the create-time baseline.`,
		Example: `  hearth workspace reset demo --to before-upgrade
  hearth workspace reset demo --force`,
		Args: exactArgs(1, "WS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			w, err := c.Workspace(args[0]).Reset(cmd.Context(), o)
			if err != nil {
				return err
			}
			return g.printWorkspace(w)
		},
	}
	cmd.Flags().StringVar(&o.To, "to", "baseline", "the snapshot to go back to")
	cmd.Flags().BoolVar(&o.Force, "force", false, "reset even while commands, shells or services run (they end)")
	return cmd
}

func newWSFork(g *globals) *cobra.Command {
	var o hearth.ForkOptions
	cmd := &cobra.Command{
		Use:   "fork WS --name NEW [--from SNAPSHOT] [--count N]",
		Short: "Make new workspaces from a workspace's snapshot, or its disk now",
		Long: `Create --count new workspaces (NEW, or NEW-1 … NEW-N) from the snapshot --from, or
from the workspace's disk as it is now (a consistent copy; the workspace keeps running),
and boot them. Each fork has its own id, disk, hostname and machine-id. 'hearth workspace
diff' in a fork compares against its parent's baseline; --rebaseline records its own.`,
		Example: `  hearth workspace fork demo --name trial --from before-upgrade
  hearth workspace fork demo --name batch --count 4`,
		Args: exactArgs(1, "WS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ws, err := c.Workspace(args[0]).Fork(cmd.Context(), o)
			if g.json && err == nil {
				infos := make([]api.Workspace, len(ws))
				for i, w := range ws {
					infos[i] = w.Info
				}
				return g.printJSON(api.ForkResult{Workspaces: infos})
			}
			for _, w := range ws {
				fmt.Fprintf(g.stdout, "%s\t%s\t%s\n", w.Info.ID, w.Info.Name, w.Info.State)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&o.Name, "name", "", "name of the new workspace (NAME-1 … NAME-N with --count)")
	cmd.Flags().StringVar(&o.From, "from", "", "snapshot to fork (default: the disk as it is now)")
	cmd.Flags().IntVar(&o.Count, "count", 1, "how many forks")
	cmd.Flags().BoolVar(&o.Rebaseline, "rebaseline", false, "give each fork its own diff baseline instead of the parent's")
	return cmd
}
