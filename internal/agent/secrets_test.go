package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// TestSecretFiles checks the secrets operation against a plain directory
// (the tmpfs mount is replaced): files 0400, exactly the set sent, wiped
// and unmounted on request.
func TestSecretFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	mounted, mounts, unmounts := false, 0, 0
	old := secretFiles
	secretFiles = &secretDir{dir: dir,
		mount:   func(d string) error { mounts++; mounted = true; return os.MkdirAll(d, 0o755) },
		unmount: func(d string) error { unmounts++; mounted = false; return os.RemoveAll(d) },
		mounted: func(string) bool { return mounted }}
	t.Cleanup(func() { secretFiles = old })
	fakeTrust(t)
	c := testClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Nothing to write: nothing is mounted.
	if err := c.SetSecrets(ctx, nil, nil); err != nil || mounts != 0 {
		t.Fatalf("empty set: %v, %d mounts", err, mounts)
	}
	if err := c.SetSecrets(ctx, []guestproto.SecretFile{{Name: "A_KEY", Data: []byte("alpha-value")}, {Name: "B", Data: []byte("beta-value")}}, nil); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"A_KEY": "alpha-value", "B": "beta-value"} {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o400 {
			t.Fatalf("%s: %v mode %v", name, err, st.Mode())
		}
		if b, _ := os.ReadFile(p); string(b) != want {
			t.Fatalf("%s holds %q", name, b)
		}
	}
	// A new set replaces the old one: B goes, A_KEY changes.
	if err := c.SetSecrets(ctx, []guestproto.SecretFile{{Name: "A_KEY", Data: []byte("alpha-2")}}, nil); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "A_KEY" || mounts != 1 {
		t.Fatalf("after replace: %v, %d mounts", ents, mounts)
	}
	for _, bad := range []guestproto.SecretFile{{Name: "../x", Data: []byte("v")}, {Name: "a/b", Data: []byte("v")}} {
		if err := c.SetSecrets(ctx, []guestproto.SecretFile{bad}, nil); err == nil {
			t.Fatalf("name %q accepted", bad.Name)
		}
	}
	if err := c.UnmountSecrets(ctx); err != nil || unmounts != 1 {
		t.Fatalf("unmount: %v (%d)", err, unmounts)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory left after unmount: %v", err)
	}
}

func TestWipeFileZeroes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("value"), 0o400)
	// Hold it open: the bytes seen through the open file are zeros after a
	// wipe (the pages were overwritten, not just unlinked).
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wipeFile(p)
	b := make([]byte, 5)
	f.ReadAt(b, 0)
	if string(b) != "\x00\x00\x00\x00\x00" {
		t.Fatalf("after wipe the file holds %q", b)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("not removed")
	}
}

// fakeTrust points the broker CA's paths into a temporary directory.
func fakeTrust(t *testing.T) (caFile, bundle string) {
	t.Helper()
	d := t.TempDir()
	trustPaths.Lock()
	old := trustPaths.caFile
	oldBundle := trustPaths.bundle
	trustPaths.caFile, trustPaths.bundle = filepath.Join(d, "share", "hearth-broker.crt"), filepath.Join(d, "certs", "ca-certificates.crt")
	caFile, bundle = trustPaths.caFile, trustPaths.bundle
	trustPaths.Unlock()
	t.Cleanup(func() {
		trustPaths.Lock()
		trustPaths.caFile, trustPaths.bundle = old, oldBundle
		trustPaths.Unlock()
		brokerTrust.Store(false)
	})
	return caFile, bundle
}

// TestBrokerCA: the CA joins the bundle between its markers, replaces
// itself, leaves the rest alone, and sets the trust variables while it is
// installed.
func TestBrokerCA(t *testing.T) {
	caFile, bundle := fakeTrust(t)
	system := "-----BEGIN CERTIFICATE-----\nSYSTEM\n-----END CERTIFICATE-----\n"
	os.MkdirAll(filepath.Dir(bundle), 0o755)
	if err := os.WriteFile(bundle, []byte(system), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func() string { b, _ := os.ReadFile(bundle); return string(b) }
	hasTrust := func() bool { return envValue(defaultEnv(), "SSL_CERT_FILE") == guestproto.SystemBundle }
	steps := []struct {
		pem        string
		wantBundle string
		trust      bool
	}{
		{"CA-ONE\n", system + guestproto.BrokerCABegin + "\nCA-ONE\n" + guestproto.BrokerCAEnd + "\n", true},
		{"CA-ONE\n", system + guestproto.BrokerCABegin + "\nCA-ONE\n" + guestproto.BrokerCAEnd + "\n", true},
		{"CA-TWO", system + guestproto.BrokerCABegin + "\nCA-TWO\n" + guestproto.BrokerCAEnd + "\n", true},
		{"", system, false},
		{"", system, false},
	}
	for i, s := range steps {
		if err := setBrokerCA([]byte(s.pem)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := read(); got != s.wantBundle {
			t.Errorf("step %d: bundle %q, want %q", i, got, s.wantBundle)
		}
		if hasTrust() != s.trust {
			t.Errorf("step %d: trust env %v, want %v", i, hasTrust(), s.trust)
		}
		_, err := os.Stat(caFile)
		if (err == nil) != s.trust {
			t.Errorf("step %d: CA file present %v, want %v", i, err == nil, s.trust)
		}
	}
}
