// Package backend chooses and builds the VMM backend: `firecracker` where a
// firecracker binary and a usable KVM exist, `qemu` (microvm; KVM or
// software emulation) otherwise. `auto` makes that choice and says why.
package backend

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/vmm"
	"github.com/hearthvm/hearth/internal/vmm/firecracker"
	"github.com/hearthvm/hearth/internal/vmm/qemu"
)

// Names of the backends.
const (
	Auto        = "auto"
	QEMU        = "qemu"
	Firecracker = "firecracker"
)

// Config says how to build backends.
type Config struct {
	// CacheDir holds probe results.
	CacheDir string
	Log      *slog.Logger
}

// Requested returns the backend asked for: name, else $HEARTH_BACKEND,
// else auto.
func Requested(name string) string {
	if name == "" {
		name = os.Getenv("HEARTH_BACKEND")
	}
	if name == "" {
		name = Auto
	}
	return name
}

// New builds the named backend ("qemu" or "firecracker").
func New(cfg Config, name string, killWithParent bool) (vmm.Backend, error) {
	switch name {
	case QEMU:
		return qemu.New(qemu.Options{CacheDir: cfg.CacheDir, KillWithParent: killWithParent, Log: cfg.Log, Accel: qemu.Accel(os.Getenv("HEARTH_QEMU_ACCEL"))}), nil
	case Firecracker:
		return firecracker.New(firecracker.Options{KillWithParent: killWithParent, Logger: cfg.Log}), nil
	}
	return nil, fmt.Errorf("unknown backend %q: use auto, qemu or firecracker: %w", name, errdefs.ErrInvalidArgument)
}

// Choice is the outcome of Resolve.
type Choice struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Resolve turns a requested name into a backend name. For auto it picks
// firecracker when its checks pass, else qemu when QEMU is usable.
func Resolve(ctx context.Context, cfg Config, requested string) (Choice, error) {
	requested = Requested(requested)
	switch requested {
	case QEMU, Firecracker:
		b, err := New(cfg, requested, false)
		if err != nil {
			return Choice{}, err
		}
		if err := b.Check(ctx); err != nil {
			return Choice{}, fmt.Errorf("backend %s cannot run here: %w: %w", requested, err, errdefs.ErrUnavailable)
		}
		return Choice{Name: requested, Reason: "requested"}, nil
	case Auto:
	default:
		return Choice{}, fmt.Errorf("unknown backend %q: use auto, qemu or firecracker: %w", requested, errdefs.ErrInvalidArgument)
	}
	var why []string
	fc, _ := New(cfg, Firecracker, false)
	if err := fc.Check(ctx); err != nil {
		why = append(why, "firecracker unusable: "+err.Error())
	} else if !kvmBoots(ctx, cfg) {
		why = append(why, "firecracker found but the KVM probe boot failed (KVM cannot run a normal guest here)")
	} else {
		return Choice{Name: Firecracker, Reason: "firecracker binary found and KVM works"}, nil
	}
	q, _ := New(cfg, QEMU, false)
	if err := q.Check(ctx); err != nil {
		why = append(why, "qemu unusable: "+err.Error())
		return Choice{}, fmt.Errorf("no usable VMM: %s: %w", strings.Join(why, "; "), errdefs.ErrUnavailable)
	}
	return Choice{Name: QEMU, Reason: strings.Join(why, "; ") + "; using qemu"}, nil
}

// kvmBoots reports whether the cached KVM probe (made by the qemu backend
// with the default image's kernel) said KVM boots guests. Without a probe
// result it trusts /dev/kvm.
func kvmBoots(ctx context.Context, cfg Config) bool {
	r, ok := qemu.CachedProbe(cfg.CacheDir)
	if !ok {
		return true
	}
	return r.Accel == qemu.AccelKVM
}

// Factory returns a function that resolves and builds backends, for the
// workspace engine and supervisors.
func Factory(cfg Config) func(ctx context.Context, name string, killWithParent bool) (vmm.Backend, error) {
	return func(ctx context.Context, name string, killWithParent bool) (vmm.Backend, error) {
		ch, err := Resolve(ctx, cfg, name)
		if err != nil {
			return nil, err
		}
		return New(cfg, ch.Name, killWithParent)
	}
}
