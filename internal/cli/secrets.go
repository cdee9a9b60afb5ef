package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/secrets"
	"github.com/spf13/cobra"
)

func init() {
	commands = append(commands, newSecretCmd)
	workspaceCommands = append(workspaceCommands, newWSSecret)
}

func newSecretCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Store secrets on the host, for workspaces to use",
		Long: `Secrets are stored on this machine under $HEARTH_HOME/secrets (files mode 0600 in a
0700 directory; not encrypted: as safe as the account, like ~/.ssh). Their values are
never printed again. Expose one to a workspace with 'workspace create --secret NAME:MODE'
or 'workspace secret add WS NAME --mode MODE':
  file      /run/secrets/NAME in the guest (a tmpfs, mode 0400, never on its disk)
  env       NAME=value for the execs and shells that ask with --secret-env NAME
  brokered  the guest sees a placeholder; egress puts the value in the configured
            headers of requests to the configured hosts (--host, required);
            HTTPS to them goes through a per-workspace CA the guest trusts
Values printed by a command come back as [REDACTED:NAME] everywhere hearth shows them.`,
	}
	cmd.AddCommand(newSecretSet(g), newSecretList(g), newSecretRm(g))
	return cmd
}

func (g *globals) printSecret(s *api.Secret, verb string) error {
	if g.json {
		return g.printJSON(s)
	}
	fmt.Fprintf(g.stdout, "%s %s (%d bytes)\n", verb, s.Name, s.Bytes)
	return nil
}

// secretValue reads a value from exactly one source: --from-file,
// --from-env or standard input. A single trailing newline of standard
// input (as `echo` adds) is dropped; file bytes are kept exactly.
func (g *globals) secretValue(name, fromFile, fromEnv string) ([]byte, error) {
	switch {
	case fromFile != "" && fromEnv != "":
		return nil, errdefs.Arg("value", "give --from-file or --from-env, not both")
	case fromFile != "":
		st, err := os.Stat(fromFile)
		if err != nil {
			return nil, errdefs.Arg("value", "secret %s: --from-file: %v", name, err)
		}
		if st.Size() > secrets.MaxValue {
			return nil, errdefs.Arg("value", "secret %s: %s is %d bytes, more than the limit of %d (64 KiB)", name, fromFile, st.Size(), secrets.MaxValue)
		}
		b, err := os.ReadFile(fromFile)
		if err != nil {
			return nil, errdefs.Arg("value", "secret %s: --from-file: %v", name, err)
		}
		return b, nil
	case fromEnv != "":
		v, ok := os.LookupEnv(fromEnv)
		if !ok || v == "" {
			return nil, errdefs.Arg("value", "secret %s: --from-env: the environment variable %s is not set or empty", name, fromEnv)
		}
		return []byte(v), nil
	}
	b, err := io.ReadAll(io.LimitReader(g.stdin, secrets.MaxValue+2))
	if err != nil {
		return nil, fmt.Errorf("secret %s: read standard input: %w", name, err)
	}
	if bytes.HasSuffix(b, []byte("\r\n")) {
		b = b[:len(b)-2]
	} else if bytes.HasSuffix(b, []byte("\n")) {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return nil, errdefs.Arg("value", "secret %s: no value given: pipe it on standard input (printf %%s \"$KEY\" | hearth secret set %s), or use --from-file or --from-env", name, name)
	}
	return b, nil
}

func newSecretSet(g *globals) *cobra.Command {
	var fromFile, fromEnv string
	var o hearth.SecretSetOptions
	cmd := &cobra.Command{
		Use:   "set NAME [--from-file FILE | --from-env VAR]",
		Short: "Store a secret (the value from standard input, a file or a variable)",
		Long: `Store a secret's value, replacing any it had. The value is read from standard
input (one trailing newline dropped), --from-file (exact bytes) or --from-env, on the
machine this command runs on; 4 bytes to 64 KiB. It is never printed.`,
		Example: `  printf %s "$OPENAI_API_KEY" | hearth secret set OPENAI_API_KEY
  hearth secret set DEPLOY_KEY --from-file ~/.ssh/deploy_key
  hearth secret set API_TOKEN --from-env API_TOKEN --host api.example.com --header Authorization`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := secrets.ValidateName(args[0]); err != nil {
				return err
			}
			v, err := g.secretValue(args[0], fromFile, fromEnv)
			if err != nil {
				return err
			}
			defer clear(v)
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.SecretSet(cmd.Context(), args[0], v, o)
			if err != nil {
				return err
			}
			return g.printSecret(s, "stored")
		},
	}
	f := cmd.Flags()
	f.StringVar(&fromFile, "from-file", "", "read the value from this file (exact bytes)")
	f.StringVar(&fromEnv, "from-env", "", "read the value from this environment variable")
	f.StringArrayVar(&o.Hosts, "host", nil, "a host a brokered exposure may send the value to (repeatable; required for brokered)")
	f.StringArrayVar(&o.Headers, "header", nil, "a header a brokered value goes in (repeatable; default Authorization)")
	return cmd
}

func newSecretList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List stored secrets (names and metadata, never values)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.SecretList(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(api.SecretList{Secrets: l})
			}
			if len(l) == 0 {
				fmt.Fprintln(g.stdout, "no secrets: store one with `hearth secret set NAME`")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tBYTES\tUPDATED\tHOSTS\tWORKSPACES")
			for _, s := range l {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.Name, s.Bytes, ago(s.UpdatedAt), dash(strings.Join(s.Hosts, ",")), dash(strings.Join(s.Workspaces, ",")))
			}
			return tw.Flush()
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newSecretRm(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a stored secret",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.SecretRemove(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.printSecret(s, "removed")
		},
	}
}

func newWSSecret(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Expose stored secrets to a workspace, or stop",
	}
	cmd.AddCommand(newWSSecretAdd(g), newWSSecretRm(g))
	return cmd
}

func newWSSecretAdd(g *globals) *cobra.Command {
	var o hearth.SecretExposure
	cmd := &cobra.Command{
		Use:   "add WS NAME [--mode file|env|brokered]",
		Short: "Expose a stored secret to a workspace (a running one at once)",
		Example: `  hearth workspace secret add demo DEPLOY_KEY --mode file
  hearth workspace exec demo --secret-env API_TOKEN -- ./deploy.sh`,
		Args: exactArgs(2, "WS and NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			w, err := c.Workspace(args[0]).SecretAdd(cmd.Context(), args[1], o)
			if err != nil {
				return err
			}
			return g.printWorkspace(w)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Mode, "mode", "env", "file (/run/secrets/NAME), env (--secret-env NAME on exec and shell open) or brokered")
	f.StringArrayVar(&o.Hosts, "host", nil, "brokered: a host the value may be sent to (repeatable; default: the stored secret's)")
	f.StringArrayVar(&o.Headers, "header", nil, "brokered: a header the value goes in (repeatable; default: the stored secret's, or Authorization)")
	return cmd
}

func newWSSecretRm(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm WS NAME",
		Short: "Stop exposing a secret to a workspace",
		Args:  exactArgs(2, "WS and NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			w, err := c.Workspace(args[0]).SecretRemove(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			return g.printWorkspace(w)
		},
	}
}
