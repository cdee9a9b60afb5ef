package workspace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/hearthvm/hearth/internal/image"
	"github.com/hearthvm/hearth/internal/initrd"
	"github.com/hearthvm/hearth/internal/supervisor"
	"github.com/hearthvm/hearth/internal/vmm"
)

// RunOptions configure a throwaway VM.
type RunOptions struct {
	Image     string
	Backend   string
	CPUs      int
	MemoryMiB int
	Exec      ExecOptions
}

// Run boots a throwaway VM, runs one command in it, and removes the VM and
// every file it had — also when ctx is cancelled (Ctrl-C, SIGTERM). The VMM
// is tied to this process (it dies with it). Exec.Timeout bounds the
// command, not the boot.
func (m *Manager) Run(ctx context.Context, o RunOptions) (_ *api.ExecResult, err error) {
	if err := o.Exec.validate(); err != nil {
		return nil, err
	}
	if o.Image == "" {
		o.Image = image.DefaultImage
	}
	if o.CPUs == 0 {
		o.CPUs = DefaultCPUs
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 512
	}
	if err := ValidateMachine(o.CPUs, o.MemoryMiB); err != nil {
		return nil, err
	}
	img, err := (&image.Store{Root: m.root}).Get(o.Image)
	if err != nil {
		return nil, err
	}
	backend, err := m.backends(ctx, o.Backend, true)
	if err != nil {
		return nil, err
	}
	agent, err := initrd.FindAgent()
	if err != nil {
		return nil, err
	}
	rd, err := initrd.Ensure(home.Cache(m.root), agent)
	if err != nil {
		return nil, err
	}
	var b [4]byte
	rand.Read(b[:])
	id := "run-" + hex.EncodeToString(b[:])
	dir := filepath.Join(home.Runs(m.root), id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	spec := vmm.Spec{
		ID: id, Dir: dir, Kernel: img.Kernel, Initrd: rd, RootFS: img.RootFS,
		CPUs: o.CPUs, MemoryMiB: o.MemoryMiB,
		KernelArgs: []string{"hearth.root=/dev/vda", "hearth.id=" + id, "hearth.hostname=hearth-run"},
		ConsoleLog: filepath.Join(dir, "console.log"),
	}
	mach, _, err := supervisor.Boot(ctx, backend, spec, m.bootTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted while booting: %w", context.Cause(ctx))
		}
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	// The VM is throwaway: its writable layer is guest memory, so it is
	// killed rather than shut down.
	defer mach.Kill()
	c := &guest.Client{Socket: mach.AgentSocket()}
	capOut, capErr := &capture{limit: 0}, &capture{limit: 0}
	if o.Exec.Capture {
		capOut.limit, capErr.limit = api.OutputLimit, api.OutputLimit
	}
	cOut, cErr := &counter{w: teeOpt(capOut, o.Exec.Stdout)}, &counter{w: teeOpt(capErr, o.Exec.Stderr)}
	start := time.Now()
	r, err := c.Exec(ctx, o.Exec.request(), guest.ExecIO{Stdin: o.Exec.Stdin, Stdout: cOut, Stderr: cErr})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
		select {
		case <-mach.Done():
			return nil, fmt.Errorf("the VM died while the command ran (%s): %w", mach.ExitReason(), errdefs.ErrUnavailable)
		default:
		}
		return nil, err
	}
	res := fillResult(r, capOut, capErr)
	res.Status = api.StatusFinished
	if res.DurationMS == 0 {
		res.DurationMS = time.Since(start).Milliseconds()
	}
	return res, nil
}

// teeOpt writes to c and, when set, to w.
func teeOpt(c *capture, w io.Writer) io.Writer {
	if w == nil {
		return c
	}
	return io.MultiWriter(c, w)
}
