package supervisor

// Memory snapshots: the supervisor, which owns the VMM and its monitor,
// serves DIR/snap.sock. One JSON SaveRequest, one JSON SaveResponse per
// connection. The save runs on the supervisor's own clock: a caller that
// dies mid-save (kill -9 of the CLI) does not leave the guest paused.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/sparse"
	"github.com/hearthvm/hearth/internal/vmm"
)

// SaveSocket is the save socket's name in the run directory.
const SaveSocket = "snap.sock"

// Files a save writes into SaveRequest.Dir.
const (
	StateFile  = "state"      // the VMM's device state
	MemoryFile = "memory.ram" // the guest's RAM (sparse)
	// SavedFile (a Saved) is written last by a save that stops the VM,
	// so that a suspend whose caller died mid-way can still be resumed.
	SavedFile = "saved.json"
)

// Saved records a finished save that stopped the VM.
type Saved struct {
	At     time.Time  `json:"at"`
	Compat vmm.Compat `json:"compat"`
}

// saveTimeout bounds one save.
const saveTimeout = 10 * time.Minute

// Copy is a file copied (sparsely) while the guest is paused.
type Copy struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

// SaveRequest asks for the guest's memory and device state.
type SaveRequest struct {
	// Dir (existing, empty) receives StateFile and MemoryFile.
	Dir string `json:"dir"`
	// Copies are made at the same paused instant (the writable disk).
	Copies []Copy `json:"copies,omitempty"`
	// Stop ends the VM after the save (suspend) instead of resuming it;
	// its memory file is then moved, not copied.
	Stop bool `json:"stop,omitempty"`
}

// SaveResponse says how a save went.
type SaveResponse struct {
	Error  string       `json:"error,omitempty"`
	Kind   errdefs.Kind `json:"kind,omitempty"`
	Compat vmm.Compat   `json:"compat"`
	// PausedMS is how long the guest stood still.
	PausedMS    int64 `json:"paused_ms"`
	StateBytes  int64 `json:"state_bytes"`
	MemoryBytes int64 `json:"memory_bytes"`
}

// Save asks the supervisor of runDir to save its guest.
func Save(ctx context.Context, runDir string, req *SaveRequest) (*SaveResponse, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(runDir, SaveSocket))
	if err != nil {
		return nil, fmt.Errorf("reach the VM's supervisor (started by an older hearth? restart the workspace): %w: %w", err, errdefs.ErrUnavailable)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	var resp SaveResponse
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("the supervisor did not answer the save: %w: %w", err, errdefs.ErrUnavailable)
	}
	if resp.Error != "" {
		return nil, &errdefs.KindError{Kind: resp.Kind, Msg: resp.Error}
	}
	return &resp, nil
}

// saver serves the save socket of one machine.
type saver struct {
	m      vmm.Machine
	spec   vmm.Spec
	log    *slog.Logger
	mu     sync.Mutex // one save at a time
	onStop func()     // records that the coming exit is a suspend
}

func (s *saver) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var req SaveRequest
	if err := json.NewDecoder(io.LimitReader(conn, 1<<20)).Decode(&req); err != nil {
		json.NewEncoder(conn).Encode(SaveResponse{Error: "bad save request: " + err.Error(), Kind: errdefs.KindInvalidArgument})
		return
	}
	conn.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	resp, err := s.save(ctx, &req)
	if err != nil {
		resp = &SaveResponse{Error: err.Error(), Kind: errdefs.Classify(err)}
	}
	json.NewEncoder(conn).Encode(resp)
}

func (s *saver) save(ctx context.Context, req *SaveRequest) (_ *SaveResponse, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, ok := s.m.(vmm.Saver)
	if !ok {
		return nil, fmt.Errorf("this VMM cannot save a running guest: %w", errdefs.ErrNotImplemented)
	}
	if fi, err := os.Stat(req.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("save directory %s: not a directory: %w", req.Dir, errdefs.ErrInvalidArgument)
	}
	compat, err := sv.Compat(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := sv.Pause(ctx); err != nil {
		return nil, err
	}
	resp := &SaveResponse{Compat: compat}
	resumed := false
	defer func() {
		if !resumed && (err != nil || !req.Stop) {
			if rerr := sv.Resume(context.Background()); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		resp.PausedMS = time.Since(start).Milliseconds()
	}()
	// The device state and the RAM first (Firecracker flushes the disks
	// as it saves), then the disks. With Stop the RAM file may be moved
	// away, so a Stop takes no copies (nothing may fail after it).
	if req.Stop && len(req.Copies) > 0 {
		return nil, fmt.Errorf("a save that stops the VM takes no copies: %w", errdefs.ErrInvalidArgument)
	}
	state := filepath.Join(req.Dir, StateFile)
	mem := filepath.Join(req.Dir, MemoryFile)
	if err := sv.SaveState(ctx, state, mem, req.Stop); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(state); err == nil {
		resp.StateBytes = fi.Size()
	}
	for _, c := range req.Copies {
		if _, err := sparse.CopyFile(ctx, c.Src, c.Dst, sparse.Options{Mode: 0o400}); err != nil {
			return nil, fmt.Errorf("copy %s: %w", filepath.Base(c.Src), err)
		}
	}
	if req.Stop {
		// The save is whole: say so in its directory, for a caller that
		// is gone by now (the next start resumes from it).
		if err := atomicfile.WriteJSON(filepath.Join(req.Dir, SavedFile), Saved{At: time.Now().UTC(), Compat: compat}, 0o600); err != nil {
			return nil, err
		}
		// The guest never runs again here: end the VMM.
		if s.onStop != nil {
			s.onStop()
		}
		s.m.Kill()
		resumed = true
	} else {
		if err := sv.Resume(ctx); err != nil {
			resumed = true // tried; the deferred resume would fail the same way
			return nil, err
		}
		resumed = true
	}
	if n, err := sparse.Allocated(mem); err == nil {
		resp.MemoryBytes = n
	}
	s.log.Info("memory saved", "dir", req.Dir, "stop", req.Stop, "state_bytes", resp.StateBytes, "memory_bytes", resp.MemoryBytes, "paused_ms", time.Since(start).Milliseconds())
	return resp, nil
}

// listenSave serves the save socket until the machine exits.
func listenSave(dir string, s *saver) (func(), error) {
	p := filepath.Join(dir, SaveSocket)
	os.Remove(p)
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("save socket: %w", err)
	}
	os.Chmod(p, 0o600)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return func() { ln.Close(); os.Remove(p) }, nil
}
