package workspace

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/netpolicy"
	"github.com/hearthvm/hearth/internal/netstack"
)

// The guest network policy is persisted as DIR/network.json (absent: mode
// none); the supervisor's stack re-reads it on reload. The network log is
// DIR/logs/network.log.

func (m *Manager) networkPath(id string) string    { return filepath.Join(m.dir(id), "network.json") }
func (m *Manager) networkLogPath(id string) string { return filepath.Join(m.logDir(id), "network.log") }

// policyOf validates an API policy (nil: mode none).
func policyOf(p *api.NetworkPolicy) (*netpolicy.Policy, error) {
	np := &netpolicy.Policy{Mode: netpolicy.ModeNone}
	if p != nil {
		np.Mode = netpolicy.Mode(p.Mode)
		for _, r := range p.Rules {
			np.Rules = append(np.Rules, netpolicy.Rule{Action: r.Action, Match: r.Match})
		}
		np.AllowHost = append(np.AllowHost, p.AllowHost...)
	}
	if err := np.Validate(); err != nil {
		return nil, err
	}
	return np, nil
}

func apiPolicy(p *netpolicy.Policy) api.NetworkPolicy {
	out := api.NetworkPolicy{Mode: string(p.Mode), AllowHost: p.AllowHost}
	for _, r := range p.Rules {
		out.Rules = append(out.Rules, api.NetworkRule{Action: r.Action, Match: r.Match})
	}
	return out
}

func (m *Manager) saveNetwork(id string, p *netpolicy.Policy) error {
	if err := netpolicy.Save(m.networkPath(id), p); err != nil {
		return fmt.Errorf("save network policy: %w", err)
	}
	return nil
}

// networkConfig is the supervisor's network config for a boot: nil when
// the policy is mode none (the guest gets no NIC).
func (m *Manager) networkConfig(rec *record) *netstack.Config {
	id := rec.ID
	p, err := netpolicy.Load(m.networkPath(id))
	if err != nil || !p.Enabled() {
		return nil
	}
	return &netstack.Config{PolicyFile: m.networkPath(id), LogFile: m.networkLogPath(id), Broker: m.brokerPath(id), Link: rec.NetLink}
}

// netLinkFromEnv reads HEARTH_NET_LINK for a create: "tap" gives a QEMU
// guest the TAP path Firecracker takes (see record.NetLink).
func netLinkFromEnv() (string, error) {
	switch v := os.Getenv("HEARTH_NET_LINK"); v {
	case "", "stream":
		return "", nil
	case "tap":
		return "tap", nil
	default:
		return "", fmt.Errorf("HEARTH_NET_LINK=%q: want tap or stream (or leave it unset): %w", v, errdefs.ErrInvalidArgument)
	}
}

// hasStack reports whether the workspace's running supervisor runs a
// network stack.
func (m *Manager) hasStack(id string) bool {
	_, err := os.Stat(filepath.Join(m.runDir(id), netstack.ControlSocket))
	return err == nil && m.vmState(id).state == api.StateRunning
}

func (m *Manager) networkInfo(rec *record, p *netpolicy.Policy) *api.NetworkInfo {
	info := &api.NetworkInfo{Workspace: rec.Name, Policy: apiPolicy(p)}
	running := m.vmState(rec.ID).state == api.StateRunning
	stack := running && m.hasStack(rec.ID)
	switch {
	case !running:
		info.Note = "the workspace is stopped: the policy applies when it starts"
	case p.Enabled() && !stack:
		info.Note = "the running VM has no network interface: restart the workspace (stop, start) to add it"
	case !p.Enabled() && stack:
		info.Applied = true
		info.Note = "all guest traffic is denied now; the network interface goes away at the next start"
	default:
		info.Applied = true
	}
	if p.Enabled() {
		info.GuestAddress, info.Gateway, info.DNS = netstack.GuestIP.String(), netstack.GatewayIP.String(), netstack.DNSIP.String()
	}
	return info
}

// NetworkShow returns a workspace's network policy and whether the running
// VM enforces it.
func (m *Manager) NetworkShow(ctx context.Context, ref string) (*api.NetworkInfo, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	p, err := netpolicy.Load(m.networkPath(rec.ID))
	if err != nil {
		return nil, err
	}
	return m.networkInfo(rec, p), nil
}

// NetworkSet replaces a workspace's network policy. On a running workspace
// with a network it takes effect at once for new connections and DNS
// queries; a change to or from mode none adds or removes the network
// interface at the next start (NetworkInfo.Applied and Note say which).
func (m *Manager) NetworkSet(ctx context.Context, ref string, policy api.NetworkPolicy) (*api.NetworkInfo, error) {
	p, err := policyOf(&policy)
	if err != nil {
		return nil, err
	}
	rec, done, err := m.beginCall(ctx, ref, "network set")
	if err != nil {
		// A stopped workspace takes the policy for its next start.
		r, rerr := m.resolve(ref)
		if rerr != nil || m.vmState(r.ID).state == api.StateRunning {
			return nil, err
		}
		if err := m.saveNetwork(r.ID, p); err != nil {
			return nil, err
		}
		return m.networkInfo(r, p), nil
	}
	defer done()
	if err := m.saveNetwork(rec.ID, p); err != nil {
		return nil, err
	}
	if m.hasStack(rec.ID) {
		if err := netstack.ReloadIn(ctx, m.runDir(rec.ID)); err != nil {
			return nil, errdefs.Mark(fmt.Errorf("workspace %s: the policy is saved but the running VM did not take it: %w", rec.Name, err), errdefs.ErrUnavailable)
		}
	}
	return m.networkInfo(rec, p), nil
}

// NetworkLogOptions select network log lines.
type NetworkLogOptions struct {
	// Since drops events before this time.
	Since time.Time
	// Tail keeps only the last Tail events (0: all) of what is logged now.
	Tail int
	// Follow keeps reading new events until ctx ends.
	Follow bool
}

// NetworkLog calls emit for each event of a workspace's network log.
func (m *Manager) NetworkLog(ctx context.Context, ref string, o NetworkLogOptions, emit func(api.NetworkEvent) error) error {
	rec, err := m.resolve(ref)
	if err != nil {
		return err
	}
	path := m.networkLogPath(rec.ID)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && o.Follow {
		for errors.Is(err, os.ErrNotExist) {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(250 * time.Millisecond):
			}
			f, err = os.Open(path)
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	r := bufio.NewReader(f)
	var backlog []api.NetworkEvent
	var partial []byte
	readAll := func(buffer bool) error {
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] != '\n' {
				partial = append(partial, line...)
				return nil
			}
			if len(line) > 0 {
				line = append(partial, line...)
				partial = nil
				var e api.NetworkEvent
				if json.Unmarshal(bytes.TrimSpace(line), &e) == nil && !e.Time.Before(o.Since) {
					if buffer {
						backlog = append(backlog, e)
						if o.Tail > 0 && len(backlog) > o.Tail {
							backlog = backlog[1:]
						}
					} else if err := emit(e); err != nil {
						return err
					}
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	if err := readAll(true); err != nil {
		return err
	}
	for _, e := range backlog {
		if err := emit(e); err != nil {
			return err
		}
	}
	if !o.Follow {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
		// The stack rotates the log at 8 MiB: reopen when the path names a
		// new file.
		if st, err := os.Stat(path); err == nil {
			if cur, err := f.Stat(); err == nil && !os.SameFile(st, cur) {
				if err := readAll(false); err != nil {
					return err
				}
				nf, err := os.Open(path)
				if err != nil {
					continue
				}
				f.Close()
				f, r, partial = nf, bufio.NewReader(nf), nil
			}
		}
		if err := readAll(false); err != nil {
			return err
		}
	}
}

// NetworkTest runs a live self-test from inside the guest: with the
// network off, the guest must have no Ethernet interface and no DNS; with
// it on, a name no rule allows must not resolve (egress), a host port not
// opened with allow_host must be refused at once, and each allow_host port
// must connect. Nothing it tries can leave this machine.
func (m *Manager) NetworkTest(ctx context.Context, ref string) (*api.NetworkTestResult, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	p, err := netpolicy.Load(m.networkPath(rec.ID))
	if err != nil {
		return nil, err
	}
	res := &api.NetworkTestResult{Workspace: rec.Name, Mode: string(p.Mode), OK: true}
	run := func(name, want, script string, ok func(code int, out string) bool) error {
		var out bytes.Buffer
		r, err := m.Exec(ctx, ref, ExecOptions{Shell: script, Stdout: &out, Stderr: &out, Timeout: 30 * time.Second})
		if err != nil {
			return err
		}
		c := api.NetworkTestCheck{Name: name, Want: want, Got: fmt.Sprintf("exit %d", r.ExitCode), Detail: strings.TrimSpace(out.String())}
		c.OK = ok(r.ExitCode, c.Detail)
		if !c.OK {
			res.OK = false
		}
		res.Checks = append(res.Checks, c)
		return nil
	}
	exit0 := func(code int, _ string) bool { return code == 0 }
	fails := func(code int, _ string) bool { return code != 0 }
	stackOn := m.hasStack(rec.ID)
	if !stackOn {
		if err := run("no network interface", "only lo in /sys/class/net",
			`for n in /sys/class/net/*; do [ "$(cat $n/type)" = 1 ] && echo "$(basename $n)"; done; true`,
			func(code int, out string) bool { return code == 0 && out == "" }); err != nil {
			return nil, err
		}
		if err := run("DNS fails", "name lookup fails", `getent hosts hearth-selftest.invalid`, fails); err != nil {
			return nil, err
		}
		return res, nil
	}
	// A host port nobody opened: the stack must refuse it at once (RST),
	// never dial it.
	closed := 1
	for slicesContains(p.AllowHost, closed) {
		closed++
	}
	if err := run("host port not opened is refused", "connection refused within 5 s",
		fmt.Sprintf(`timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d' 2>&1; echo "rc=$?"`, netstack.GatewayIP, closed),
		func(_ int, out string) bool { return strings.Contains(out, "refused") }); err != nil {
		return nil, err
	}
	if p.Mode == netpolicy.ModeEgress || !p.Enabled() {
		if err := run("name no rule allows is not resolved", "lookup fails (NXDOMAIN from the stack)",
			`getent hosts hearth-selftest-denied.invalid`, fails); err != nil {
			return nil, err
		}
	}
	for _, port := range p.AllowHost {
		if err := run("allow_host "+strconv.Itoa(port), "connects (needs a listener on the host's 127.0.0.1:"+strconv.Itoa(port)+")",
			fmt.Sprintf(`timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d'`, netpolicy.HostName, port), exit0); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
