package agent

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/guest"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// fakeZombies is a zombieSource over a fixed list.
type fakeZombies struct {
	list   []int
	reaped []int
}

func (f *fakeZombies) zombies() ([]int, error) { return f.list, nil }
func (f *fakeZombies) reap(pid int) error      { f.reaped = append(f.reaped, pid); return nil }

func TestReapUntrackedSkipsTracked(t *testing.T) {
	tests := []struct {
		name    string
		tracked []int
		zombies []int
		want    []int
	}{
		{"none tracked", nil, []int{10, 11}, []int{10, 11}},
		{"tracked kept", []int{11}, []int{10, 11, 12}, []int{10, 12}},
		{"all tracked", []int{10, 11}, []int{10, 11}, nil},
		{"no zombies", []int{10}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt := &procTable{tracked: map[int]struct{}{}}
			for _, p := range tt.tracked {
				pt.tracked[p] = struct{}{}
			}
			src := &fakeZombies{list: tt.zombies}
			n, err := pt.reapUntracked(src)
			if err != nil || n != len(tt.want) || !slices.Equal(src.reaped, tt.want) {
				t.Fatalf("reaped %v (n=%d, err=%v), want %v", src.reaped, n, err, tt.want)
			}
		})
	}
}

// A process is registered before the reaper can see it: start holds the
// table's lock across the fork.
func TestStartTrackedRegistersBeforeUnlock(t *testing.T) {
	pt := &procTable{tracked: map[int]struct{}{}}
	cmd := exec.Command("true")
	var sawLocked bool
	err := pt.start(func() error {
		sawLocked = !pt.mu.TryLock()
		return cmd.Start()
	}, cmd)
	if err != nil || !sawLocked {
		t.Fatalf("start: err %v, lock held during fork: %v", err, sawLocked)
	}
	if !pt.isTracked(cmd.Process.Pid) {
		t.Fatal("pid not tracked after start")
	}
	cmd.Wait()
	pt.untrack(cmd.Process.Pid)
	if pt.isTracked(cmd.Process.Pid) {
		t.Fatal("pid still tracked")
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in    string
		state byte
		ppid  int
		ok    bool
	}{
		{"123 (sleep) S 1 123 123 0", 'S', 1, true},
		{"77 (a) b) (c) Z 42 0 0", 'Z', 42, true},
		{"garbage", 0, 0, false},
		{"5 (x) R", 0, 0, false},
	}
	for _, tt := range tests {
		st, pp, ok := parseStat([]byte(tt.in))
		if st != tt.state || pp != tt.ppid || ok != tt.ok {
			t.Errorf("parseStat(%q) = %c %d %v, want %c %d %v", tt.in, st, pp, ok, tt.state, tt.ppid, tt.ok)
		}
	}
}

// With the real reaper running (TestMain makes this process a subreaper),
// orphans are reaped while every exec still gets its own exit status.
func TestReaperKeepsExecStatuses(t *testing.T) {
	c := testClient(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := 3 + i
			res, err := c.Exec(context.Background(), &guestproto.ExecRequest{Shell: "(true &); (sleep 0.05 &); exit " + strconv.Itoa(code)}, guest.ExecIO{})
			if err != nil || res.ExitCode != code || res.Reason != guestproto.ReasonExited {
				t.Errorf("exec %d: %+v, %v", i, res, err)
			}
		}()
	}
	wg.Wait()
	// The orphans (ours, as the process is their subreaper) are reaped by
	// the reaper: none is left a zombie.
	src := procZombies{proc: "/proc", self: os.Getpid()}
	deadline := time.Now().Add(3 * time.Second)
	for {
		z, _ := src.zombies()
		if len(z) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombies left: %v", z)
		}
		time.Sleep(10 * time.Millisecond)
	}
	children.mu.Lock()
	left := len(children.tracked)
	children.mu.Unlock()
	if left != 0 {
		t.Errorf("%d pids still tracked after all execs ended", left)
	}
}
