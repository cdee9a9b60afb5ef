package backend

import (
	"context"
	"errors"
	"testing"

	"github.com/hearthvm/hearth/internal/errdefs"
)

func TestRequested(t *testing.T) {
	t.Setenv("HEARTH_BACKEND", "")
	if Requested("") != Auto || Requested("qemu") != QEMU {
		t.Fatal("defaults")
	}
	t.Setenv("HEARTH_BACKEND", "firecracker")
	if Requested("") != Firecracker || Requested("qemu") != QEMU {
		t.Fatal("HEARTH_BACKEND is a default, not an override")
	}
}

func TestUnknownBackend(t *testing.T) {
	if _, err := Resolve(context.Background(), Config{CacheDir: t.TempDir()}, "vmware"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("unknown backend: %v", err)
	}
	if _, err := New(Config{}, "vmware", false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("New unknown: %v", err)
	}
}

// TestAutoPicksQEMUWithoutFirecracker: with no firecracker binary, auto
// falls back to qemu and says why.
func TestAutoPicksQEMUWithoutFirecracker(t *testing.T) {
	t.Setenv("HEARTH_FIRECRACKER", "/nonexistent/firecracker")
	t.Setenv("PATH", "/usr/bin:/bin")
	ch, err := Resolve(context.Background(), Config{CacheDir: t.TempDir()}, Auto)
	if err != nil {
		t.Fatalf("auto found no backend (is qemu-system-x86 installed? scripts/setup-host.sh installs it): %v", err)
	}
	if ch.Name != QEMU || ch.Reason == "" {
		t.Fatalf("auto chose %+v", ch)
	}
}
