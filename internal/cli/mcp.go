package cli

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/hostpath"
	hmcp "github.com/hearthvm/hearth/internal/mcp"
	"github.com/hearthvm/hearth/internal/version"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newMCPCmd) }

func newMCPCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Model Context Protocol server for agents",
		Long:  "Serve hearth's operations as MCP tools (docs/mcp.md).",
	}
	var addr, tokenFile, certFile, keyFile string
	var allowPaths []string
	var debug bool
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve every hearth operation as an MCP tool (stdio, or streamable HTTP with --http)",
		Long: `Serve every hearth operation as an MCP tool: workspace_create, workspace_exec,
workspace_diff, shell_open and the rest (docs/mcp.md).

By default it speaks MCP over stdio, for an MCP host that starts it as a subprocess
(see examples/mcp/ for Claude Desktop, Claude Code, Cursor and VS Code). Logs go to
stderr. With --http ADDR it serves streamable HTTP at http://ADDR/mcp instead:
stateless, foreign Origins refused with 403, and every request must carry
"Authorization: Bearer <token>": the token from --token-file or $HEARTH_TOKEN, else a
new random one written to $HEARTH_HOME/mcp-token (mode 0600). An address that is not
loopback also needs TLS (--tls-cert and --tls-key).

Host paths in tool calls (seed, sync push source, export destination) must lie, after
symlinks, under a directory given with --allow-path; without one, those calls fail.`,
		Example: `  hearth mcp serve --allow-path ~/projects
  hearth mcp serve --http 127.0.0.1:8765 --token-file ~/.config/hearth/token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
			if addr != "" && certFile == "" {
				if err := hmcp.CheckLoopback(addr); err != nil {
					return err
				}
			}
			if (certFile == "") != (keyFile == "") {
				return errdefs.Arg("tls_cert", "give --tls-cert and --tls-key together")
			}
			roots, err := hostpath.NewRoots(allowPaths)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			opts := hmcp.Options{Logger: log, Version: version.String(), CheckRequest: roots.Guard()}
			if debug {
				opts.SDKLogger = log
			}
			s := hmcp.NewServer(c, opts)
			ctx := cmd.Context()
			if addr != "" {
				token, err := mcpToken(g.home, tokenFile, log)
				if err != nil {
					return err
				}
				return hmcp.ServeHTTP(ctx, s, addr, log, hmcp.HTTPOptions{Token: token, CertFile: certFile, KeyFile: keyFile}, nil)
			}
			log.Info("serving MCP over stdio", "home", g.home)
			if err := s.Run(ctx, &sdk.StdioTransport{}); err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		},
	}
	serve.Flags().StringVar(&addr, "http", "", "serve streamable HTTP at http://ADDR/mcp instead of stdio (e.g. 127.0.0.1:8765)")
	serve.Flags().StringArrayVar(&allowPaths, "allow-path", nil, "a host directory tool calls may read from or write to (repeatable)")
	serve.Flags().StringVar(&tokenFile, "token-file", "", "with --http: file holding the bearer token (default $HEARTH_TOKEN, else a new one in $HEARTH_HOME/mcp-token)")
	serve.Flags().StringVar(&certFile, "tls-cert", "", "with --http: TLS certificate file (needed off loopback)")
	serve.Flags().StringVar(&keyFile, "tls-key", "", "with --http: TLS key file")
	serve.Flags().BoolVar(&debug, "debug", false, "log every tool call and the MCP session")
	cmd.AddCommand(serve)
	return cmd
}

// mcpToken returns the MCP HTTP bearer token: from the file or
// $HEARTH_TOKEN, else a new random one saved to HOME/mcp-token (0600) for
// clients to read.
func mcpToken(home, file string, log *slog.Logger) (string, error) {
	if file != "" || os.Getenv("HEARTH_TOKEN") != "" {
		return readToken(file, "--http")
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make a token: %w", err)
	}
	t := hex.EncodeToString(b[:])
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	p := filepath.Join(home, "mcp-token")
	if err := os.WriteFile(p, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		return "", fmt.Errorf("chmod %s: %w", p, err)
	}
	log.Info("MCP bearer token written", "file", p)
	return t, nil
}
