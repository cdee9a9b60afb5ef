package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/secrets"
	"github.com/hearthvm/hearth/internal/supervisor"
)

// Services run in the guest, supervised by the agent (see package agent
// and docs/services.md). Their definitions are kept on the host in
// DIR/services.json, so every boot registers them again: a service runs
// again after a stop and start of its workspace, unless it was stopped on
// request, in which case it comes back stopped. Changes to the definitions
// take DIR/services.lock.

// DefaultServiceWait is how long a start with Wait waits for readiness
// when no timeout is given.
const DefaultServiceWait = 60 * time.Second

// ServiceStartOptions define and start a service.
type ServiceStartOptions struct {
	Name string
	// Argv is the command; it runs directly (use sh -c for shell syntax).
	Argv []string
	Cwd  string
	// Env entries "K=V" are added to the guest's default environment.
	Env []string
	// Ready are readiness probes (see guestproto.ParseProbe); all must pass.
	Ready []string
	// Restart is no (default), on-failure or always.
	Restart string
	// Back-off and start limit (0: the defaults, 100 ms doubling to 30 s,
	// and 5 starts in 10 s).
	RestartDelay       time.Duration
	RestartMaxDelay    time.Duration
	StartLimitBurst    int
	StartLimitInterval time.Duration
	// Wait waits for the service to be ready (or to end) before returning,
	// at most WaitTimeout (default DefaultServiceWait).
	Wait        bool
	WaitTimeout time.Duration
	// Publish lists ports to publish with the service,
	// [HOST_ADDR:]HOST_PORT:GUEST_PORT.
	Publish []string
	PublishOptions
}

// ServiceStopOptions qualify a stop.
type ServiceStopOptions struct {
	// Signal is sent first (default TERM); Timeout later SIGKILL (default 10 s).
	Signal  string
	Timeout time.Duration
}

// ServiceLogsOptions select service output.
type ServiceLogsOptions struct {
	// Tail is the number of last lines to show (0: all that is kept).
	Tail int
	// Follow keeps copying new output until the service ends for good or
	// ctx ends.
	Follow bool
}

type servicesFile struct {
	Services []guestproto.ServiceSpec `json:"services"`
}

func (m *Manager) servicesPath(id string) string { return filepath.Join(m.dir(id), "services.json") }

func (m *Manager) readServices(id string) ([]guestproto.ServiceSpec, error) {
	b, err := os.ReadFile(m.servicesPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f servicesFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", m.servicesPath(id), err)
	}
	return f.Services, nil
}

func (m *Manager) writeServices(id string, specs []guestproto.ServiceSpec) error {
	if specs == nil {
		specs = []guestproto.ServiceSpec{}
	}
	return atomicfile.WriteJSON(m.servicesPath(id), servicesFile{Services: specs}, 0o600)
}

func (m *Manager) lockServices(ctx context.Context, id string) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return lock(ctx, filepath.Join(m.dir(id), "services.lock"))
}

// updateService applies fn to the recorded definition of name (under the
// services lock). A definition that is not recorded is left alone.
func (m *Manager) updateService(ctx context.Context, id, name string, fn func(specs []guestproto.ServiceSpec, i int) []guestproto.ServiceSpec) error {
	unlock, err := m.lockServices(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	specs, err := m.readServices(id)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(specs, func(s guestproto.ServiceSpec) bool { return s.Name == name })
	if i < 0 {
		return nil
	}
	return m.writeServices(id, fn(specs, i))
}

func checkSpec(spec *guestproto.ServiceSpec) error {
	if err := guestproto.CheckServiceSpec(spec); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// apiService converts the agent's view of a service. Text the service's
// own output can reach (the exit tail, messages, probe details) goes
// through red: secret values come out as [REDACTED:NAME], as in its logs.
func apiService(red *secrets.Redactor, in *guestproto.ServiceInfo) api.Service {
	s := api.Service{
		Name: in.Name, State: in.State, PID: in.PID, Restarts: in.Restarts,
		StartedAt: in.StartedAt, ReadyAt: in.ReadyAt, NextStartAt: in.NextStartAt, Message: red.String(in.Message),
	}
	specFields(&s, &in.Spec)
	for _, p := range in.Probes {
		s.Probes = append(s.Probes, api.ServiceProbe{Probe: p.Probe, OK: p.OK, Passing: p.Passing, Failures: p.Failures, Checks: p.Checks, CheckedAt: p.CheckedAt, Detail: red.String(p.Detail)})
	}
	if e := in.LastExit; e != nil {
		s.LastExit = &api.ServiceExit{ExitCode: e.ExitCode, Signal: e.Signal, At: e.At, Tail: red.String(e.Tail), Message: red.String(e.Message)}
	}
	return s
}

func specFields(s *api.Service, spec *guestproto.ServiceSpec) {
	s.Argv, s.Cwd, s.Env, s.Ready, s.Restart = spec.Argv, spec.Cwd, spec.Env, spec.Ready, spec.Restart
	if s.Restart == "" {
		s.Restart = guestproto.RestartNo
	}
}

// stoppedService describes a defined service whose workspace is not
// running.
func stoppedService(spec *guestproto.ServiceSpec, wsState api.State) api.Service {
	s := api.Service{Name: spec.Name, State: api.ServiceStopped, Message: fmt.Sprintf("the workspace is %s", wsState)}
	if wsState == api.StateRunning {
		s.Message = "defined, but not registered in the guest"
	}
	specFields(&s, spec)
	return s
}

func apiWait(red *secrets.Redactor, w *guestproto.ServiceWaitResult) *api.ServiceWait {
	out := &api.ServiceWait{Result: w.Result, Service: apiService(red, &w.Service), Tail: red.String(w.Tail)}
	if w.Result == guestproto.WaitExited || w.Result == guestproto.WaitStopped {
		if e := w.Service.LastExit; e != nil {
			code := e.ExitCode
			out.ExitCode, out.Signal = &code, e.Signal
			if out.Tail == "" {
				out.Tail = red.String(e.Tail)
			}
		}
	}
	return out
}

// serviceClient resolves a workspace and returns its agent client (an
// error unless it runs).
func (m *Manager) serviceClient(ref string) (*record, *guest.Client, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	c, err := m.client(rec)
	if err != nil {
		return rec, nil, err
	}
	return rec, c, nil
}

// ServiceStart defines a service in a running workspace, starts it, and
// publishes the given ports. With Wait it then waits for readiness and
// returns the typed outcome (only Result "ready" is success). Nothing is
// kept when it fails: no definition, no port.
func (m *Manager) ServiceStart(ctx context.Context, ref string, o ServiceStartOptions) (*api.ServiceStartResult, error) {
	spec := &guestproto.ServiceSpec{
		Name: o.Name, Argv: o.Argv, Cwd: o.Cwd, Env: o.Env, Ready: o.Ready, Restart: o.Restart,
		RestartDelayMS: o.RestartDelay.Milliseconds(), RestartMaxDelayMS: o.RestartMaxDelay.Milliseconds(),
		StartLimitBurst: o.StartLimitBurst, StartLimitIntervalMS: o.StartLimitInterval.Milliseconds(),
	}
	if err := checkSpec(spec); err != nil {
		return nil, err
	}
	if o.WaitTimeout < 0 {
		return nil, fmt.Errorf("wait timeout %s is negative: %w", o.WaitTimeout, errdefs.ErrInvalidArgument)
	}
	var ports []supervisor.PortSpec
	for _, s := range o.Publish {
		p, err := ParsePublish(s, o.PublishOptions)
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	rec, c, err := m.serviceClient(ref)
	if err != nil {
		return nil, err
	}
	unlock, err := m.lockServices(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	specs, err := m.readServices(rec.ID)
	if err != nil {
		unlock()
		return nil, err
	}
	if slices.ContainsFunc(specs, func(s guestproto.ServiceSpec) bool { return s.Name == o.Name }) {
		unlock()
		state := "defined"
		if in, err := c.ServiceShow(ctx, o.Name); err == nil {
			state = in.State
		}
		return nil, fmt.Errorf("workspace %s already has a service named %q (state %s): start it again with service_restart, or remove it with service_remove first: %w",
			rec.Name, o.Name, state, errdefs.ErrAlreadyExists)
	}
	res := &api.ServiceStartResult{}
	// Ports first: they are the part that most often cannot be had (a
	// host port in use), and they are undone if the service fails to
	// start.
	var published []supervisor.PortSpec
	undoPorts := func() {
		for _, p := range published {
			m.PortUnpublish(context.WithoutCancel(ctx), rec.ID, p.String())
		}
	}
	for _, p := range ports {
		pp, err := m.publishPort(ctx, rec.ID, p)
		if err != nil {
			undoPorts()
			unlock()
			return nil, err
		}
		res.Ports = append(res.Ports, pp)
		published = append(published, supervisor.PortSpec{HostAddr: pp.HostAddr, HostPort: pp.HostPort, GuestPort: pp.GuestPort})
	}
	// The ports were published under the lifecycle lock; the start itself
	// is a call, which a stop of the workspace waits for.
	_, c, release, err := m.serviceCall(ctx, rec.ID, "service start")
	var in *guestproto.ServiceInfo
	if err == nil {
		in, err = c.ServiceStart(ctx, spec)
		release()
	}
	if err != nil {
		undoPorts()
		unlock()
		return nil, fmt.Errorf("start service %s in workspace %s: %w", o.Name, rec.Name, err)
	}
	specs = append(specs, *spec)
	err = m.writeServices(rec.ID, specs)
	unlock()
	if err != nil {
		c.ServiceRemove(context.WithoutCancel(ctx), o.Name)
		undoPorts()
		return nil, fmt.Errorf("record service %s: %w", o.Name, err)
	}
	res.Service = apiService(m.redactor(rec), in)
	if o.Wait {
		w, err := m.serviceWait(ctx, m.redactor(rec), c, o.Name, o.WaitTimeout)
		if err != nil {
			return res, err
		}
		res.Wait = w
		res.Service = w.Service
	}
	return res, nil
}

// publishPort publishes one port under the lifecycle lock.
func (m *Manager) publishPort(ctx context.Context, id string, p supervisor.PortSpec) (api.PublishedPort, error) {
	l, err := m.beginLifecycle(ctx, id, "port publish")
	if err != nil {
		return api.PublishedPort{}, err
	}
	defer l.release()
	return m.publishLocked(ctx, l.rec, p)
}

// serviceCall takes a call's hold on a running workspace (see locks.go)
// for a service operation that changes the guest, and returns its agent
// client.
func (m *Manager) serviceCall(ctx context.Context, ref, op string) (*record, *guest.Client, func(), error) {
	rec, release, err := m.beginCall(ctx, ref, op)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := m.client(rec)
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	return rec, c, release, nil
}

func (m *Manager) serviceWait(ctx context.Context, red *secrets.Redactor, c *guest.Client, name string, timeout time.Duration) (*api.ServiceWait, error) {
	if timeout <= 0 {
		timeout = DefaultServiceWait
	}
	// The call outlives the agent's wait by a margin, so the typed
	// timed_out (with the tail) comes from the agent.
	wctx, cancel := context.WithTimeout(ctx, timeout+30*time.Second)
	defer cancel()
	w, err := c.ServiceWait(wctx, name, timeout)
	if err != nil {
		return nil, err
	}
	return apiWait(red, w), nil
}

// ServiceWait waits up to timeout (default DefaultServiceWait) for a
// service to be ready or to end, and returns the typed outcome.
func (m *Manager) ServiceWait(ctx context.Context, ref, name string, timeout time.Duration) (*api.ServiceWait, error) {
	if timeout < 0 {
		return nil, fmt.Errorf("wait timeout %s is negative: %w", timeout, errdefs.ErrInvalidArgument)
	}
	rec, c, err := m.serviceClient(ref)
	if err != nil {
		return nil, err
	}
	return m.serviceWait(ctx, m.redactor(rec), c, name, timeout)
}

// ServiceList returns a workspace's services, sorted by name. A stopped
// workspace lists its defined services as stopped.
func (m *Manager) ServiceList(ctx context.Context, ref string) ([]api.Service, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	specs, err := m.readServices(rec.ID)
	if err != nil {
		return nil, err
	}
	vs := m.vmState(rec.ID)
	live := map[string]*guestproto.ServiceInfo{}
	if vs.state == api.StateRunning {
		c, err := m.client(rec)
		if err != nil {
			return nil, err
		}
		ins, err := c.ServiceList(ctx)
		if err != nil {
			return nil, err
		}
		for i := range ins {
			live[ins[i].Name] = &ins[i]
		}
	}
	out := make([]api.Service, 0, max(len(specs), len(live)))
	for i := range specs {
		if in, ok := live[specs[i].Name]; ok {
			out = append(out, apiService(m.redactor(rec), in))
			delete(live, specs[i].Name)
			continue
		}
		out = append(out, stoppedService(&specs[i], vs.state))
	}
	for _, in := range live { // registered in the guest but not recorded (should not happen)
		out = append(out, apiService(m.redactor(rec), in))
	}
	slices.SortFunc(out, func(a, b api.Service) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out, nil
}

// ServiceShow returns one service.
func (m *Manager) ServiceShow(ctx context.Context, ref, name string) (*api.Service, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	specs, err := m.readServices(rec.ID)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(specs, func(s guestproto.ServiceSpec) bool { return s.Name == name })
	vs := m.vmState(rec.ID)
	if vs.state == api.StateRunning {
		c, err := m.client(rec)
		if err != nil {
			return nil, err
		}
		in, err := c.ServiceShow(ctx, name)
		if err == nil {
			s := apiService(m.redactor(rec), in)
			return &s, nil
		}
		if !errors.Is(err, errdefs.ErrNotFound) || i < 0 {
			return nil, m.noService(rec, name, err)
		}
	}
	if i < 0 {
		return nil, m.noService(rec, name, nil)
	}
	s := stoppedService(&specs[i], vs.state)
	return &s, nil
}

func (m *Manager) noService(rec *record, name string, err error) error {
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return fmt.Errorf("workspace %s has no service named %q (service_list lists them): %w", rec.Name, name, errdefs.ErrNotFound)
}

// ServiceLogs copies a service's kept output to w: the last Tail lines
// and, with Follow, new output until the service ends for good or ctx
// ends.
func (m *Manager) ServiceLogs(ctx context.Context, ref, name string, o ServiceLogsOptions, w io.Writer) error {
	if o.Tail < 0 {
		return fmt.Errorf("tail %d: want 0 (all) or more lines: %w", o.Tail, errdefs.ErrInvalidArgument)
	}
	rec, c, err := m.serviceClient(ref)
	if err != nil {
		return err
	}
	// Secret values the service printed come out as [REDACTED:NAME].
	red := m.redactor(rec)
	rw := red.NewWriter(w)
	if _, err := c.ServiceLogs(ctx, name, o.Tail, o.Follow, rw); err != nil {
		return red.Error(m.noService(rec, name, err))
	}
	return rw.Flush()
}

// ServiceStop stops a service and keeps it stopped (also across boots).
// On a stopped workspace it only records that.
func (m *Manager) ServiceStop(ctx context.Context, ref, name string, o ServiceStopOptions) (*api.Service, error) {
	if o.Timeout < 0 {
		return nil, fmt.Errorf("stop timeout %s is negative: %w", o.Timeout, errdefs.ErrInvalidArgument)
	}
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	specs, err := m.readServices(rec.ID)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(specs, func(s guestproto.ServiceSpec) bool { return s.Name == name })
	var out api.Service
	if vs := m.vmState(rec.ID); vs.state == api.StateRunning {
		_, c, release, err := m.serviceCall(ctx, rec.ID, "service stop")
		if err != nil {
			return nil, err
		}
		tctx, cancel := context.WithTimeout(ctx, max(o.Timeout, guestproto.DefaultStopTimeout)+30*time.Second)
		in, err := c.ServiceStop(tctx, name, o.Signal, o.Timeout)
		cancel()
		release()
		if err != nil {
			return nil, m.noService(rec, name, err)
		}
		out = apiService(m.redactor(rec), in)
	} else {
		if i < 0 {
			return nil, m.noService(rec, name, nil)
		}
		out = stoppedService(&specs[i], vs.state)
	}
	err = m.updateService(ctx, rec.ID, name, func(s []guestproto.ServiceSpec, i int) []guestproto.ServiceSpec {
		s[i].Stopped = true
		return s
	})
	return &out, err
}

// ServiceRestart stops a service if it runs and starts it again (also a
// stopped, exited or failed one), with a fresh start limit.
func (m *Manager) ServiceRestart(ctx context.Context, ref, name string) (*api.Service, error) {
	rec, c, release, err := m.serviceCall(ctx, ref, "service restart")
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, guestproto.DefaultStopTimeout+30*time.Second)
	in, err := c.ServiceRestart(tctx, name)
	cancel()
	release()
	if err != nil {
		return nil, m.noService(rec, name, err)
	}
	if err := m.updateService(ctx, rec.ID, name, func(s []guestproto.ServiceSpec, i int) []guestproto.ServiceSpec {
		s[i].Stopped = false
		return s
	}); err != nil {
		return nil, err
	}
	out := apiService(m.redactor(rec), in)
	return &out, nil
}

// ServiceRemove stops a service and deletes its definition. On a stopped
// workspace it deletes the definition only.
func (m *Manager) ServiceRemove(ctx context.Context, ref, name string) (*api.Service, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	specs, err := m.readServices(rec.ID)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(specs, func(s guestproto.ServiceSpec) bool { return s.Name == name })
	var out *api.Service
	vs := m.vmState(rec.ID)
	if vs.state == api.StateRunning {
		_, c, release, err := m.serviceCall(ctx, rec.ID, "service remove")
		if err != nil {
			return nil, err
		}
		tctx, cancel := context.WithTimeout(ctx, guestproto.DefaultStopTimeout+30*time.Second)
		in, err := c.ServiceRemove(tctx, name)
		cancel()
		release()
		switch {
		case err == nil:
			s := apiService(m.redactor(rec), in)
			out = &s
		case errors.Is(err, errdefs.ErrNotFound) && i >= 0:
		default:
			return nil, m.noService(rec, name, err)
		}
	}
	if i < 0 && out == nil {
		return nil, m.noService(rec, name, nil)
	}
	if out == nil {
		s := stoppedService(&specs[i], vs.state)
		out = &s
	}
	err = m.updateService(ctx, rec.ID, name, func(s []guestproto.ServiceSpec, i int) []guestproto.ServiceSpec {
		return slices.Delete(s, i, i+1)
	})
	out.State = api.ServiceStopped
	return out, err
}

// bootServices registers the recorded services on a freshly booted
// workspace: started, or stopped when they were stopped on request.
func (m *Manager) bootServices(ctx context.Context, rec *record, c *guest.Client) {
	specs, err := m.readServices(rec.ID)
	if err != nil {
		m.log.Warn("read service definitions", "id", rec.ID, "err", err)
		return
	}
	for i := range specs {
		if _, err := c.ServiceStart(ctx, &specs[i]); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
			m.log.Warn("cannot register a service at boot", "id", rec.ID, "service", specs[i].Name, "err", err)
		}
	}
}

// afterBoot brings a freshly booted workspace's published ports and
// services back. It never fails the boot: what cannot be had is reported
// by PortList and ServiceList.
func (m *Manager) afterBoot(ctx context.Context, rec *record, st *supervisor.Status) {
	m.bootPorts(ctx, rec)
	m.bootServices(ctx, rec, &guest.Client{Socket: st.AgentSocket})
}
