package cli

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/spf13/cobra"
)

func init() { workspaceCommands = append(workspaceCommands, newWSService, newWSPort) }

func newWSService(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Long-running services with typed readiness and restart policies",
		Long: `A service is a named long-running process (a dev server, a database, a worker)
that the guest agent supervises: it survives the CLI exiting, keeps its output, is
restarted by its policy, and is started again when the workspace boots. Its state is
starting, ready, unready, exited, failed or stopped, and readiness is typed: a probe
names what "ready" means, and a port probe only counts a socket the service's own
processes listen on. See docs/services.md.

Probes (--ready, repeatable; all must pass):
  port:N                       a LISTEN socket on TCP port N owned by the service
  http:[PORT]/PATH[=RANGES]    GET http://127.0.0.1:PORT/PATH answers 200-399 (or RANGES)
  log:REGEX                    a line of the service's output matches
  file:PATH                    PATH exists
  cmd:COMMAND                  /bin/sh -c COMMAND exits 0
  notify                       the service sends READY=1 to $NOTIFY_SOCKET (sd_notify)
Options go in braces after the kind: port{interval=200ms,retries=5,start_period=1m,timeout=2s}:8000`,
		Example: `  hearth workspace service start demo web --ready port:8000 --wait --publish 8080:8000 -- python3 -m http.server 8000
  hearth workspace service start demo db --restart on-failure --ready 'log:ready to accept connections' --wait -- postgres -D /var/lib/pg
  hearth workspace service logs demo web --tail 20 --follow
  hearth workspace service list demo`,
	}
	cmd.AddCommand(newServiceStart(g), newServiceList(g), newServiceShow(g), newServiceLogs(g), newServiceStop(g), newServiceRestart(g), newServiceRm(g), newServiceWait(g))
	return cmd
}

func newServiceStart(g *globals) *cobra.Command {
	var o hearth.ServiceStartOptions
	cmd := &cobra.Command{
		Use:   "start WS NAME [flags] -- CMD [ARG...]",
		Short: "Define and start a service",
		Long: `Define a service and start it. The command runs directly (use sh -c for shell
syntax). Without --ready the service is ready as soon as its process started; give a
probe to know when it really serves. With --wait the command waits for readiness and
exits 0 only when the service is ready: an exited service prints its exit code and
the tail of its output and exits 1, and a timeout exits 124. --publish makes a guest
port reachable on the host (see 'hearth workspace port').`,
		Args: cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash != 2 {
				return fmt.Errorf("usage: hearth workspace service start WS NAME [flags] -- CMD [ARG...] (put the command after `--`): %w", errdefs.ErrInvalidArgument)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if o.Env, err = parseEnv(o.Env); err != nil {
				return err
			}
			o.Argv = args[2:]
			res, err := c.Workspace(args[0]).ServiceStart(cmd.Context(), args[1], o)
			if err != nil {
				return err
			}
			if g.json {
				if err := g.printJSON(res); err != nil {
					return err
				}
			} else {
				for _, p := range res.Ports {
					fmt.Fprintf(g.stderr, "hearth: published %s\n", portLine(&p))
				}
			}
			if res.Wait != nil {
				return g.finishWait(res.Wait)
			}
			if !g.json {
				fmt.Fprintln(g.stdout, serviceLine(&res.Service))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Cwd, "cwd", "/workspace", "working directory in the guest")
	f.StringArrayVar(&o.Env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringArrayVar(&o.Ready, "ready", nil, "readiness probe (repeatable; all must pass), e.g. port:8000 or 'log:listening on'")
	f.StringVar(&o.Restart, "restart", "no", "restart policy: no, on-failure or always")
	f.IntVar(&o.StartLimitBurst, "start-limit-burst", 5, "starts allowed within --start-limit-interval; one more restart makes the service failed")
	f.DurationVar(&o.StartLimitInterval, "start-limit-interval", 10*time.Second, "the start limit's window")
	f.BoolVar(&o.Wait, "wait", false, "wait until the service is ready (exit 0) or has ended (exit 1)")
	f.DurationVar(&o.WaitTimeout, "wait-timeout", time.Minute, "with --wait, give up after this long (exit 124)")
	f.StringArrayVar(&o.Publish, "publish", nil, "publish [HOST_ADDR:]HOST_PORT:GUEST_PORT on the host (repeatable)")
	f.BoolVar(&o.AllowNonLoopback, "allow-non-loopback", false, "allow a --publish host address other than loopback (reachable from other machines)")
	return cmd
}

// finishWait prints a wait's outcome and turns anything but ready into a
// non-zero exit.
func (g *globals) finishWait(w *api.ServiceWait) error {
	if g.json {
		if w.Result == api.WaitReady {
			return nil
		}
	} else if w.Result == api.WaitReady {
		fmt.Fprintln(g.stdout, serviceLine(&w.Service))
		return nil
	}
	if !g.json {
		switch w.Result {
		case api.WaitExited, api.WaitStopped:
			how := "exited"
			if w.Service.State == api.ServiceFailed {
				how = "failed"
			}
			if w.ExitCode != nil {
				how += fmt.Sprintf(" with code %d", *w.ExitCode)
			}
			if w.Signal != "" {
				how += " (SIG" + w.Signal + ")"
			}
			fmt.Fprintf(g.stderr, "hearth: service %s is not ready: %s", w.Service.Name, how)
		case api.WaitTimedOut:
			fmt.Fprintf(g.stderr, "hearth: service %s is not ready after the wait: it is %s", w.Service.Name, w.Service.State)
		}
		if w.Service.Message != "" {
			fmt.Fprintf(g.stderr, " (%s)", w.Service.Message)
		}
		fmt.Fprintln(g.stderr)
		if t := strings.TrimRight(w.Tail, "\n"); t != "" {
			fmt.Fprintf(g.stderr, "hearth: the end of its output:\n%s\n", indentLines(t))
		}
	}
	if w.Result == api.WaitTimedOut {
		return &exitError{code: 124}
	}
	return &exitError{code: 1}
}

func indentLines(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

func serviceLine(s *api.Service) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", s.Name, s.State)
	if s.PID != 0 {
		fmt.Fprintf(&b, " pid %d", s.PID)
	}
	if s.Restarts > 0 {
		fmt.Fprintf(&b, " restarts %d", s.Restarts)
	}
	if s.LastExit != nil && s.PID == 0 {
		if s.LastExit.Signal != "" {
			fmt.Fprintf(&b, " (SIG%s)", s.LastExit.Signal)
		} else {
			fmt.Fprintf(&b, " (exit %d)", s.LastExit.ExitCode)
		}
	}
	if s.Message != "" {
		fmt.Fprintf(&b, ": %s", s.Message)
	}
	return b.String()
}

func newServiceList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list WS",
		Short: "List services",
		Args:  exactArgs(1, "WS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.Workspace(args[0]).ServiceList(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(api.ServiceList{Services: nonNilList(l)})
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tPID\tRESTARTS\tREADY\tCOMMAND")
			for _, s := range l {
				pid := "-"
				if s.PID != 0 {
					pid = fmt.Sprint(s.PID)
				}
				ready := strings.Join(s.Ready, " ")
				if ready == "" {
					ready = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.State, pid, s.Restarts, ready, strings.Join(s.Argv, " "))
			}
			return tw.Flush()
		},
	}
}

func nonNilList[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

func newServiceShow(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show WS NAME",
		Short: "Show a service: state, probes, last exit",
		Args:  exactArgs(2, "WS NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.Workspace(args[0]).ServiceShow(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(s)
			}
			g.printService(s)
			return nil
		},
	}
}

func (g *globals) printService(s *api.Service) {
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", s.Name)
	fmt.Fprintf(tw, "state:\t%s\n", s.State)
	if s.Message != "" {
		fmt.Fprintf(tw, "message:\t%s\n", s.Message)
	}
	if s.PID != 0 {
		fmt.Fprintf(tw, "pid:\t%d\n", s.PID)
	}
	fmt.Fprintf(tw, "command:\t%s\n", strings.Join(s.Argv, " "))
	if s.Cwd != "" {
		fmt.Fprintf(tw, "cwd:\t%s\n", s.Cwd)
	}
	fmt.Fprintf(tw, "restart:\t%s (restarts %d)\n", s.Restart, s.Restarts)
	if s.StartedAt != nil {
		fmt.Fprintf(tw, "started:\t%s\n", s.StartedAt.Local().Format(time.RFC3339))
	}
	if s.ReadyAt != nil {
		fmt.Fprintf(tw, "ready since:\t%s\n", s.ReadyAt.Local().Format(time.RFC3339))
	}
	for _, p := range s.Probes {
		mark := "fail"
		if p.Passing {
			mark = "pass"
		}
		fmt.Fprintf(tw, "probe %s:\t%s, %d checks: %s\n", p.Probe, mark, p.Checks, p.Detail)
	}
	if len(s.Probes) == 0 {
		for _, r := range s.Ready {
			fmt.Fprintf(tw, "probe %s:\tnot running\n", r)
		}
	}
	tw.Flush()
	if e := s.LastExit; e != nil {
		how := fmt.Sprintf("exit code %d", e.ExitCode)
		if e.Signal != "" {
			how = "killed by SIG" + e.Signal
		}
		fmt.Fprintf(g.stdout, "last exit:  %s at %s\n", how, e.At.Local().Format(time.RFC3339))
		if t := strings.TrimRight(e.Tail, "\n"); t != "" {
			fmt.Fprintf(g.stdout, "%s\n", indentLines(t))
		}
	}
}

func newServiceLogs(g *globals) *cobra.Command {
	var o hearth.ServiceLogsOptions
	cmd := &cobra.Command{
		Use:   "logs WS NAME",
		Short: "Print a service's output (stdout and stderr as written)",
		Long: `Print a service's output, kept by the guest agent (the last 1 MiB). --tail N prints
the last N lines; --follow keeps printing new output until the service ends or
Ctrl-C. With --json the output comes as one object (not with --follow).`,
		Args: exactArgs(2, "WS NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if o.Follow {
				var stop func()
				ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
			}
			if g.json {
				if o.Follow {
					return fmt.Errorf("--follow streams raw output: leave out --json: %w", errdefs.ErrInvalidArgument)
				}
				out, err := c.Invoke(ctx, "service_logs", &api.ServiceLogsRequest{Workspace: args[0], Service: args[1], Tail: o.Tail}, hearth.Streams{})
				if err != nil {
					return err
				}
				return g.printJSON(out)
			}
			return c.Workspace(args[0]).ServiceLogs(ctx, args[1], o, g.stdout)
		},
	}
	cmd.Flags().IntVar(&o.Tail, "tail", 0, "print only the last N lines (0: all that is kept)")
	cmd.Flags().BoolVar(&o.Follow, "follow", false, "keep printing new output until the service ends")
	return cmd
}

func newServiceStop(g *globals) *cobra.Command {
	var o hearth.ServiceStopOptions
	cmd := &cobra.Command{
		Use:   "stop WS NAME",
		Short: "Stop a service (it stays stopped, also across boots)",
		Args:  exactArgs(2, "WS NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.Workspace(args[0]).ServiceStop(cmd.Context(), args[1], o)
			return g.printServiceResult(s, err)
		},
	}
	cmd.Flags().StringVar(&o.Signal, "signal", "TERM", "first signal: TERM, INT, HUP, QUIT, USR1, USR2 or KILL")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 10*time.Second, "SIGKILL what is left after this long")
	return cmd
}

func (g *globals) printServiceResult(s *api.Service, err error) error {
	if err != nil {
		return err
	}
	if g.json {
		return g.printJSON(s)
	}
	fmt.Fprintln(g.stdout, serviceLine(s))
	return nil
}

func newServiceRestart(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restart WS NAME",
		Short: "Restart a service (also a stopped, exited or failed one)",
		Args:  exactArgs(2, "WS NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return g.printServiceResult(c.Workspace(args[0]).ServiceRestart(cmd.Context(), args[1]))
		},
	}
}

func newServiceRm(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm WS NAME",
		Aliases: []string{"remove"},
		Short:   "Stop a service and delete its definition",
		Args:    exactArgs(2, "WS NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return g.printServiceResult(c.Workspace(args[0]).ServiceRemove(cmd.Context(), args[1]))
		},
	}
}

func newServiceWait(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait WS NAME",
		Short: "Wait for a service to be ready (exit 0), to end (exit 1), or the timeout (exit 124)",
		Args:  exactArgs(2, "WS NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			w, err := c.Workspace(args[0]).ServiceWait(cmd.Context(), args[1], timeout)
			if err != nil {
				return err
			}
			if g.json {
				if err := g.printJSON(w); err != nil {
					return err
				}
			}
			return g.finishWait(w)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	return cmd
}

func newWSPort(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "port",
		Short: "Publish guest TCP ports on the host",
		Long: `A published port listens on the host (127.0.0.1 unless a non-loopback address is
given with --allow-non-loopback) and carries each connection to 127.0.0.1:GUEST_PORT
inside the guest over the agent channel: a server bound only to the guest's loopback
is reachable, and the guest needs no network. Published ports are kept across stop
and start; publishing on a stopped workspace records the port for its next start.`,
		Example: `  hearth workspace port publish demo 8080:8000
  hearth workspace port publish demo 0:5432          # any free host port
  hearth workspace port list demo
  hearth workspace port unpublish demo 8080`,
	}
	cmd.AddCommand(newPortPublish(g), newPortList(g), newPortUnpublish(g))
	return cmd
}

func portLine(p *api.PublishedPort) string {
	state := "recorded; listens from the next start"
	switch {
	case p.Active:
		state = "listening"
	case p.Error != "":
		state = "not listening: " + p.Error
	}
	host := p.HostAddr
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s:%d -> guest 127.0.0.1:%d (%s)", host, p.HostPort, p.GuestPort, state)
}

func newPortPublish(g *globals) *cobra.Command {
	var o hearth.PublishOptions
	cmd := &cobra.Command{
		Use:   "publish WS [HOST_ADDR:]HOST_PORT:GUEST_PORT",
		Short: "Publish a guest port on the host",
		Args:  exactArgs(2, "WS and [HOST_ADDR:]HOST_PORT:GUEST_PORT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.Workspace(args[0]).PortPublish(cmd.Context(), args[1], o)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(p)
			}
			fmt.Fprintln(g.stdout, portLine(p))
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.AllowNonLoopback, "allow-non-loopback", false, "allow a host address other than loopback (reachable from other machines)")
	return cmd
}

func newPortList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list WS",
		Short: "List published ports",
		Args:  exactArgs(1, "WS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.Workspace(args[0]).PortList(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(api.PortList{Ports: nonNilList(l)})
			}
			for i := range l {
				fmt.Fprintln(g.stdout, portLine(&l[i]))
			}
			return nil
		},
	}
}

func newPortUnpublish(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unpublish WS [HOST_ADDR:]HOST_PORT",
		Short: "Stop publishing a host port",
		Args:  exactArgs(2, "WS and [HOST_ADDR:]HOST_PORT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.Workspace(args[0]).PortUnpublish(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(p)
			}
			fmt.Fprintf(g.stdout, "unpublished %s\n", portLine(p))
			return nil
		},
	}
}
