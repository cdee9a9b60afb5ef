package cli

import (
	"context"
	"fmt"
	"github.com/hearthvm/hearth/internal/netstack"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/backend"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/hearthvm/hearth/internal/image"
	"github.com/hearthvm/hearth/internal/initrd"
	"github.com/hearthvm/hearth/internal/version"
	"github.com/hearthvm/hearth/internal/vmm/qemu"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newDoctorCmd) }

// check is one doctor line.
type check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, warn, fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// doctorReport is `hearth doctor --json`.
type doctorReport struct {
	Version  string         `json:"version"`
	Contract string         `json:"contract_version"`
	Home     string         `json:"home"`
	Checks   []check        `json:"checks"`
	Backend  backend.Choice `json:"backend"`
	OK       bool           `json:"ok"`
}

func newDoctorCmd(g *globals) *cobra.Command {
	var requested string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this host and say which VMM backend will be used and why",
		Long: `Check what hearth needs on this host — a usable KVM (by a real probe boot, since
/dev/kvm can exist yet hang guests), QEMU, Firecracker, the guest image, disk space,
the image-build prerequisites and the guest agent — each with ok, warn or fail and
the fix, then say which backend 'auto' picks and why. Exits 1 if any check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := runDoctor(cmd.Context(), g.home, requested)
			if g.json {
				if err := g.printJSON(r); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(g.stdout, "hearth %s (contract %s), home %s\n\n", r.Version, r.Contract, r.Home)
				marks := map[string]string{"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
				for _, c := range r.Checks {
					fmt.Fprintf(g.stdout, "[%s] %-18s %s\n", marks[c.Status], c.Name, c.Detail)
					if c.Fix != "" && c.Status != "ok" {
						fmt.Fprintf(g.stdout, "       %-18s fix: %s\n", "", c.Fix)
					}
				}
				if r.Backend.Name != "" {
					fmt.Fprintf(g.stdout, "\nbackend: %s (%s)\n", r.Backend.Name, r.Backend.Reason)
				} else {
					fmt.Fprintf(g.stdout, "\nbackend: none usable (%s)\n", r.Backend.Reason)
				}
			}
			if !r.OK {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&requested, "backend", "", "check this backend instead of auto")
	return cmd
}

func runDoctor(ctx context.Context, root, requested string) *doctorReport {
	info := version.Get(api.ContractVersion)
	r := &doctorReport{Version: info.Version, Contract: info.Contract, Home: root, OK: true}
	add := func(c check) {
		if c.Status == "fail" {
			r.OK = false
		}
		r.Checks = append(r.Checks, c)
	}
	cache := home.Cache(root)
	// KVM.
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		add(check{Name: "kvm", Status: "warn", Detail: "/dev/kvm not usable: " + err.Error(),
			Fix: "enable virtualisation, load kvm_intel/kvm_amd, or `setfacl -m u:$USER:rw /dev/kvm`; without it QEMU uses slow software emulation and Firecracker cannot run"})
	} else {
		f.Close()
		img, err := (&image.Store{Root: root}).Get(image.DefaultImage)
		if err != nil {
			add(check{Name: "kvm", Status: "warn", Detail: "/dev/kvm opens; probe boot needs the debian-12 image", Fix: "hearth image build debian-12"})
		} else {
			pr := qemu.New(qemu.Options{CacheDir: cache}).ProbeDetail(ctx, img.Kernel)
			st := "ok"
			if pr.Accel != qemu.AccelKVM {
				st = "warn"
			}
			add(check{Name: "kvm", Status: st, Detail: pr.Reason, Fix: "a host whose KVM runs normal guests (bare metal, or nested virtualisation that works); meanwhile QEMU uses software emulation"})
		}
	}
	// QEMU.
	q := qemu.New(qemu.Options{CacheDir: cache})
	if err := q.Check(ctx); err != nil {
		add(check{Name: "qemu", Status: "warn", Detail: err.Error(), Fix: "apt-get install qemu-system-x86"})
	} else {
		v, _ := q.Version(ctx)
		add(check{Name: "qemu", Status: "ok", Detail: v})
	}
	// Guest network.
	if st, detail, fix := netstack.Check(ctx, ""); true {
		add(check{Name: "network", Status: st, Detail: detail, Fix: fix})
	}
	// Firecracker.
	fc, _ := backend.New(backend.Config{CacheDir: cache}, backend.Firecracker, false)
	if err := fc.Check(ctx); err != nil {
		add(check{Name: "firecracker", Status: "warn", Detail: err.Error(), Fix: "install firecracker v1.16 on PATH (or set HEARTH_FIRECRACKER) on a host with working KVM"})
	} else {
		add(check{Name: "firecracker", Status: "ok", Detail: "firecracker found and /dev/kvm usable"})
	}
	// Image.
	if img, err := (&image.Store{Root: root}).Get(image.DefaultImage); err != nil {
		add(check{Name: "image", Status: "fail", Detail: err.Error(), Fix: "hearth image build debian-12"})
	} else {
		add(check{Name: "image", Status: "ok", Detail: fmt.Sprintf("%s: kernel %s, root fs %s", img.Name, img.KernelVersion, humanBytes(img.RootFSSize))})
	}
	// Agent.
	if p, err := initrd.FindAgent(); err != nil {
		add(check{Name: "agent", Status: "fail", Detail: err.Error(), Fix: "make build"})
	} else {
		add(check{Name: "agent", Status: "ok", Detail: p})
	}
	// Disk space.
	os.MkdirAll(root, 0o700)
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(root, &sfs); err != nil {
		add(check{Name: "disk", Status: "warn", Detail: err.Error()})
	} else {
		free := int64(sfs.Bavail) * int64(sfs.Bsize)
		st, fix := "ok", ""
		switch {
		case free < 2<<30:
			st, fix = "fail", "free space under "+filepath.Clean(root)+" (an image build needs ~3 GiB)"
		case free < 10<<30:
			st, fix = "warn", "free space under "+filepath.Clean(root)+"; workspaces' disks grow as they are used"
		}
		add(check{Name: "disk", Status: st, Detail: fmt.Sprintf("%s free under %s", humanBytes(free), root), Fix: fix})
	}
	// Image-build prerequisites.
	for _, p := range image.Prereqs() {
		st := p.Status
		if st == "fail" {
			if _, err := (&image.Store{Root: root}).Get(image.DefaultImage); err == nil {
				st = "warn" // only needed to build another image
			}
		}
		add(check{Name: "build: " + p.Name, Status: st, Detail: p.Detail, Fix: p.Fix})
	}
	ch, err := backend.Resolve(ctx, backend.Config{CacheDir: cache}, requested)
	if err != nil {
		r.OK = false
		r.Backend = backend.Choice{Reason: err.Error()}
	} else {
		r.Backend = ch
	}
	return r
}
