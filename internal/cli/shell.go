package cli

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() { workspaceCommands = append(workspaceCommands, newWSShell) }

func newWSShell(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shell",
		Short: "Persistent PTY shell sessions",
		Long: `Shell sessions live in the guest agent, independent of any host process: they keep
their state (cwd, variables, background jobs, a running REPL) between calls and
survive the CLI exiting. Output is kept in a bounded buffer per shell and read from
a cursor. Shell traffic never enters the command log.`,
		Example: `  id=$(hearth workspace shell open demo --json | jq -r .id)
  hearth workspace shell write demo $id $'cd /tmp && ls\n'
  hearth workspace shell read demo $id --wait 2s --plain
  hearth workspace shell attach demo $id      # Ctrl-] detaches`,
	}
	cmd.AddCommand(newShellOpen(g), newShellWrite(g), newShellRead(g), newShellResize(g), newShellSignal(g), newShellClose(g), newShellList(g), newShellAttach(g))
	return cmd
}

func (g *globals) printShell(s *api.Shell) error {
	if g.json {
		return g.printJSON(s)
	}
	exit := ""
	if s.ExitCode != nil {
		exit = fmt.Sprintf(" (exit %d)", *s.ExitCode)
	}
	fmt.Fprintf(g.stdout, "%s %s%s %dx%d %s\n", s.ID, s.State, exit, s.Cols, s.Rows, s.Cwd)
	return nil
}

func newShellOpen(g *globals) *cobra.Command {
	var o hearth.ShellOpenOptions
	var env []string
	cmd := &cobra.Command{
		Use:   "open WS",
		Short: "Open a shell session (prints its id)",
		Args:  exactArgs(1, "WS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if o.Env, err = parseEnv(env); err != nil {
				return err
			}
			s, err := c.Workspace(args[0]).ShellOpen(cmd.Context(), o)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(s)
			}
			fmt.Fprintln(g.stdout, s.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Cwd, "cwd", "/workspace", "starting directory")
	cmd.Flags().StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	cmd.Flags().IntVar(&o.Cols, "cols", 120, "terminal columns")
	cmd.Flags().IntVar(&o.Rows, "rows", 40, "terminal rows")
	cmd.Flags().StringArrayVar(&o.SecretEnv, "secret-env", nil, "set the workspace's env secret NAME in the shell's environment (repeatable)")
	return cmd
}

func newShellWrite(g *globals) *cobra.Command {
	var stdin bool
	cmd := &cobra.Command{
		Use:   "write WS SHELL [TEXT]",
		Short: "Send bytes to a shell exactly as given (include \\n to run a line)",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			switch {
			case stdin && len(args) == 2:
				b, err := io.ReadAll(io.LimitReader(g.stdin, 1<<20+1))
				if err != nil {
					return err
				}
				if len(b) > 1<<20 {
					return fmt.Errorf("--stdin: more than 1 MiB; write in pieces: %w", errdefs.ErrInvalidArgument)
				}
				data = b
			case !stdin && len(args) == 3:
				data = []byte(args[2])
			default:
				return fmt.Errorf("give TEXT or --stdin (not both): %w", errdefs.ErrInvalidArgument)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.Workspace(args[0]).ShellWrite(cmd.Context(), args[1], data)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(s)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&stdin, "stdin", false, "read the bytes from standard input")
	return cmd
}

func newShellRead(g *globals) *cobra.Command {
	var cursor int64 = -1
	var o hearth.ShellReadOptions
	cmd := &cobra.Command{
		Use:   "read WS SHELL",
		Short: "Read a shell's output from a cursor",
		Long: `Print the shell's output since --cursor (default: where the previous read ended).
--wait returns as soon as new output arrives or when the time is up. --plain strips
terminal escape sequences. With --json: output, encoding, cursor, next_cursor, state,
exit_code and dropped_bytes (output missed because the read fell behind the shell's
1 MiB buffer). Without --json the next cursor is printed on stderr.`,
		Args: exactArgs(2, "WS and SHELL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cursor >= 0 {
				o.Cursor = &cursor
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Workspace(args[0]).ShellRead(cmd.Context(), args[1], o)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(r)
			}
			out := []byte(r.Output)
			if r.Encoding == "base64" {
				out, _ = base64.StdEncoding.DecodeString(r.Output)
			}
			g.stdout.Write(out)
			if r.DroppedBytes > 0 {
				fmt.Fprintf(g.stderr, "hearth: %d bytes dropped (the read fell behind)\n", r.DroppedBytes)
			}
			st := r.State
			if r.ExitCode != nil {
				st += " " + strconv.Itoa(*r.ExitCode)
			}
			fmt.Fprintf(g.stderr, "[next cursor %d, %s]\n", r.NextCursor, st)
			return nil
		},
	}
	cmd.Flags().Int64Var(&cursor, "cursor", -1, "output offset to read from (default: where the last read ended)")
	cmd.Flags().DurationVar(&o.Wait, "wait", 0, "wait up to this long for new output (max 50s)")
	cmd.Flags().BoolVar(&o.Plain, "plain", false, "strip terminal escape sequences")
	return cmd
}

func newShellResize(g *globals) *cobra.Command {
	var cols, rows int
	cmd := &cobra.Command{
		Use:   "resize WS SHELL --cols N --rows N",
		Short: "Change a shell's terminal size",
		Args:  exactArgs(2, "WS and SHELL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.Workspace(args[0]).ShellResize(cmd.Context(), args[1], cols, rows)
			if err != nil {
				return err
			}
			return g.printShell(s)
		},
	}
	cmd.Flags().IntVar(&cols, "cols", 0, "columns")
	cmd.Flags().IntVar(&rows, "rows", 0, "rows")
	return cmd
}

func newShellSignal(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "signal WS SHELL INT|TERM|KILL|HUP",
		Short: "Signal the shell's foreground process group",
		Args:  exactArgs(3, "WS, SHELL and a signal"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.Workspace(args[0]).ShellSignal(cmd.Context(), args[1], args[2])
			if err != nil {
				return err
			}
			return g.printShell(s)
		},
	}
}

func newShellClose(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "close WS SHELL",
		Short: "End a shell session and free it",
		Args:  exactArgs(2, "WS and SHELL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.Workspace(args[0]).ShellClose(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			return g.printShell(s)
		},
	}
}

func newShellList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list WS",
		Short: "List shell sessions",
		Args:  exactArgs(1, "WS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ss, err := c.Workspace(args[0]).ShellList(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(map[string]any{"shells": ss})
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tSIZE\tCWD\tOUTPUT\tCREATED")
			for _, s := range ss {
				st := s.State
				if s.ExitCode != nil {
					st += fmt.Sprintf(" (%d)", *s.ExitCode)
				}
				fmt.Fprintf(tw, "%s\t%s\t%dx%d\t%s\t%s\t%s\n", s.ID, st, s.Cols, s.Rows, s.Cwd, humanBytes(s.OutputBytes), s.CreatedAt)
			}
			return tw.Flush()
		},
	}
}

// detachKey is Ctrl-]: it ends an attach and leaves the shell running.
const detachKey = 0x1d

// detachReader ends (EOF) at the detach key.
type detachReader struct {
	r    io.Reader
	done bool
}

func (d *detachReader) Read(p []byte) (int, error) {
	if d.done {
		return 0, io.EOF
	}
	n, err := d.r.Read(p)
	if i := bytes.IndexByte(p[:n], detachKey); i >= 0 {
		d.done = true
		if i == 0 {
			return 0, io.EOF
		}
		return i, nil
	}
	return n, err
}

func newShellAttach(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "attach WS [SHELL]",
		Short: "Attach this terminal to a shell (Ctrl-] detaches, leaving it running)",
		Long: `Attach an interactive terminal to SHELL (a new shell when omitted): raw mode,
window-size changes followed. Ctrl-] detaches and leaves the shell running; when the
shell exits, attach ends too.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ws := c.Workspace(args[0])
			ctx := cmd.Context()
			fd := int(os.Stdin.Fd())
			isTerm := g.stdin == os.Stdin && term.IsTerminal(fd)
			var id string
			if len(args) == 2 {
				id = args[1]
			} else {
				o := hearth.ShellOpenOptions{}
				if isTerm {
					if w, h, err := term.GetSize(fd); err == nil {
						o.Cols, o.Rows = w, h
					}
				}
				s, err := ws.ShellOpen(ctx, o)
				if err != nil {
					return err
				}
				id = s.ID
				fmt.Fprintf(g.stderr, "hearth: opened shell %s (Ctrl-] detaches)\r\n", id)
			}
			resize := make(chan [2]int, 1)
			if isTerm {
				old, err := term.MakeRaw(fd)
				if err != nil {
					return fmt.Errorf("raw mode: %w", err)
				}
				defer term.Restore(fd, old)
				winch := make(chan os.Signal, 1)
				signal.Notify(winch, syscall.SIGWINCH)
				defer signal.Stop(winch)
				push := func() {
					if w, h, err := term.GetSize(fd); err == nil {
						select {
						case resize <- [2]int{w, h}:
						default:
						}
					}
				}
				push()
				go func() {
					for range winch {
						push()
					}
				}()
			}
			err = ws.ShellAttach(ctx, id, &detachReader{r: g.stdin}, g.stdout, resize)
			if isTerm {
				fmt.Fprintf(g.stderr, "\r\nhearth: detached from %s\r\n", id)
			}
			_ = time.Second
			return err
		},
	}
}
