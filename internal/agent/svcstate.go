package agent

import (
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// The pure parts of service supervision: restart decisions and readiness
// verdicts. They take the time as an argument, so tests drive them with a
// fake clock.

// restartPolicy is a service's restart settings with defaults applied.
type restartPolicy struct {
	mode       string
	delay      time.Duration // first back-off
	maxDelay   time.Duration
	burst      int           // starts allowed within period
	period     time.Duration // the start limit's window
	resetAfter time.Duration // a run this long resets the back-off
}

func policyOf(s *guestproto.ServiceSpec) restartPolicy {
	p := restartPolicy{
		mode:     s.Restart,
		delay:    time.Duration(s.RestartDelayMS) * time.Millisecond,
		maxDelay: time.Duration(s.RestartMaxDelayMS) * time.Millisecond,
		burst:    s.StartLimitBurst,
		period:   time.Duration(s.StartLimitIntervalMS) * time.Millisecond,
	}
	if p.mode == "" {
		p.mode = guestproto.RestartNo
	}
	if p.delay <= 0 {
		p.delay = guestproto.DefaultRestartDelay
	}
	if p.maxDelay <= 0 {
		p.maxDelay = guestproto.DefaultRestartMaxDelay
	}
	p.maxDelay = max(p.maxDelay, p.delay)
	if p.burst <= 0 {
		p.burst = guestproto.DefaultStartLimitBurst
	}
	if p.period <= 0 {
		p.period = guestproto.DefaultStartLimitPeriod
	}
	p.resetAfter = max(p.period, 10*time.Second)
	return p
}

// restartTracker remembers a service's recent starts and decides, when its
// process ends, whether to start it again and after how long: back-off
// doubling from delay to maxDelay (reset by a long enough run), and a start
// limit of burst starts within period, as systemd's StartLimitBurst and
// StartLimitIntervalSec.
type restartTracker struct {
	p      restartPolicy
	starts []time.Time
	streak int // restarts since the last long run
}

// started records a start at now.
func (t *restartTracker) started(now time.Time) {
	t.starts = append(t.starts, now)
	if len(t.starts) > t.p.burst {
		t.starts = t.starts[len(t.starts)-t.p.burst:]
	}
}

// reset forgets the history (an explicit restart).
func (t *restartTracker) reset() { t.starts, t.streak = nil, 0 }

// restartDecision is what to do after a process ended.
type restartDecision struct {
	restart bool
	delay   time.Duration
	// limitHit: a restart was due but the start limit refuses it.
	limitHit bool
}

// exited decides after a run that ended at now having run for ran;
// failed says whether it ended badly (non-zero status or a signal).
func (t *restartTracker) exited(now time.Time, ran time.Duration, failed bool) restartDecision {
	switch t.p.mode {
	case guestproto.RestartAlways:
	case guestproto.RestartOnFailure:
		if !failed {
			return restartDecision{}
		}
	default:
		return restartDecision{}
	}
	if ran >= t.p.resetAfter {
		t.streak = 0
	}
	delay := t.p.delay
	for i := 0; i < t.streak && delay < t.p.maxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, t.p.maxDelay)
	// The restart would happen at now+delay: count the starts still in
	// the window then.
	at := now.Add(delay)
	n := 0
	for _, s := range t.starts {
		if at.Sub(s) < t.p.period {
			n++
		}
	}
	if n >= t.p.burst {
		return restartDecision{limitHit: true}
	}
	t.streak++
	return restartDecision{restart: true, delay: delay}
}

// probeState is one probe's record during one run of a service.
type probeState struct {
	p        *guestproto.Probe
	ok       bool // last check
	passing  bool // verdict
	failures int  // consecutive counted failures
	checks   int64
	at       time.Time
	detail   string
}

// record adds a check's result; inStart says the service is in the
// probe's start period, where failures are not counted.
func (ps *probeState) record(ok bool, detail string, now time.Time, inStart bool) {
	ps.ok, ps.detail, ps.at = ok, detail, now
	ps.checks++
	if ok {
		ps.passing, ps.failures = true, 0
		return
	}
	if inStart && !ps.passing {
		return
	}
	ps.failures++
	if ps.failures >= ps.p.Retries {
		ps.passing = false
	}
}

// failing says the probe has failed for good: Retries counted failures in
// a row.
func (ps *probeState) failing() bool { return !ps.passing && ps.failures >= ps.p.Retries }

// nextState is a running service's state given its probes: ready when all
// pass; from starting, unready once a probe fails past its start period;
// from ready, unready when a probe stops passing.
func nextState(cur string, probes []*probeState) string {
	all := true
	for _, ps := range probes {
		if !ps.passing {
			all = false
		}
	}
	if all {
		return guestproto.ServiceReady
	}
	switch cur {
	case guestproto.ServiceStarting:
		for _, ps := range probes {
			if ps.failing() {
				return guestproto.ServiceUnready
			}
		}
		return guestproto.ServiceStarting
	case guestproto.ServiceReady, guestproto.ServiceUnready:
		return guestproto.ServiceUnready
	}
	return cur
}
