package firecracker

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/vmm"
)

// TestSnapshotRequestsGolden: a memory save is PATCH /vm Paused, PUT
// /snapshot/create (full, state and memory paths), PATCH /vm Resumed; a
// restore is one PUT /snapshot/load on a fresh process, with the memory
// file as a File backend, resume_vm, and this VM's vsock socket.
func TestSnapshotRequestsGolden(t *testing.T) {
	type call struct{ method, path, golden string }
	tests := []struct {
		name  string
		run   func(ctx context.Context, m *Machine, c *Client, spec vmm.Spec) error
		calls []call
	}{
		{
			name: "save",
			run: func(ctx context.Context, m *Machine, c *Client, spec vmm.Spec) error {
				if err := m.Pause(ctx); err != nil {
					return err
				}
				if err := m.SaveState(ctx, filepath.Join(spec.Dir, "snap/state"), filepath.Join(spec.Dir, "snap/memory.ram"), false); err != nil {
					return err
				}
				return m.Resume(ctx)
			},
			calls: []call{
				{"PATCH", "/vm", "vm-paused.json"},
				{"PUT", "/snapshot/create", "snapshot-create.json"},
				{"PATCH", "/vm", "vm-resumed.json"},
			},
		},
		{
			name: "load",
			run: func(ctx context.Context, m *Machine, c *Client, spec vmm.Spec) error {
				spec.MemoryFile = filepath.Join(spec.Dir, "memory.ram")
				spec.Restore = &vmm.Restore{StateFile: filepath.Join(spec.Dir, "snap/state")}
				return c.LoadSnapshot(ctx, LoadFor(spec, filepath.Join(spec.Dir, VsockSocketName)))
			},
			calls: []call{{"PUT", "/snapshot/load", "snapshot-load.json"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fake, c := newFakeAPI(t, dir)
			spec := testSpec(dir)
			m := &Machine{client: c, spec: spec, done: make(chan struct{}), version: fakeVersion}
			if err := tt.run(context.Background(), m, c, spec); err != nil {
				t.Fatal(err)
			}
			reqs := fake.requests()
			if len(reqs) != len(tt.calls) {
				t.Fatalf("got %d requests %v, want %d", len(reqs), reqs, len(tt.calls))
			}
			for i, want := range tt.calls {
				got := reqs[i]
				if got.Method != want.method || got.Path != want.path {
					t.Fatalf("request %d: %s %s, want %s %s", i, got.Method, got.Path, want.method, want.path)
				}
				checkGolden(t, want.golden, got.Body, dir)
			}
		})
	}
}

// TestSnapshotCreateFault: Firecracker refusing a snapshot (the VM not
// paused, say) reaches the caller with its message.
func TestSnapshotCreateFault(t *testing.T) {
	dir := t.TempDir()
	fake, c := newFakeAPI(t, dir)
	fake.setFault("PUT /snapshot/create", "Cannot create snapshot: the microVM is not paused")
	m := &Machine{client: c, spec: testSpec(dir), done: make(chan struct{})}
	err := m.SaveState(context.Background(), filepath.Join(dir, "state"), filepath.Join(dir, "mem"), false)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !strings.Contains(err.Error(), "not paused") {
		t.Fatalf("got %v, want the API's fault", err)
	}
}

// TestCompat: the save records the Firecracker version and machine size.
func TestCompat(t *testing.T) {
	m := &Machine{spec: testSpec(t.TempDir()), version: fakeVersion}
	c, err := m.Compat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend != Name || c.Version != fakeVersion || c.Accel != "kvm" || c.CPUs != 2 || c.MemoryMiB != 512 || !strings.HasPrefix(c.CPUModel, "host:") {
		t.Fatalf("compat %+v", c)
	}
}
