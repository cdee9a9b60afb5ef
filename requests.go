package hearth

import "github.com/hearthvm/hearth/internal/ops"

// ParseSize parses sizes like 512M, 8G, 10GiB, 1T or plain bytes.
func ParseSize(s string) (int64, error) { return ops.ParseSize(s) }
