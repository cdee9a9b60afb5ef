package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/spf13/cobra"
)

func init() {
	workspaceCommands = append(workspaceCommands, newWSWait, newWSKill, newWSOutput)
}

func (g *globals) printCommandResult(r *api.ExecResult) error {
	if g.json {
		return g.printJSON(r)
	}
	if r.Status == api.StatusRunning {
		fmt.Fprintf(g.stdout, "%s running (%dms so far; %d bytes stdout, %d bytes stderr)\n", r.CommandID, r.DurationMS, r.StdoutBytes, r.StderrBytes)
		return nil
	}
	fmt.Fprintf(g.stdout, "%s finished: exit %d (%s) after %dms\n", r.CommandID, r.ExitCode, r.Reason, r.DurationMS)
	return nil
}

func newWSWait(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait WS COMMAND_ID",
		Short: "Wait for a detached command to finish",
		Long: `Wait up to --timeout for a command started with 'exec --detach' (or left running
by a yield) to finish, then print its result; with --json the ExecResult with
status "running" or "finished". Exits with the command's exit code once finished.`,
		Example: `  id=$(hearth workspace exec demo --detach --json -- make build | jq -r .command_id)
  hearth workspace wait demo $id --timeout 10m`,
		Args: exactArgs(2, "WS and COMMAND_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Workspace(args[0]).CommandWait(cmd.Context(), args[1], timeout)
			if err != nil {
				return err
			}
			if err := g.printCommandResult(r); err != nil {
				return err
			}
			if r.Status == api.StatusFinished && r.ExitCode != 0 {
				return &exitError{code: r.ExitCode}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait (0: just report)")
	return cmd
}

func newWSKill(g *globals) *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill WS COMMAND_ID",
		Short: "Signal a detached command's process group",
		Args:  exactArgs(2, "WS and COMMAND_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Workspace(args[0]).CommandKill(cmd.Context(), args[1], signal)
			if err != nil {
				return err
			}
			return g.printCommandResult(r)
		},
	}
	cmd.Flags().StringVar(&signal, "signal", "KILL", "KILL, TERM, INT, HUP, QUIT, USR1 or USR2")
	return cmd
}

func newWSOutput(g *globals) *cobra.Command {
	var stream string
	var offset int64
	var limit int
	var follow bool
	cmd := &cobra.Command{
		Use:   "output WS COMMAND_ID",
		Short: "Read a command's output from an offset (--follow streams it until it ends)",
		Long: `Print a logged command's stdout (or --stream stderr) from --offset, at most --limit
bytes; with --json the slice with next_offset, total_bytes and status. --follow
keeps printing new output until the command finishes.`,
		Args: exactArgs(2, "WS and COMMAND_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ws := c.Workspace(args[0])
			if !follow {
				r, err := ws.CommandRead(cmd.Context(), args[1], stream, offset, limit)
				if err != nil {
					return err
				}
				if g.json {
					return g.printJSON(r)
				}
				return writeOutput(g.stdout, r)
			}
			return followOutput(cmd.Context(), ws, args[1], stream, offset, g.stdout)
		},
	}
	cmd.Flags().StringVar(&stream, "stream", "stdout", "stdout or stderr")
	cmd.Flags().Int64Var(&offset, "offset", 0, "byte offset to start from")
	cmd.Flags().IntVar(&limit, "limit", 64<<10, "most bytes to return (max 1 MiB)")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing until the command finishes")
	return cmd
}

func writeOutput(w io.Writer, r *api.CommandOutput) error {
	b := []byte(r.Data)
	if r.Encoding == "base64" {
		var err error
		if b, err = base64.StdEncoding.DecodeString(r.Data); err != nil {
			return err
		}
	}
	_, err := w.Write(b)
	return err
}

// followOutput prints a command's output as it grows until it finishes.
func followOutput(ctx context.Context, ws *hearth.Workspace, id, stream string, offset int64, w io.Writer) error {
	for {
		r, err := ws.CommandRead(ctx, id, stream, offset, 1<<20)
		if err != nil {
			return err
		}
		if err := writeOutput(w, r); err != nil {
			return err
		}
		offset = r.NextOffset
		if r.NextOffset < r.TotalBytes {
			continue
		}
		if r.Status != api.StatusRunning {
			return nil
		}
		// Wait for the command to end or for a moment, then look again.
		if _, err := ws.CommandWait(ctx, id, 500*time.Millisecond); err != nil {
			return err
		}
	}
}
