package cli

import (
	"fmt"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/version"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newVersionCmd) }

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print hearth's version (--json: also the contract and Go versions, and the commit)",
		Long: `Print hearth's version. With --json: version, contract_version (the public
contract's version, docs/public-contract.md), go_version and, when known, commit.
'hearth --version' prints the same short line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			info := version.Get(api.ContractVersion)
			if g.json {
				return g.printJSON(info)
			}
			fmt.Fprintln(g.stdout, versionLine(info))
			return nil
		},
	}
}

// versionLine is the one line `hearth version` and `hearth --version` print.
func versionLine(info version.Info) string {
	s := "hearth " + info.Version + " (contract " + info.Contract + ", " + info.GoVersion
	if info.Commit != "" {
		s += ", commit " + info.Commit
	}
	return s + ")"
}
