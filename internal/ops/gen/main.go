// Command gen rewrites what is derived from the operation table for
// documents: the table in docs/public-contract.md and
// docs/operations.json. Run from the repository root.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/hearthvm/hearth/internal/ops"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	const path = "docs/public-contract.md"
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, ops.BeginMarker), strings.Index(s, ops.EndMarker)
	if i < 0 || j < i {
		return fmt.Errorf("markers not found in %s", path)
	}
	s = s[:i+len(ops.BeginMarker)] + "\n" + ops.Table() + s[j:]
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		return err
	}
	return os.WriteFile("docs/operations.json", ops.Describe(), 0o644)
}
