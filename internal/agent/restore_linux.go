package agent

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/hearthvm/hearth/internal/guestproto"
	"golang.org/x/sys/unix"
)

func init() {
	register(guestproto.OpRestored, handleRestored)
}

// handleRestored fixes a guest that was just restored from a memory
// snapshot: clock, random pool, identity (see guestproto.OpRestored).
func handleRestored(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	r := req.Restored
	if r == nil {
		return nil, errorf(guestproto.CodeInvalid, "restored request has no body")
	}
	if len(r.Entropy) > guestproto.MaxRestoreEntropy {
		return nil, errorf(guestproto.CodeInvalid, "restored: %d bytes of entropy, at most %d", len(r.Entropy), guestproto.MaxRestoreEntropy)
	}
	res := &guestproto.RestoredResult{}
	if r.UnixNanos > 0 {
		before := time.Now()
		tv := unix.NsecToTimeval(r.UnixNanos)
		if err := unix.Settimeofday(&tv); err != nil {
			return nil, errorf(guestproto.CodeInternal, "step the clock: %v", err)
		}
		res.ClockStepMS = (r.UnixNanos - before.UnixNano()) / 1e6
	}
	if len(r.Entropy) > 0 {
		if err := addEntropy(r.Entropy); err != nil {
			return nil, errorf(guestproto.CodeInternal, "reseed the random pool: %v", err)
		}
		res.EntropyBytes = len(r.Entropy)
	}
	if r.ID != "" {
		before := readTrimmed("/etc/machine-id")
		ensureIdentity(s.Log, bootConfig{ID: r.ID})
		res.NewMachineID = readTrimmed("/etc/machine-id") != before
		os.Setenv("HEARTH_VM_ID", r.ID)
	}
	if r.Hostname != "" {
		if err := unix.Sethostname([]byte(r.Hostname)); err != nil {
			return nil, errorf(guestproto.CodeInternal, "set hostname: %v", err)
		}
		res.Hostname = r.Hostname
	}
	s.Log.Info("restored from a memory snapshot", "clock_step_ms", res.ClockStepMS, "entropy", res.EntropyBytes, "new_machine_id", res.NewMachineID)
	return &guestproto.Response{Restored: res}, nil
}

// addEntropy mixes b into the kernel's pool and credits it (RNDADDENTROPY
// on /dev/urandom; struct rand_pool_info: entropy_count bits, buf_size
// bytes, then the bytes), then reseeds the CRNG from it (RNDRESEEDCRNG).
func addEntropy(b []byte) error {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 8+len(b)+3) // the kernel reads buf_size bytes; keep u32 alignment room
	binary.NativeEndian.PutUint32(buf[0:4], uint32(len(b)*8))
	binary.NativeEndian.PutUint32(buf[4:8], uint32(len(b)))
	copy(buf[8:], b)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		return fmt.Errorf("RNDADDENTROPY: %w", errno)
	}
	// Once the pool is initialised, credited input waits for the next
	// scheduled reseed: force it, or clones of one snapshot would draw the
	// same /dev/urandom bytes until then.
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDRESEEDCRNG, 0); errno != 0 {
		return fmt.Errorf("RNDRESEEDCRNG: %w", errno)
	}
	return nil
}
