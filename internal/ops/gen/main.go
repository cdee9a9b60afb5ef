// Command gen rewrites the operation table in docs/public-contract.md from
// the registry in package ops. Run from the repository root.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/hearthvm/hearth/internal/ops"
)

func main() {
	const path = "docs/public-contract.md"
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := string(b)
	i, j := strings.Index(s, ops.BeginMarker), strings.Index(s, ops.EndMarker)
	if i < 0 || j < i {
		fmt.Fprintln(os.Stderr, "gen: markers not found in", path)
		os.Exit(1)
	}
	s = s[:i+len(ops.BeginMarker)] + "\n" + ops.Table() + s[j:]
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
