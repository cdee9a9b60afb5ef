package mcp

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hearthvm/hearth/api"
)

// Bounds on what one MCP result carries, so a result fits in a model's
// context. They never change bytes: a stream keeps its last StreamKeep
// bytes exactly, with *_offset saying where they start and *_truncated
// set; the rest is reachable with command_read.
const (
	// StreamKeep is the bytes of each command output stream an MCP result
	// keeps (its end).
	StreamKeep = 32 << 10
)

// boundExec keeps the last StreamKeep bytes of res's stdout and stderr (in
// place, on UTF-8 boundaries for text), setting *_offset and *_truncated.
func boundExec(res *api.ExecResult) {
	if res == nil {
		return
	}
	for _, st := range []struct {
		data      *string
		enc       string
		total     int64
		offset    *int64
		truncated *bool
	}{
		{&res.Stdout, res.StdoutEncoding, res.StdoutBytes, &res.StdoutOffset, &res.StdoutTruncated},
		{&res.Stderr, res.StderrEncoding, res.StderrBytes, &res.StderrOffset, &res.StderrTruncated},
	} {
		raw := []byte(*st.data)
		if st.enc == "base64" {
			b, err := base64.StdEncoding.DecodeString(*st.data)
			if err != nil {
				continue
			}
			raw = b
		}
		if len(raw) <= StreamKeep {
			continue
		}
		cut := len(raw) - StreamKeep
		if st.enc == "" {
			for cut < len(raw) && !utf8.RuneStart(raw[cut]) {
				cut++
			}
		}
		kept := raw[cut:]
		// The kept bytes start at this offset of the whole stream (the
		// engine's result holds the stream's start).
		*st.offset += int64(cut)
		*st.truncated = true
		if st.enc == "base64" {
			*st.data = base64.StdEncoding.EncodeToString(kept)
		} else {
			*st.data = string(kept)
		}
	}
}

// listShort joins up to five names and says how many more there are.
func listShort(names []string) string {
	if len(names) <= 5 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:5], ", "), len(names)-5)
}
