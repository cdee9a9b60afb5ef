package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/supervisor"
)

// Published ports are kept in DIR/ports.json and live in the workspace's
// supervisor (see supervisor.Forwarder) while the VM runs: every boot
// publishes them again. Publishing on a stopped workspace is allowed: the
// port is recorded (after checking that its host port is free now) and
// listened on from the next start. Changes take the workspace's lifecycle
// lock (without draining calls: the VM is not touched), so a publish never
// races a start or a stop.

// PublishOptions qualify a publish.
type PublishOptions struct {
	// AllowNonLoopback permits a host address that is not a loopback
	// address (reachable from other machines).
	AllowNonLoopback bool
}

// portRecord is one entry of ports.json.
type portRecord struct {
	supervisor.PortSpec
	// LastError is why the last boot could not listen on it.
	LastError string `json:"last_error,omitempty"`
}

type portsFile struct {
	Ports []portRecord `json:"ports"`
}

func (m *Manager) portsPath(id string) string { return filepath.Join(m.dir(id), "ports.json") }

func (m *Manager) readPorts(id string) ([]portRecord, error) {
	b, err := os.ReadFile(m.portsPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f portsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", m.portsPath(id), err)
	}
	return f.Ports, nil
}

func (m *Manager) writePorts(id string, ps []portRecord) error {
	if ps == nil {
		ps = []portRecord{}
	}
	return atomicfile.WriteJSON(m.portsPath(id), portsFile{Ports: ps}, 0o600)
}

// ParsePublish parses [HOST_ADDR:]HOST_PORT:GUEST_PORT and applies the
// loopback rule.
func ParsePublish(spec string, o PublishOptions) (supervisor.PortSpec, error) {
	p, err := supervisor.ParsePortSpec(spec)
	if err != nil {
		return p, err
	}
	if !p.Loopback() && !o.AllowNonLoopback {
		return p, fmt.Errorf("port %q listens on %s, which is not a loopback address and can be reached from other machines: allow non-loopback addresses (allow_non_loopback) if that is what you want: %w", spec, p.HostAddr, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

func apiPort(p supervisor.PortSpec) api.PublishedPort {
	return api.PublishedPort{HostAddr: p.HostAddr, HostPort: p.HostPort, GuestPort: p.GuestPort}
}

func apiPortStatus(s supervisor.PortStatus) api.PublishedPort {
	out := apiPort(s.PortSpec)
	out.Active, out.Error, out.Connections, out.Open = s.Active, s.Error, s.Connections, s.Open
	return out
}

// conflicts reports whether p's host side overlaps a recorded port: the
// same port on the same address, or on a wildcard address.
func conflicts(recs []portRecord, p supervisor.PortSpec) (portRecord, bool) {
	for _, r := range recs {
		if r.HostPort != p.HostPort {
			continue
		}
		if r.HostAddr == p.HostAddr || isWildcard(r.HostAddr) || isWildcard(p.HostAddr) {
			return r, true
		}
	}
	return portRecord{}, false
}

func isWildcard(addr string) bool { return addr == "0.0.0.0" || addr == "::" }

// PortPublish publishes a host port to a guest port: at once when the
// workspace runs, from its next start when it is stopped.
func (m *Manager) PortPublish(ctx context.Context, ref, spec string, o PublishOptions) (*api.PublishedPort, error) {
	p, err := ParsePublish(spec, o)
	if err != nil {
		return nil, err
	}
	l, err := m.beginLifecycle(ctx, ref, "port publish")
	if err != nil {
		return nil, err
	}
	defer l.release()
	out, err := m.publishLocked(ctx, l.rec, p)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// publishLocked publishes p (lifecycle lock held).
func (m *Manager) publishLocked(ctx context.Context, rec *record, p supervisor.PortSpec) (api.PublishedPort, error) {
	recs, err := m.readPorts(rec.ID)
	if err != nil {
		return api.PublishedPort{}, err
	}
	if old, dup := conflicts(recs, p); dup && p.HostPort != 0 {
		return api.PublishedPort{}, fmt.Errorf("host port %s is already published by workspace %s (to guest port %d): unpublish it first: %w",
			p.HostKey(), rec.Name, old.GuestPort, errdefs.ErrAlreadyExists)
	}
	if other := m.portOwner(rec.ID, p); other != "" {
		return api.PublishedPort{}, fmt.Errorf("host port %s is already published by workspace %s: pick another host port: %w", p.HostKey(), other, errdefs.ErrAlreadyExists)
	}
	var out api.PublishedPort
	if vs := m.vmState(rec.ID); vs.state == api.StateRunning {
		sts, err := supervisor.PortsCall(ctx, m.runDir(rec.ID), "publish", p)
		if err != nil {
			return api.PublishedPort{}, fmt.Errorf("publish %s on workspace %s: %w", p, rec.Name, err)
		}
		p = sts[0].PortSpec // the chosen port when 0 was asked for
		out = apiPortStatus(sts[0])
	} else {
		if p.HostPort == 0 {
			return api.PublishedPort{}, fmt.Errorf("host port 0 (any free port) needs a running workspace: start %s first, or name the host port: %w", rec.Name, errdefs.ErrFailedPrecondition)
		}
		if err := supervisor.CheckHostPortFree(p); err != nil {
			return api.PublishedPort{}, err
		}
		out = apiPort(p)
	}
	recs = append(recs, portRecord{PortSpec: p})
	if err := m.writePorts(rec.ID, recs); err != nil {
		if out.Active {
			supervisor.PortsCall(context.WithoutCancel(ctx), m.runDir(rec.ID), "unpublish", p)
		}
		return api.PublishedPort{}, err
	}
	return out, nil
}

// portOwner names another workspace that records p's host port ("" when
// none): two workspaces must not both claim it, or only the first to boot
// would get it.
func (m *Manager) portOwner(self string, p supervisor.PortSpec) string {
	rs, err := m.records()
	if err != nil {
		return ""
	}
	for _, r := range rs {
		if r.ID == self {
			continue
		}
		recs, _ := m.readPorts(r.ID)
		if _, dup := conflicts(recs, p); dup {
			return r.Name
		}
	}
	return ""
}

// PortList returns a workspace's published ports, with their live state
// while it runs.
func (m *Manager) PortList(ctx context.Context, ref string) ([]api.PublishedPort, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	recs, err := m.readPorts(rec.ID)
	if err != nil {
		return nil, err
	}
	live := map[string]supervisor.PortStatus{}
	running := m.vmState(rec.ID).state == api.StateRunning
	if running {
		sts, err := supervisor.PortsCall(ctx, m.runDir(rec.ID), "list", supervisor.PortSpec{})
		if err != nil {
			return nil, fmt.Errorf("list ports of %s: %w", rec.Name, err)
		}
		for _, s := range sts {
			live[s.HostKey()] = s
		}
	}
	out := make([]api.PublishedPort, 0, len(recs))
	for _, r := range recs {
		if s, ok := live[r.HostKey()]; ok {
			out = append(out, apiPortStatus(s))
			continue
		}
		p := apiPort(r.PortSpec)
		if running {
			p.Error = r.LastError
			if p.Error == "" {
				p.Error = "not listening"
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// PortUnpublish stops publishing a host port. hostSpec is
// [HOST_ADDR:]HOST_PORT, or the full spec as published.
func (m *Manager) PortUnpublish(ctx context.Context, ref, hostSpec string) (*api.PublishedPort, error) {
	l, err := m.beginLifecycle(ctx, ref, "port unpublish")
	if err != nil {
		return nil, err
	}
	defer l.release()
	rec := l.rec
	recs, err := m.readPorts(rec.ID)
	if err != nil {
		return nil, err
	}
	idx := matchPort(recs, hostSpec)
	if idx < 0 {
		have := make([]string, len(recs))
		for i, r := range recs {
			have[i] = r.String()
		}
		list := "none"
		if len(have) > 0 {
			list = strings.Join(have, ", ")
		}
		return nil, fmt.Errorf("workspace %s publishes no host port %q (published: %s): %w", rec.Name, hostSpec, list, errdefs.ErrNotFound)
	}
	r := recs[idx]
	out := apiPort(r.PortSpec)
	if m.vmState(rec.ID).state == api.StateRunning {
		if sts, err := supervisor.PortsCall(ctx, m.runDir(rec.ID), "unpublish", r.PortSpec); err == nil {
			out = apiPortStatus(sts[0])
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return nil, fmt.Errorf("unpublish %s on workspace %s: %w", r, rec.Name, err)
		}
	}
	recs = append(recs[:idx], recs[idx+1:]...)
	if err := m.writePorts(rec.ID, recs); err != nil {
		return nil, err
	}
	out.Active = false
	return &out, nil
}

// matchPort finds the record a user's spec names: HOST_PORT,
// HOST_ADDR:HOST_PORT, or HOST_ADDR:HOST_PORT:GUEST_PORT.
func matchPort(recs []portRecord, spec string) int {
	if full, err := supervisor.ParsePortSpec(spec); err == nil {
		for i, r := range recs {
			if r.PortSpec == full {
				return i
			}
		}
	}
	// As a host side: [ADDR:]PORT, default address 127.0.0.1.
	if hp, err := supervisor.ParsePortSpec(spec + ":1"); err == nil {
		explicitAddr := strings.Contains(spec, ":")
		for i, r := range recs {
			if r.HostPort == hp.HostPort && (r.HostAddr == hp.HostAddr || !explicitAddr) {
				return i
			}
		}
	}
	return -1
}

// bootPorts publishes the recorded ports on a freshly booted workspace.
// A port whose host side is taken is kept, with the reason, and shown by
// PortList; it does not fail the boot.
func (m *Manager) bootPorts(ctx context.Context, rec *record) {
	recs, err := m.readPorts(rec.ID)
	if err != nil || len(recs) == 0 {
		if err != nil {
			m.log.Warn("read published ports", "id", rec.ID, "err", err)
		}
		return
	}
	changed := false
	for i := range recs {
		msg := ""
		if _, err := supervisor.PortsCall(ctx, m.runDir(rec.ID), "publish", recs[i].PortSpec); err != nil {
			msg = err.Error()
			m.log.Warn("cannot publish a recorded port", "id", rec.ID, "port", recs[i].String(), "err", err)
		}
		if recs[i].LastError != msg {
			recs[i].LastError, changed = msg, true
		}
	}
	if changed {
		m.writePorts(rec.ID, recs)
	}
}

// createPorts checks the ports given at create (each must parse, be
// allowed, be distinct and have a free host port) and records them; the
// first boot publishes them.
func (m *Manager) createPorts(id string, specs []string, o PublishOptions) error {
	if len(specs) == 0 {
		return nil
	}
	var recs []portRecord
	for _, s := range specs {
		p, err := ParsePublish(s, o)
		if err != nil {
			return err
		}
		if p.HostPort == 0 {
			return fmt.Errorf("port %q: name the host port at create (0, any free port, is for running workspaces): %w", s, errdefs.ErrInvalidArgument)
		}
		if _, dup := conflicts(recs, p); dup {
			return fmt.Errorf("host port %s is given twice: %w", p.HostKey(), errdefs.ErrInvalidArgument)
		}
		if other := m.portOwner(id, p); other != "" {
			return fmt.Errorf("host port %s is already published by workspace %s: pick another host port: %w", p.HostKey(), other, errdefs.ErrAlreadyExists)
		}
		if err := supervisor.CheckHostPortFree(p); err != nil {
			return err
		}
		recs = append(recs, portRecord{PortSpec: p})
	}
	return m.writePorts(id, recs)
}
