package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/vmm"
)

// fakeSaver is a Machine and Saver that records the calls it gets.
type fakeSaver struct {
	mu      sync.Mutex
	calls   []string
	saveErr error
	done    chan struct{}
}

func (f *fakeSaver) call(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}
func (f *fakeSaver) PID() int                     { return 1 }
func (f *fakeSaver) AgentSocket() string          { return "" }
func (f *fakeSaver) Done() <-chan struct{}        { return f.done }
func (f *fakeSaver) ExitReason() string           { return "" }
func (f *fakeSaver) Describe() map[string]string  { return nil }
func (f *fakeSaver) Kill() error                  { f.call("kill"); return nil }
func (f *fakeSaver) Pause(context.Context) error  { f.call("pause"); return nil }
func (f *fakeSaver) Resume(context.Context) error { f.call("resume"); return nil }
func (f *fakeSaver) SaveState(_ context.Context, state, mem string, final bool) error {
	f.call("save")
	if f.saveErr != nil {
		return f.saveErr
	}
	os.WriteFile(state, []byte("state"), 0o400)
	return os.WriteFile(mem, []byte("memory"), 0o400)
}
func (f *fakeSaver) Compat(context.Context) (vmm.Compat, error) {
	return vmm.Compat{Backend: "fake", Version: "1"}, nil
}

// TestSave: a save pauses, saves, copies the disk and resumes; a failed
// save resumes the guest anyway; a stopping save ends the VM instead; a
// save over the socket reaches the caller with the error's kind.
func TestSave(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stop    bool
		saveErr error
		want    []string
	}{
		{"snapshot", false, nil, []string{"pause", "save", "resume"}},
		{"failed save resumes", false, errors.New("disk full"), []string{"pause", "save", "resume"}},
		{"suspend", true, nil, []string{"pause", "save", "kill"}},
		{"failed suspend resumes", true, errors.New("disk full"), []string{"pause", "save", "resume"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			disk := filepath.Join(dir, "disk.ext4")
			os.WriteFile(disk, []byte("disk bytes"), 0o600)
			out := filepath.Join(dir, "out")
			os.Mkdir(out, 0o700)
			f := &fakeSaver{saveErr: tc.saveErr, done: make(chan struct{})}
			stopped := false
			s := &saver{m: f, log: slog.New(slog.DiscardHandler), onStop: func() { stopped = true }}
			stop, err := listenSave(dir, s)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			req := &SaveRequest{Dir: out, Stop: tc.stop}
			if !tc.stop {
				req.Copies = []Copy{{Src: disk, Dst: filepath.Join(out, "disk.ext4")}}
			}
			resp, err := Save(context.Background(), dir, req)
			if !reflect.DeepEqual(f.calls, tc.want) {
				t.Fatalf("calls %v, want %v", f.calls, tc.want)
			}
			if tc.saveErr != nil {
				if err == nil || !strings.Contains(err.Error(), "disk full") {
					t.Fatalf("got %v, want the save's error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Compat.Backend != "fake" || resp.StateBytes != 5 || stopped != tc.stop {
				t.Fatalf("response %+v, stopped %v", resp, stopped)
			}
			if !tc.stop {
				if b, _ := os.ReadFile(filepath.Join(out, "disk.ext4")); string(b) != "disk bytes" {
					t.Fatalf("disk copy holds %q", b)
				}
			}
		})
	}
	// A machine that cannot save says so, as not implemented.
	dir := t.TempDir()
	stop, err := listenSave(dir, &saver{m: plainMachine{}, log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	_, err = Save(context.Background(), dir, &SaveRequest{Dir: dir})
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Fatalf("got %v, want not implemented", err)
	}
}

type plainMachine struct{ vmm.Machine }
