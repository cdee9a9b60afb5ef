package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// ioctl numbers of linux/fs.h: _IOWR('X', 119, int) and _IOWR('X', 120, int).
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

// Freeze bounds.
const (
	defaultFreezeTimeout = 60 * time.Second
	maxFreezeTimeout     = 10 * time.Minute
)

// freezeTarget is the mount whose file system a freeze stops: the data
// disk, which holds the overlay's upper layer and /workspace.
var freezeTarget = dataMount

// fsFreeze and fsThaw are the ioctls; tests replace them.
var (
	fsFreeze = func(path string) error { return fsIoctl(path, ioctlFIFREEZE) }
	fsThaw   = func(path string) error { return fsIoctl(path, ioctlFITHAW) }
)

func fsIoctl(path string, req uint) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.IoctlSetInt(int(f.Fd()), req, 0)
}

// freezeMu lets one freeze run at a time.
var freezeMu sync.Mutex

func init() {
	register(guestproto.OpFreeze, handleFreeze)
}

func handleFreeze(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	timeout := defaultFreezeTimeout
	if req.Freeze != nil && req.Freeze.TimeoutMS > 0 {
		timeout = min(time.Duration(req.Freeze.TimeoutMS)*time.Millisecond, maxFreezeTimeout)
	}
	if !freezeMu.TryLock() {
		return nil, errorf(guestproto.CodePrecondition, "another freeze of %s is in progress", freezeTarget)
	}
	defer freezeMu.Unlock()
	var fs unix.Statfs_t
	if err := unix.Statfs(freezeTarget, &fs); err == nil && fs.Type == unix.TMPFS_MAGIC {
		return nil, errorf(guestproto.CodeUnsupported, "%s is a tmpfs (a throwaway VM): there is no disk to freeze", freezeTarget)
	}
	unix.Sync()
	if err := fsFreeze(freezeTarget); err != nil {
		return nil, fmt.Errorf("freeze %s: %w", freezeTarget, err)
	}
	start := time.Now()
	var once sync.Once
	var thawErr error
	thaw := func() {
		once.Do(func() {
			thawErr = fsThaw(freezeTarget)
			if errors.Is(thawErr, unix.EINVAL) {
				thawErr = nil // not frozen any more (thawed by someone else)
			}
		})
	}
	defer thaw() // whatever happens below, the guest is never left frozen
	s.Log.Info("froze the data disk for a host copy", "timeout", timeout)
	if err := st.WriteFrame(guestproto.FrameData, []byte("frozen")); err != nil {
		return nil, fmt.Errorf("tell the host: %w", err)
	}
	// Wait for the host's FrameDataEOF; a closed stream (the host died) or
	// the timeout thaws too.
	done := make(chan error, 1)
	go func() {
		for {
			t, _, err := st.ReadFrame()
			if err != nil {
				done <- err
				return
			}
			if t == guestproto.FrameDataEOF {
				done <- nil
				return
			}
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	res := &guestproto.FreezeResult{}
	select {
	case err := <-done:
		if err != nil {
			s.Log.Warn("host went away during a freeze; thawing", "err", err)
		}
	case <-timer.C:
		res.AutoThawed = true
		s.Log.Warn("the host did not thaw in time; thawing on our own", "after", timeout)
	case <-ctx.Done():
	}
	thaw()
	res.FrozenMS = time.Since(start).Milliseconds()
	if thawErr != nil {
		return nil, fmt.Errorf("thaw %s: %w", freezeTarget, thawErr)
	}
	s.Log.Info("thawed the data disk", "frozen_ms", res.FrozenMS)
	return &guestproto.Response{Freeze: res}, nil
}
