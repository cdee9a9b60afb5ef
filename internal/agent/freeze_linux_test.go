package agent

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// fakeFS records the freeze ioctls instead of making them.
type fakeFS struct {
	mu             sync.Mutex
	frozen         bool
	freezes, thaws int
	thawed         chan struct{}
}

func installFakeFS(t *testing.T) *fakeFS {
	f := &fakeFS{thawed: make(chan struct{}, 8)}
	oldF, oldT, oldTarget := fsFreeze, fsThaw, freezeTarget
	freezeTarget = t.TempDir()
	fsFreeze = func(string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.frozen {
			return errors.New("already frozen")
		}
		f.frozen = true
		f.freezes++
		return nil
	}
	fsThaw = func(string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.thaws++
		if f.frozen {
			f.frozen = false
			f.thawed <- struct{}{}
		}
		return nil
	}
	t.Cleanup(func() { fsFreeze, fsThaw, freezeTarget = oldF, oldT, oldTarget })
	return f
}

func (f *fakeFS) isFrozen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frozen
}

func TestFreezeThawByHost(t *testing.T) {
	f := installFakeFS(t)
	c := testClient(t)
	ctx := context.Background()
	fr, err := c.Freeze(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !f.isFrozen() {
		t.Fatal("not frozen after Freeze returned")
	}
	// A second freeze while frozen is refused, and does not thaw the first.
	if _, err := c.Freeze(ctx, time.Minute); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second freeze: %v", err)
	}
	if !f.isFrozen() {
		t.Fatal("a refused second freeze thawed the first")
	}
	res, err := fr.Thaw()
	if err != nil {
		t.Fatal(err)
	}
	if f.isFrozen() || res.AutoThawed {
		t.Fatalf("after thaw: frozen %v, result %+v", f.isFrozen(), res)
	}
}

func TestFreezeThawsWhenHostGoes(t *testing.T) {
	f := installFakeFS(t)
	c := testClient(t)
	fr, err := c.Freeze(context.Background(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	fr.Close() // the host process died mid-copy
	select {
	case <-f.thawed:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not thaw after the host's stream closed")
	}
	// So does a canceled context.
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := c.Freeze(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-f.thawed:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not thaw after the host's context ended")
	}
}

func TestFreezeAutoThaw(t *testing.T) {
	f := installFakeFS(t)
	c := testClient(t)
	fr, err := c.Freeze(context.Background(), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.thawed:
	case <-time.After(10 * time.Second):
		t.Fatal("no auto-thaw after the timeout")
	}
	// The host learns its copy may be inconsistent.
	res, err := fr.Thaw()
	if !errors.Is(err, errdefs.ErrTimeout) || res == nil || !res.AutoThawed {
		t.Fatalf("thaw after auto-thaw: %+v, %v", res, err)
	}
}
