package firecracker

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// A fake Firecracker API, used in process (newFakeAPI) and as a fake
// firecracker process (the test binary re-executed with fakeEnv set; see
// TestMain).

const (
	fakeEnv       = "HEARTH_FAKE_FIRECRACKER"
	fakeRecordEnv = "HEARTH_FAKE_FC_RECORD" // file receiving one JSON request per line
	fakeFaultEnv  = "HEARTH_FAKE_FC_FAULT"  // "METHOD /path=fault message"
	fakeVersion   = "1.16.1"
)

type recorded struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body,omitempty"`
}

type fakeAPI struct {
	id     string
	faults map[string]string // "PUT /drives/data" -> fault message
	record func(recorded)
	// onAction runs after PUT /actions succeeds, with the action type.
	onAction func(string)

	mu       sync.Mutex
	reqs     []recorded
	vsockUDS string
	// openTap: open the NIC's TAP as Firecracker does (only the fake
	// firecracker process, which runs in a network namespace of its own).
	openTap bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := recorded{Method: r.Method, Path: r.URL.Path}
	if len(body) > 0 {
		rec.Body = body
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, rec)
	f.mu.Unlock()
	if f.record != nil {
		f.record(rec)
	}
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	msg, ok := f.faults[key]
	f.mu.Unlock()
	if ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"fault_message": msg})
		return
	}
	switch key {
	case "GET /":
		json.NewEncoder(w).Encode(InstanceInfo{ID: f.id, State: "Not started", VMMVersion: fakeVersion, AppName: "Firecracker"})
		return
	case "PUT /network-interfaces/eth0":
		if !f.openTap {
			break
		}
		var n NetworkInterface
		json.Unmarshal(body, &n)
		if err := fakeTap(filepath.Dir(f.vsockDir()), n.HostDevName); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"fault_message": err.Error()})
			return
		}
	case "PUT /vsock":
		var v Vsock
		json.Unmarshal(body, &v)
		f.mu.Lock()
		f.vsockUDS = v.UDSPath
		f.mu.Unlock()
	case "PUT /actions":
		var a InstanceAction
		json.Unmarshal(body, &a)
		if f.onAction != nil && a.ActionType == ActionInstanceStart {
			f.onAction(a.ActionType) // the vsock socket exists when the call returns
		}
		w.WriteHeader(http.StatusNoContent)
		http.NewResponseController(w).Flush()
		if f.onAction != nil && a.ActionType != ActionInstanceStart {
			f.onAction(a.ActionType) // may end the process: answer first
		}
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// setFault makes endpoint ("PUT /drives/data") fail with msg; "" clears it.
func (f *fakeAPI) setFault(endpoint, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if msg == "" {
		delete(f.faults, endpoint)
		return
	}
	f.faults[endpoint] = msg
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

// newFakeAPI serves a fake API on <dir>/fc.sock until the test ends.
func newFakeAPI(t *testing.T, dir string) (*fakeAPI, *Client) {
	t.Helper()
	sock := filepath.Join(dir, APISocketName)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAPI{id: "test", faults: map[string]string{}}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	c := NewClient(sock)
	t.Cleanup(func() { c.Close(); srv.Close() })
	return f, c
}

// runFakeFirecracker is main() of the fake firecracker process: it accepts
// firecracker's flags, prints a banner to stdout (the console log), serves
// the fake API, listens on the vsock socket after InstanceStart and exits 0
// after SendCtrlAltDel.
func runFakeFirecracker(args []string) int {
	var apiSock, id string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--version":
			fmt.Println("Firecracker v" + fakeVersion)
			return 0
		case "--api-sock":
			i++
			apiSock = args[i]
		case "--id":
			i++
			id = args[i]
		default:
			fmt.Fprintf(os.Stderr, "fake firecracker: unexpected argument %q\n", args[i])
			return 2
		}
	}
	fmt.Printf("fake firecracker: Running Firecracker v%s id=%s\n", fakeVersion, id)
	dir := filepath.Dir(apiSock)
	os.WriteFile(filepath.Join(dir, "fake.pid"), fmt.Appendf(nil, "%d", os.Getpid()), 0o600)
	os.WriteFile(filepath.Join(dir, "fake.args"), []byte(strings.Join(args, "\n")), 0o600)

	f := &fakeAPI{id: id, faults: map[string]string{}, openTap: true}
	if fault := os.Getenv(fakeFaultEnv); fault != "" {
		k, v, _ := strings.Cut(fault, "=")
		f.faults[k] = v
	}
	if path := os.Getenv(fakeRecordEnv); path != "" {
		var mu sync.Mutex
		f.record = func(r recorded) {
			mu.Lock()
			defer mu.Unlock()
			out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return
			}
			defer out.Close()
			json.NewEncoder(out).Encode(r)
		}
	}
	stop := make(chan struct{})
	var once sync.Once
	f.onAction = func(action string) {
		switch action {
		case ActionInstanceStart:
			f.mu.Lock()
			uds := f.vsockUDS
			f.mu.Unlock()
			if uds != "" {
				if _, err := net.Listen("unix", uds); err != nil {
					fmt.Fprintf(os.Stderr, "fake firecracker: vsock listen: %v\n", err)
				}
			}
		case ActionSendCtrlAltDel:
			once.Do(func() { close(stop) })
		}
	}
	ln, err := net.Listen("unix", apiSock)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake firecracker: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	<-stop
	srv.Close() // the SendCtrlAltDel answer was flushed before stop closed
	fmt.Println("fake firecracker: guest reset, exiting")
	return 0
}

// vsockDir is the VM directory's vsock socket path (PUT /vsock comes first).
func (f *fakeAPI) vsockDir() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vsockUDS
}

// fakeTap does what Firecracker does with a NIC's host_dev_name: it opens
// the TAP by name (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR). Then, playing the guest,
// it sends one frame ("hello-from-guest", behind the 10-byte virtio-net
// header) and appends the payload of every frame it receives to
// DIR/fake.tapin. It records its namespace and interfaces in DIR/fake.netns.
func fakeTap(dir, name string) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("open tap %s: %w", name, err)
	}
	ns, _ := os.Readlink("/proc/self/ns/net")
	var names []string
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	os.WriteFile(filepath.Join(dir, "fake.netns"), []byte(ns+"\n"+strings.Join(names, ",")), 0o600)
	frame := make([]byte, 10, 100)
	frame = append(frame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x88, 0xb5)
	frame = append(frame, "hello-from-guest"...)
	if _, err := unix.Write(fd, frame); err != nil {
		return fmt.Errorf("write to tap: %w", err)
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				return
			}
			if n > 10+14 {
				out, _ := os.OpenFile(filepath.Join(dir, "fake.tapin"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
				out.Write(append(buf[10+14:n:n], '\n'))
				out.Close()
			}
		}
	}()
	return nil
}
