package cli

import (
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ops"
	"github.com/spf13/cobra"
)

// flagFor returns the CLI flag (with dashes) that stands for the request
// argument arg of the command at path ("workspace create"), or "".
func flagFor(path, arg string) string {
	for _, o := range ops.All {
		if o.CLI != path {
			continue
		}
		for _, a := range o.Args() {
			if a.Name == arg && a.CLI != "arg" && a.CLI != "-" {
				return "--" + a.CLI
			}
		}
	}
	return ""
}

// cliMessage renders err for people at a terminal: an argument error names
// the command's flag (--memory) where the engine named the argument
// (memory_mib).
func cliMessage(cmd *cobra.Command, err error) string {
	msg := err.Error()
	var ae *errdefs.ArgError
	if cmd == nil || !errors.As(err, &ae) {
		return msg
	}
	path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	if f := flagFor(path, ae.Arg); f != "" {
		return strings.Replace(msg, ae.Arg+": ", f+": ", 1)
	}
	return msg
}

// writeJSONError writes the contract's one JSON error shape.
func writeJSONError(w io.Writer, err error) {
	var b api.ErrorBody
	b.Error.Kind = string(errdefs.Classify(err))
	b.Error.Message = err.Error()
	b.Error.Arg = errdefs.ArgOf(err)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(b)
}
