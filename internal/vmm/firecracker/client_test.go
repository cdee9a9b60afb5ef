package firecracker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/vmm"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// testSpec is a spec whose paths live in dir (the files need not exist
// for PlanFor).
func testSpec(dir string) vmm.Spec {
	return vmm.Spec{
		ID:         "ws/demo 1",
		Dir:        dir,
		Kernel:     filepath.Join(dir, "vmlinux"),
		Initrd:     filepath.Join(dir, "initrd.cpio"),
		RootFS:     filepath.Join(dir, "rootfs.ext4"),
		DataDisk:   filepath.Join(dir, "data.ext4"),
		CPUs:       2,
		MemoryMiB:  512,
		KernelArgs: []string{"hearth.agent=1", "quiet"},
		ConsoleLog: filepath.Join(dir, "console.log"),
	}
}

// checkGolden compares body, with dir replaced by $DIR, to testdata/name.
func checkGolden(t *testing.T, name string, body []byte, dir string) {
	t.Helper()
	body = bytes.ReplaceAll(body, []byte(dir), []byte("$DIR"))
	path := filepath.Join("testdata", name)
	if *update {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	var got, exp any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: request body %q: %v", name, body, err)
	}
	if err := json.Unmarshal(want, &exp); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("%s: request body\n%s\nwant\n%s", name, body, want)
	}
}

func TestPlanApplyGolden(t *testing.T) {
	type call struct{ method, path, golden string }
	tests := []struct {
		name  string
		edit  func(*vmm.Spec)
		calls []call
	}{
		{
			name: "with data disk",
			edit: func(*vmm.Spec) {},
			calls: []call{
				{"PUT", "/machine-config", "machine-config.json"},
				{"PUT", "/boot-source", "boot-source.json"},
				{"PUT", "/drives/rootfs", "drive-rootfs.json"},
				{"PUT", "/drives/data", "drive-data.json"},
				{"PUT", "/vsock", "vsock.json"},
			},
		},
		{
			name: "named data disks after the data disk",
			edit: func(s *vmm.Spec) {
				s.ExtraDisks = []vmm.Disk{{Path: filepath.Join(s.Dir, "disks/cache/disk.ext4")}, {Path: filepath.Join(s.Dir, "disks/corpus/disk.ext4"), ReadOnly: true}}
			},
			calls: []call{
				{"PUT", "/machine-config", "machine-config.json"},
				{"PUT", "/boot-source", "boot-source.json"},
				{"PUT", "/drives/rootfs", "drive-rootfs.json"},
				{"PUT", "/drives/data", "drive-data.json"},
				{"PUT", "/drives/disk1", "drive-disk1.json"},
				{"PUT", "/drives/disk2", "drive-disk2-ro.json"},
				{"PUT", "/vsock", "vsock.json"},
			},
		},
		{
			name: "guest network on the namespace's TAP device",
			edit: func(s *vmm.Spec) { s.NetTap = TapName },
			calls: []call{
				{"PUT", "/machine-config", "machine-config.json"},
				{"PUT", "/boot-source", "boot-source.json"},
				{"PUT", "/drives/rootfs", "drive-rootfs.json"},
				{"PUT", "/drives/data", "drive-data.json"},
				{"PUT", "/vsock", "vsock.json"},
				{"PUT", "/network-interfaces/eth0", "network-interface.json"},
			},
		},
		{
			name: "no data disk, odd vcpus, no extra args",
			edit: func(s *vmm.Spec) { s.DataDisk = ""; s.CPUs = 3; s.KernelArgs = nil },
			calls: []call{
				{"PUT", "/machine-config", "machine-config-3cpu.json"},
				{"PUT", "/boot-source", "boot-source-noargs.json"},
				{"PUT", "/drives/rootfs", "drive-rootfs.json"},
				{"PUT", "/vsock", "vsock.json"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fake, c := newFakeAPI(t, dir)
			spec := testSpec(dir)
			tt.edit(&spec)
			if err := PlanFor(spec, filepath.Join(dir, VsockSocketName)).Apply(context.Background(), c); err != nil {
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

func TestClientFault(t *testing.T) {
	dir := t.TempDir()
	fake, c := newFakeAPI(t, dir)
	ctx := context.Background()
	tests := []struct {
		endpoint string
		call     func() error
	}{
		{"PUT /machine-config", func() error { return c.PutMachineConfig(ctx, MachineConfig{VCPUCount: 1, MemSizeMiB: 128}) }},
		{"PUT /boot-source", func() error { return c.PutBootSource(ctx, BootSource{KernelImagePath: "/k"}) }},
		{"PUT /drives/rootfs", func() error { return c.PutDrive(ctx, Drive{DriveID: "rootfs", PathOnHost: "/r"}) }},
		{"PUT /vsock", func() error { return c.PutVsock(ctx, Vsock{GuestCID: 3, UDSPath: "/v"}) }},
		{"PUT /logger", func() error { return c.PutLogger(ctx, Logger{LogPath: "/l"}) }},
		{"PUT /metrics", func() error { return c.PutMetrics(ctx, Metrics{MetricsPath: "/m"}) }},
		{"PUT /actions", func() error { return c.Action(ctx, ActionInstanceStart) }},
		{"PATCH /vm", func() error { return c.SetVMState(ctx, VMPaused) }},
		{"PUT /snapshot/create", func() error { return c.CreateSnapshot(ctx, SnapshotCreate{SnapshotPath: "/s", MemFilePath: "/m"}) }},
		{"PUT /snapshot/load", func() error {
			return c.LoadSnapshot(ctx, SnapshotLoad{SnapshotPath: "/s", MemBackend: &MemoryBackend{BackendType: "File", BackendPath: "/m"}})
		}},
		{"GET /", func() error { _, err := c.InstanceInfo(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			fault := "The requested operation is not supported after starting the microVM."
			fake.setFault(tt.endpoint, fault)
			defer fake.setFault(tt.endpoint, "")
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %T %v is not an *APIError", err, err)
			}
			if apiErr.Method+" "+apiErr.Path != tt.endpoint || apiErr.Status != 400 || apiErr.Fault != fault {
				t.Errorf("APIError %+v", apiErr)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.endpoint) || !strings.Contains(msg, fault) {
				t.Errorf("error %q does not name %q and the fault", msg, tt.endpoint)
			}
		})
	}
	// With no fault set, every call succeeds and GET / decodes.
	info, err := c.InstanceInfo(ctx)
	if err != nil || info.VMMVersion != fakeVersion || info.State != "Not started" {
		t.Fatalf("InstanceInfo = %+v, %v", info, err)
	}
}

func TestClientNonJSONErrorAndTimeout(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /boot-source", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "plain failure", http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // a wedged firecracker
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	c := NewClient(sock)
	defer c.Close()
	c.Timeout = 50 * time.Millisecond

	err = c.PutBootSource(context.Background(), BootSource{KernelImagePath: "/k"})
	if err == nil || !strings.Contains(err.Error(), "PUT /boot-source: 500") || !strings.Contains(err.Error(), "plain failure") {
		t.Errorf("non-JSON error: %v", err)
	}
	start := time.Now()
	_, err = c.InstanceInfo(context.Background())
	if err == nil || !strings.Contains(err.Error(), "GET /") || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("timeout error: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// A missing socket names the endpoint and the socket.
	c2 := NewClient(filepath.Join(dir, "missing.sock"))
	if err := c2.Action(context.Background(), ActionInstanceStart); err == nil || !strings.Contains(err.Error(), "PUT /actions") || !strings.Contains(err.Error(), "missing.sock") {
		t.Errorf("missing socket: %v", err)
	}
}

func TestPutDriveRejectsBadID(t *testing.T) {
	c := NewClient("/nonexistent")
	for _, id := range []string{"", "a/b", "a b", "x?y"} {
		if err := c.PutDrive(context.Background(), Drive{DriveID: id}); err == nil {
			t.Errorf("drive id %q accepted", id)
		}
	}
}
