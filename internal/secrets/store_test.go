package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/errdefs"
)

const testValue = "hs-5f1e0c9a7b3d"

func TestStoreModesAndNoValueOutsideValueFile(t *testing.T) {
	home := t.TempDir()
	s := Open(home)
	// A directory made wider beforehand is narrowed.
	os.MkdirAll(s.Dir(), 0o755)
	m, err := s.Set("API_KEY", []byte(testValue), SetOptions{Hosts: []string{"API.example.com", "127.0.0.1:8443"}, Headers: []string{"authorization"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Bytes != len(testValue) || m.Hosts[0] != "api.example.com" || m.Headers[0] != "Authorization" {
		t.Fatalf("meta %+v", m)
	}
	if st, _ := os.Stat(s.Dir()); st.Mode().Perm() != 0o700 {
		t.Fatalf("store directory mode %o, want 700", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(s.Dir())
	if len(ents) != 2 {
		t.Fatalf("store holds %d files, want 2 (value, metadata)", len(ents))
	}
	for _, e := range ents {
		p := filepath.Join(s.Dir(), e.Name())
		st, _ := os.Stat(p)
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %o, want 600", e.Name(), st.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		if has := bytes.Contains(b, []byte(testValue)); has != strings.HasSuffix(e.Name(), ".value") {
			t.Fatalf("%s: holds the value: %v", e.Name(), has)
		}
	}
	v, _, err := s.Get("API_KEY")
	if err != nil || string(v) != testValue {
		t.Fatalf("get: %q %v", v, err)
	}
	l, err := s.List()
	if err != nil || len(l) != 1 || l[0].Name != "API_KEY" {
		t.Fatalf("list %+v %v", l, err)
	}
	b, _ := json.Marshal(l)
	if bytes.Contains(b, []byte(testValue)) {
		t.Fatal("list holds the value")
	}
	// Replacing keeps the creation time.
	m2, err := s.Set("API_KEY", []byte(testValue+"x"), SetOptions{})
	if err != nil || !m2.CreatedAt.Equal(m.CreatedAt) || m2.Bytes != len(testValue)+1 {
		t.Fatalf("replace: %+v %v", m2, err)
	}
	if _, err := s.Remove("API_KEY"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(s.Dir()); len(ents) != 0 {
		t.Fatalf("remove left %d files", len(ents))
	}
	if _, err := s.Remove("API_KEY"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
}

func TestStoreBadInput(t *testing.T) {
	s := Open(t.TempDir())
	big := bytes.Repeat([]byte("v"), MaxValue+1)
	for _, tc := range []struct {
		name  string
		value []byte
		o     SetOptions
		kind  error
		arg   string
	}{
		{"OK_NAME", nil, SetOptions{}, errdefs.ErrInvalidArgument, "value"},
		{"OK_NAME", []byte("abc"), SetOptions{}, errdefs.ErrInvalidArgument, "value"},
		{"OK_NAME", big, SetOptions{}, errdefs.ErrInvalidArgument, "value"},
		{"1BAD", []byte(testValue), SetOptions{}, errdefs.ErrInvalidArgument, "name"},
		{"bad-name", []byte(testValue), SetOptions{}, errdefs.ErrInvalidArgument, "name"},
		{"../x", []byte(testValue), SetOptions{}, errdefs.ErrInvalidArgument, "name"},
		{"OK_NAME", []byte(testValue), SetOptions{Hosts: []string{"*"}}, errdefs.ErrInvalidArgument, "hosts"},
		{"OK_NAME", []byte(testValue), SetOptions{Hosts: []string{"http://x/"}}, errdefs.ErrInvalidArgument, "hosts"},
		{"OK_NAME", []byte(testValue), SetOptions{Headers: []string{"Bad Header"}}, errdefs.ErrInvalidArgument, "headers"},
	} {
		_, err := s.Set(tc.name, tc.value, tc.o)
		if !errors.Is(err, tc.kind) || errdefs.ArgOf(err) != tc.arg {
			t.Errorf("set %q (%d bytes) %+v: %v (arg %q), want %v on %s", tc.name, len(tc.value), tc.o, err, errdefs.ArgOf(err), tc.kind, tc.arg)
		}
		if err != nil && len(tc.value) >= MinValue && strings.Contains(err.Error(), string(tc.value[:MinValue])) && len(tc.value) < 100 {
			t.Errorf("error holds the value: %v", err)
		}
	}
	if _, _, err := s.Get("NOPE"); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "NOPE") {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := os.Stat(s.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("failed sets created the store")
	}
}
