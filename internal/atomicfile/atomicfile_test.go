package atomicfile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.json")
	for _, v := range []int{1, 2} {
		if err := WriteJSON(p, map[string]int{"v": v}, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var got map[string]int
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &got); err != nil || got["v"] != 2 {
		t.Fatalf("%s %v", b, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if err := WriteJSON(filepath.Join(t.TempDir(), "no", "dir", "x"), 1, 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}
