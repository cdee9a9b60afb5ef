package firecracker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// DefaultCallTimeout bounds one API call when the Client has no Timeout of
// its own. Firecracker answers configuration calls in well under a
// millisecond; the bound only matters when the process is wedged.
const DefaultCallTimeout = 5 * time.Second

// DefaultSnapshotTimeout bounds snapshot create and load, which write or map
// all of guest memory.
const DefaultSnapshotTimeout = 2 * time.Minute

// Client is a small typed client for the Firecracker API, spoken as
// HTTP/1.1 + JSON over the Unix socket given to firecracker --api-sock.
// It covers the calls hearth uses; the types follow the JSON names of
// Firecracker's OpenAPI document (src/firecracker/swagger/firecracker.yaml).
//
// A Client is safe for concurrent use, although Firecracker serves one
// request at a time.
type Client struct {
	socket string
	hc     *http.Client
	// Timeout bounds every call except snapshot create and load; zero means
	// DefaultCallTimeout.
	Timeout time.Duration
	// SnapshotTimeout bounds snapshot create and load; zero means
	// DefaultSnapshotTimeout.
	SnapshotTimeout time.Duration
}

// NewClient returns a client for the API socket at path. It does not
// connect until the first call.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression:  true,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr}}
}

// Socket is the API socket path.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// APIError is a call Firecracker refused, or that did not complete.
type APIError struct {
	Method string // "PUT"
	Path   string // "/drives/rootfs"
	Status int    // HTTP status; 0 when no response arrived
	// Fault is Firecracker's fault_message, or the raw body when the body
	// was not the documented Error object.
	Fault string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("firecracker API %s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Fault)
}

// InstanceInfo is the answer to GET / (swagger InstanceInfo).
type InstanceInfo struct {
	ID         string `json:"id"`
	State      string `json:"state"` // "Not started", "Running" or "Paused"
	VMMVersion string `json:"vmm_version"`
	AppName    string `json:"app_name"`
}

// MachineConfig is PUT /machine-config (swagger MachineConfiguration).
type MachineConfig struct {
	VCPUCount  int `json:"vcpu_count"`
	MemSizeMiB int `json:"mem_size_mib"`
	// SMT enables simultaneous multithreading (x86 only). With SMT on,
	// Firecracker accepts only 1 or an even vcpu_count.
	SMT bool `json:"smt,omitempty"`
	// TrackDirtyPages enables KVM dirty-page tracking, needed for diff
	// snapshots.
	TrackDirtyPages bool `json:"track_dirty_pages,omitempty"`
	// HugePages is "None" (default) or "2M".
	HugePages string `json:"huge_pages,omitempty"`
}

// BootSource is PUT /boot-source (swagger BootSource).
type BootSource struct {
	KernelImagePath string `json:"kernel_image_path"`
	BootArgs        string `json:"boot_args,omitempty"`
	InitrdPath      string `json:"initrd_path,omitempty"`
}

// Drive cache types (swagger Drive.cache_type).
const (
	// CacheUnsafe is Firecracker's default: no virtio flush is advertised,
	// so guest fsyncs never reach host storage.
	CacheUnsafe = "Unsafe"
	// CacheWriteback advertises flush; a guest flush fsyncs the backing file.
	CacheWriteback = "Writeback"
)

// Drive is PUT /drives/{drive_id} (swagger Drive), virtio-block only.
type Drive struct {
	DriveID      string `json:"drive_id"`
	PathOnHost   string `json:"path_on_host"`
	IsRootDevice bool   `json:"is_root_device"`
	IsReadOnly   bool   `json:"is_read_only"`
	PartUUID     string `json:"partuuid,omitempty"`
	CacheType    string `json:"cache_type,omitempty"` // CacheUnsafe (default) or CacheWriteback
	IOEngine     string `json:"io_engine,omitempty"`  // "Sync" (default) or "Async"
}

// Vsock is PUT /vsock (swagger Vsock).
type Vsock struct {
	GuestCID uint32 `json:"guest_cid"`
	UDSPath  string `json:"uds_path"`
}

// Logger is PUT /logger (swagger Logger). It may be set only once.
type Logger struct {
	LogPath       string `json:"log_path,omitempty"`
	Level         string `json:"level,omitempty"` // Error, Warning, Info, Debug, Trace, Off
	ShowLevel     bool   `json:"show_level,omitempty"`
	ShowLogOrigin bool   `json:"show_log_origin,omitempty"`
	Module        string `json:"module,omitempty"`
}

// Metrics is PUT /metrics (swagger Metrics).
type Metrics struct {
	MetricsPath string `json:"metrics_path"`
}

// Action types for PUT /actions (swagger InstanceActionInfo).
const (
	ActionInstanceStart  = "InstanceStart"
	ActionSendCtrlAltDel = "SendCtrlAltDel"
	ActionFlushMetrics   = "FlushMetrics"
)

// InstanceAction is PUT /actions.
type InstanceAction struct {
	ActionType string `json:"action_type"`
}

// VM states for PATCH /vm (swagger Vm).
const (
	VMPaused  = "Paused"
	VMResumed = "Resumed"
)

// VM is PATCH /vm.
type VM struct {
	State string `json:"state"`
}

// SnapshotCreate is PUT /snapshot/create (swagger SnapshotCreateParams).
// The VM must be paused.
type SnapshotCreate struct {
	SnapshotType string `json:"snapshot_type,omitempty"` // "Full" (default) or "Diff"
	SnapshotPath string `json:"snapshot_path"`
	MemFilePath  string `json:"mem_file_path"`
}

// MemoryBackend says where a snapshot's guest memory comes from.
type MemoryBackend struct {
	BackendType string `json:"backend_type"` // "File" or "Uffd"
	BackendPath string `json:"backend_path"`
}

// VsockOverride changes the vsock Unix socket path on restore.
type VsockOverride struct {
	UDSPath string `json:"uds_path"`
}

// SnapshotLoad is PUT /snapshot/load (swagger SnapshotLoadParams). It is
// accepted only by a fresh process, before any boot-resource call.
type SnapshotLoad struct {
	SnapshotPath    string         `json:"snapshot_path"`
	MemBackend      *MemoryBackend `json:"mem_backend,omitempty"`
	TrackDirtyPages bool           `json:"track_dirty_pages,omitempty"`
	ResumeVM        bool           `json:"resume_vm,omitempty"`
	VsockOverride   *VsockOverride `json:"vsock_override,omitempty"`
}

// InstanceInfo calls GET /.
func (c *Client) InstanceInfo(ctx context.Context) (InstanceInfo, error) {
	var info InstanceInfo
	err := c.do(ctx, http.MethodGet, "/", nil, &info)
	return info, err
}

// PutMachineConfig calls PUT /machine-config (pre-boot only).
func (c *Client) PutMachineConfig(ctx context.Context, mc MachineConfig) error {
	return c.do(ctx, http.MethodPut, "/machine-config", mc, nil)
}

// PutBootSource calls PUT /boot-source (pre-boot only).
func (c *Client) PutBootSource(ctx context.Context, bs BootSource) error {
	return c.do(ctx, http.MethodPut, "/boot-source", bs, nil)
}

// PutDrive calls PUT /drives/{d.DriveID} (pre-boot only). Drives appear in
// the guest in the order they are added: the first is /dev/vda.
func (c *Client) PutDrive(ctx context.Context, d Drive) error {
	if d.DriveID == "" || strings.ContainsAny(d.DriveID, "/?#% ") {
		return fmt.Errorf("firecracker API PUT /drives: bad drive id %q", d.DriveID)
	}
	return c.do(ctx, http.MethodPut, "/drives/"+d.DriveID, d, nil)
}

// PutVsock calls PUT /vsock (pre-boot only).
func (c *Client) PutVsock(ctx context.Context, v Vsock) error {
	return c.do(ctx, http.MethodPut, "/vsock", v, nil)
}

// PutLogger calls PUT /logger (pre-boot only, once).
func (c *Client) PutLogger(ctx context.Context, l Logger) error {
	return c.do(ctx, http.MethodPut, "/logger", l, nil)
}

// PutMetrics calls PUT /metrics (pre-boot only).
func (c *Client) PutMetrics(ctx context.Context, m Metrics) error {
	return c.do(ctx, http.MethodPut, "/metrics", m, nil)
}

// Action calls PUT /actions with one of the Action* types.
func (c *Client) Action(ctx context.Context, actionType string) error {
	return c.do(ctx, http.MethodPut, "/actions", InstanceAction{ActionType: actionType}, nil)
}

// SetVMState calls PATCH /vm with VMPaused or VMResumed (post-boot only).
func (c *Client) SetVMState(ctx context.Context, state string) error {
	return c.do(ctx, http.MethodPatch, "/vm", VM{State: state}, nil)
}

// CreateSnapshot calls PUT /snapshot/create (the VM must be paused).
func (c *Client) CreateSnapshot(ctx context.Context, s SnapshotCreate) error {
	return c.do(ctx, http.MethodPut, "/snapshot/create", s, nil)
}

// LoadSnapshot calls PUT /snapshot/load (fresh process only).
func (c *Client) LoadSnapshot(ctx context.Context, s SnapshotLoad) error {
	return c.do(ctx, http.MethodPut, "/snapshot/load", s, nil)
}

func (c *Client) timeout(path string) time.Duration {
	if strings.HasPrefix(path, "/snapshot/") {
		if c.SnapshotTimeout > 0 {
			return c.SnapshotTimeout
		}
		return DefaultSnapshotTimeout
	}
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultCallTimeout
}

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout(path))
	defer cancel()
	fail := func(status int, format string, args ...any) error {
		return &APIError{Method: method, Path: path, Status: status, Fault: fmt.Sprintf(format, args...)}
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fail(0, "encode request: %v", err)
		}
		body = bytes.NewReader(b)
	}
	// The host part is ignored: the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost"+path, body)
	if err != nil {
		return fail(0, "build request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return fmt.Errorf("firecracker API %s %s via %s: no answer within %v: %w", method, path, c.socket, c.timeout(path), err)
		}
		return fmt.Errorf("firecracker API %s %s via %s: %w", method, path, c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		var fault struct {
			FaultMessage string `json:"fault_message"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &fault) == nil && fault.FaultMessage != "" {
			msg = fault.FaultMessage
		}
		if msg == "" {
			msg = "(no fault message)"
		}
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Fault: msg}
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fail(resp.StatusCode, "decode response: %v", err)
	}
	return nil
}
