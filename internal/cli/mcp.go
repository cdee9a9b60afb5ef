package cli

import (
	"log/slog"

	"github.com/hearthvm/hearth/internal/agent"
	hmcp "github.com/hearthvm/hearth/internal/mcp"
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
	var addr string
	var allowRemote, debug bool
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve every hearth operation as an MCP tool (stdio, or streamable HTTP with --http)",
		Long: `Serve every hearth operation as an MCP tool: workspace_create, workspace_exec,
workspace_diff, shell_open and the rest (docs/mcp.md).

By default it speaks MCP over stdio, for an MCP host that starts it as a subprocess
(see examples/mcp/ for Claude Desktop, Claude Code, Cursor and VS Code). Logs go to
stderr. With --http ADDR it serves streamable HTTP at http://ADDR/mcp instead:
stateless, loopback addresses only (unless --allow-remote), foreign Origins refused
with 403. The HTTP server has no authentication of its own.`,
		Example: `  hearth mcp serve
  hearth mcp serve --http 127.0.0.1:8765`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
			if addr != "" && !allowRemote {
				if err := hmcp.CheckLoopback(addr); err != nil {
					return err
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			opts := hmcp.Options{Logger: log, Version: agent.Version}
			if debug {
				opts.SDKLogger = log
			}
			s := hmcp.NewServer(c, opts)
			ctx := cmd.Context()
			if addr != "" {
				return hmcp.ServeHTTP(ctx, s, addr, log, nil)
			}
			log.Info("serving MCP over stdio", "home", g.home)
			if err := s.Run(ctx, &sdk.StdioTransport{}); err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		},
	}
	serve.Flags().StringVar(&addr, "http", "", "serve streamable HTTP at http://ADDR/mcp instead of stdio (e.g. 127.0.0.1:8765)")
	serve.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback --http address (no authentication: put your own in front)")
	serve.Flags().BoolVar(&debug, "debug", false, "log every tool call and the MCP session")
	cmd.AddCommand(serve)
	return cmd
}
