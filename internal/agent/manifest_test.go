package agent

import (
	"encoding/json"
	"testing"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// TestManifestEncodingMatchesJSON: the hand encoder gives what
// encoding/json gives, for plain and awkward names.
func TestManifestEncodingMatchesJSON(t *testing.T) {
	for _, e := range []guestproto.ManifestEntry{
		{Path: "a/b.txt", Type: "file", Mode: 0o644, Size: 12, MtimeNS: 1700000000123456789, Inode: 42},
		{Path: "dir", Type: "dir", Mode: 0o755},
		{Path: "ln", Type: "symlink", Mode: 0o777, Size: 3, Target: "../\"x\"", MtimeNS: -1},
		{Path: "ünï\x01<&>\\", Type: "file", SHA256: "ab"},
	} {
		want, _ := json.Marshal(&e)
		got := appendManifestEntry(nil, &e)
		if string(got) != string(want)+"\n" {
			t.Errorf("got  %s\nwant %s", got, want)
		}
		var back guestproto.ManifestEntry
		if err := json.Unmarshal(got, &back); err != nil || back != e {
			t.Errorf("round trip: %+v %v", back, err)
		}
	}
}
