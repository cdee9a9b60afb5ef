package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// fakeClock is the time the tests move by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) advance(d time.Duration) time.Time { c.now = c.now.Add(d); return c.now }

func TestRestartBackoffAndStartLimit(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_000_000, 0)}
	tr := restartTracker{p: policyOf(&guestproto.ServiceSpec{Restart: guestproto.RestartOnFailure})}
	tr.started(clk.now)
	// A service that fails 50 ms after every start: 100, 200, 400, 800 ms
	// of back-off, then the sixth start would be the sixth in 10 s.
	var delays []time.Duration
	for {
		d := tr.exited(clk.advance(50*time.Millisecond), 50*time.Millisecond, true)
		if !d.restart {
			if !d.limitHit {
				t.Fatalf("stopped restarting without hitting the limit: %+v", d)
			}
			break
		}
		delays = append(delays, d.delay)
		tr.started(clk.advance(d.delay))
		if len(delays) > 10 {
			t.Fatal("the start limit never hit")
		}
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	if len(delays) != len(want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("delays %v, want %v", delays, want)
		}
	}
}

func TestRestartPolicies(t *testing.T) {
	for _, tc := range []struct {
		mode        string
		failed      bool
		wantRestart bool
	}{
		{guestproto.RestartNo, true, false},
		{"", true, false},
		{guestproto.RestartOnFailure, true, true},
		{guestproto.RestartOnFailure, false, false},
		{guestproto.RestartAlways, false, true},
		{guestproto.RestartAlways, true, true},
	} {
		tr := restartTracker{p: policyOf(&guestproto.ServiceSpec{Restart: tc.mode})}
		now := time.Unix(0, 0)
		tr.started(now)
		if d := tr.exited(now.Add(time.Second), time.Second, tc.failed); d.restart != tc.wantRestart || d.limitHit {
			t.Errorf("%q failed=%v: %+v", tc.mode, tc.failed, d)
		}
	}
}

func TestRestartBackoffCapsAndResets(t *testing.T) {
	p := policyOf(&guestproto.ServiceSpec{Restart: guestproto.RestartAlways, RestartDelayMS: 1000, RestartMaxDelayMS: 5000, StartLimitBurst: 100, StartLimitIntervalMS: 1000})
	tr := restartTracker{p: p}
	clk := &fakeClock{now: time.Unix(0, 0)}
	tr.started(clk.now)
	var got []time.Duration
	for range 6 {
		d := tr.exited(clk.advance(time.Second), time.Second, true)
		got = append(got, d.delay)
		tr.started(clk.advance(d.delay))
	}
	want := []time.Duration{1, 2, 4, 5, 5, 5}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("delays %v, want %v s", got, want)
		}
	}
	// A run longer than the reset time starts the back-off over.
	d := tr.exited(clk.advance(time.Minute), time.Minute, true)
	if d.delay != time.Second {
		t.Fatalf("after a long run the delay is %v, want 1s", d.delay)
	}
}

func TestStartLimitWindowSlides(t *testing.T) {
	// 3 starts in 1 s: failing once a second never hits it.
	tr := restartTracker{p: policyOf(&guestproto.ServiceSpec{Restart: guestproto.RestartAlways, StartLimitBurst: 3, StartLimitIntervalMS: 1000, RestartDelayMS: 10, RestartMaxDelayMS: 10})}
	clk := &fakeClock{now: time.Unix(0, 0)}
	tr.started(clk.now)
	for i := range 20 {
		d := tr.exited(clk.advance(500*time.Millisecond), 500*time.Millisecond, true)
		if !d.restart {
			t.Fatalf("restart %d refused: %+v", i, d)
		}
		tr.started(clk.advance(d.delay))
	}
	// Failing at once hits it on the third restart.
	tr.reset()
	tr.started(clk.now)
	n := 0
	for {
		d := tr.exited(clk.advance(time.Millisecond), time.Millisecond, true)
		if !d.restart {
			break
		}
		n++
		tr.started(clk.advance(d.delay))
	}
	if n != 2 {
		t.Fatalf("%d restarts before the limit, want 2 (3 starts)", n)
	}
}

func TestProbeStateMachine(t *testing.T) {
	pb := &guestproto.Probe{Kind: guestproto.ProbePort, Retries: 3, Text: "port:1"}
	t0 := time.Unix(0, 0)
	type step struct {
		ok      bool
		inStart bool
		want    string
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"failures in the start period do not count", []step{
			{false, true, "starting"}, {false, true, "starting"}, {false, true, "starting"}, {false, true, "starting"},
			{true, true, "ready"},
		}},
		{"after the start period, retries failures make it unready", []step{
			{false, false, "starting"}, {false, false, "starting"}, {false, false, "unready"}, {true, false, "ready"},
		}},
		{"ready survives fewer than retries failures", []step{
			{true, true, "ready"}, {false, false, "ready"}, {false, false, "ready"}, {true, false, "ready"},
			{false, false, "ready"}, {false, false, "ready"}, {false, false, "unready"}, {false, false, "unready"}, {true, false, "ready"},
		}},
		{"a failure in the start period counts once ready", []step{
			{true, true, "ready"}, {false, true, "ready"}, {false, true, "ready"}, {false, true, "unready"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := &probeState{p: pb}
			state := guestproto.ServiceStarting
			for i, s := range tc.steps {
				ps.record(s.ok, "d", t0.Add(time.Duration(i)*time.Second), s.inStart)
				state = nextState(state, []*probeState{ps})
				if state != s.want {
					t.Fatalf("step %d (%+v): state %s, want %s (failures %d, passing %v)", i, s, state, s.want, ps.failures, ps.passing)
				}
			}
		})
	}
}

func TestAllProbesMustPass(t *testing.T) {
	a := &probeState{p: &guestproto.Probe{Retries: 1}}
	b := &probeState{p: &guestproto.Probe{Retries: 1}}
	a.record(true, "", time.Now(), true)
	if s := nextState(guestproto.ServiceStarting, []*probeState{a, b}); s != guestproto.ServiceStarting {
		t.Fatalf("one of two passing: %s", s)
	}
	b.record(true, "", time.Now(), true)
	if s := nextState(guestproto.ServiceStarting, []*probeState{a, b}); s != guestproto.ServiceReady {
		t.Fatalf("both passing: %s", s)
	}
	if s := nextState(guestproto.ServiceStarting, nil); s != guestproto.ServiceReady {
		t.Fatalf("no probes: %s", s)
	}
}

func TestTailOffset(t *testing.T) {
	r := ring{size: 64}
	r.write([]byte("one\ntwo\nthree\nfour\n"))
	for n, want := range map[int]string{0: "one\ntwo\nthree\nfour\n", 1: "four\n", 2: "three\nfour\n", 10: "one\ntwo\nthree\nfour\n"} {
		if got := string(r.read(tailOffset(&r, n), 100)); got != want {
			t.Errorf("tail %d = %q, want %q", n, got, want)
		}
	}
	r.write([]byte("unfinished"))
	if got := string(r.read(tailOffset(&r, 2), 100)); got != "four\nunfinished" {
		t.Errorf("tail with an unfinished line = %q", got)
	}
	// After wrapping, the tail is bounded by what is kept.
	r.write([]byte(strings.Repeat("x", 100) + "\nlast\n"))
	if got := string(r.read(tailOffset(&r, 5), 100)); !strings.HasSuffix(got, "\nlast\n") || len(got) > 64 {
		t.Errorf("tail after wrap = %q", got)
	}
}
