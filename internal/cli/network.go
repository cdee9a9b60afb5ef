package cli

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ruleFlag is the shared target of --allow and --deny: the rules in the
// order given on the command line.
type ruleFlag struct {
	action string
	rules  *[]api.NetworkRule
}

func (f *ruleFlag) String() string { return "[]" }
func (f *ruleFlag) Type() string   { return "stringArray" }
func (f *ruleFlag) Set(v string) error {
	*f.rules = append(*f.rules, api.NetworkRule{Action: f.action, Match: v})
	return nil
}

// networkFlags are the network flags of `workspace create` and
// `workspace network set`.
type networkFlags struct {
	mode      string
	rules     []api.NetworkRule
	allowHost []string
}

const ruleHelp = "RULE is DOMAIN, *.DOMAIN or CIDR, with an optional :PORT or :PORT-PORT and an optional /tcp or /udp"

func (n *networkFlags) add(f *pflag.FlagSet) {
	f.StringVar(&n.mode, "network", "none", "guest network: none (no network interface), egress (deny by default, allow what --allow allows) or open (all public egress)")
	f.Var(&ruleFlag{"allow", &n.rules}, "allow", "allow RULE (repeatable; rules apply in order, first match decides); "+ruleHelp)
	f.Var(&ruleFlag{"deny", &n.rules}, "deny", "deny RULE (repeatable, ordered with --allow)")
	f.StringArrayVar(&n.allowHost, "allow-host", nil, "host loopback PORT the guest may reach at host.hearth.internal (repeatable)")
}

// policy builds the policy; rules without --network mean egress.
func (n *networkFlags) policy(cmd *cobra.Command) (*api.NetworkPolicy, error) {
	p := &api.NetworkPolicy{Mode: n.mode, Rules: n.rules}
	if !cmd.Flags().Changed("network") && (len(n.rules) > 0 || len(n.allowHost) > 0) {
		p.Mode = "egress"
	}
	for _, s := range n.allowHost {
		port, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("--allow-host %q: want a port number: %w", s, errdefs.ErrInvalidArgument)
		}
		p.AllowHost = append(p.AllowHost, port)
	}
	return p, nil
}

func newWSNetwork(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Show, change, log and test a workspace's guest network policy",
		Long: `A workspace's guest network is off by default (mode none: no network interface).
Mode egress denies everything but what the ordered --allow/--deny rules allow; mode
open allows all public egress. In every mode loopback, private, link-local and
metadata addresses and the host are denied unless a rule names them; --allow-host
PORT opens the host's 127.0.0.1:PORT at host.hearth.internal. The workspace's
supervisor enforces the policy in a user-space network stack; DNS is answered there
(names no rule allows get NXDOMAIN and are never sent upstream).`,
	}
	cmd.AddCommand(newNetSet(g), newNetShow(g), newNetLog(g), newNetTest(g))
	return cmd
}

func (g *globals) printNetwork(info *api.NetworkInfo) error {
	if g.json {
		return g.printJSON(info)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "workspace:\t%s\n", info.Workspace)
	fmt.Fprintf(tw, "mode:\t%s\n", info.Policy.Mode)
	for i, r := range info.Policy.Rules {
		fmt.Fprintf(tw, "rule %d:\t%s %s\n", i+1, r.Action, r.Match)
	}
	for _, p := range info.Policy.AllowHost {
		fmt.Fprintf(tw, "allow host:\t%d (host.hearth.internal:%d -> 127.0.0.1:%d)\n", p, p, p)
	}
	if info.GuestAddress != "" {
		fmt.Fprintf(tw, "guest:\t%s, gateway %s, DNS %s\n", info.GuestAddress, info.Gateway, info.DNS)
	}
	fmt.Fprintf(tw, "applied:\t%v\n", info.Applied)
	if info.Note != "" {
		fmt.Fprintf(tw, "note:\t%s\n", info.Note)
	}
	return tw.Flush()
}

func newNetSet(g *globals) *cobra.Command {
	var nf networkFlags
	cmd := &cobra.Command{
		Use:   "set WS [flags]",
		Short: "Replace a workspace's network policy (live on a running workspace)",
		Long: `Replace the whole policy: mode, rules (--allow and --deny, in order) and host ports.
On a running workspace with a network it applies at once to new connections and DNS
queries. Switching to or from none adds or removes the network interface at the
next start. ` + ruleHelp + `.`,
		Example: `  hearth workspace network set demo --network egress --allow deb.debian.org --allow '*.pypi.org:443/tcp'
  hearth workspace network set demo --network egress --allow-host 8080
  hearth workspace network set demo --network none`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := nf.policy(cmd)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			info, err := c.Workspace(args[0]).NetworkSet(cmd.Context(), *p)
			if err != nil {
				return err
			}
			return g.printNetwork(info)
		},
	}
	nf.add(cmd.Flags())
	return cmd
}

func newNetShow(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show WS",
		Short: "Show a workspace's network policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			info, err := c.Workspace(args[0]).NetworkShow(cmd.Context())
			if err != nil {
				return err
			}
			return g.printNetwork(info)
		},
	}
}

func newNetLog(g *globals) *cobra.Command {
	var tail int
	var after string
	var follow bool
	cmd := &cobra.Command{
		Use:   "log WS",
		Short: "Show what the guest network did (DNS queries, connections, decisions)",
		Long: `Each line: time, kind (dns, tcp, udp), destination, allowed or denied, the rule that
decided, and bytes out/in for allowed flows. --follow keeps printing new events.
What the guest sees: a denied name gets NXDOMAIN ("not found"), a denied TCP
connection is reset at once ("connection refused"), a denied UDP flow gets an ICMP
port unreachable.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ws := c.Workspace(args[0])
			var since time.Time
			if after != "" {
				if since, err = time.Parse(time.RFC3339Nano, after); err != nil {
					return fmt.Errorf("--after %q: want an RFC 3339 time: %w", after, errdefs.ErrInvalidArgument)
				}
			}
			n := tail
			for {
				evs, err := ws.NetworkLog(cmd.Context(), n, since)
				if err != nil {
					if follow && cmd.Context().Err() != nil {
						return nil
					}
					return err
				}
				for _, e := range evs {
					if err := g.printNetEvent(e); err != nil {
						return err
					}
					since = e.Time
				}
				if !follow {
					return nil
				}
				n = 0
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	f := cmd.Flags()
	f.IntVar(&tail, "tail", 1000, "show only the last N events (at most 100000; --after pages by time)")
	f.StringVar(&after, "after", "", "show only events after this RFC 3339 time")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	return cmd
}

func (g *globals) printNetEvent(e api.NetworkEvent) error {
	if g.json {
		return g.printJSON(e)
	}
	line := fmt.Sprintf("%s %-3s %-7s %s", e.Time.Local().Format("15:04:05.000"), e.Kind, e.Action, e.Dest)
	if e.Name != "" && e.Name != e.Dest {
		line += " (" + e.Name + ")"
	}
	line += "  rule: " + e.Rule
	if e.Action == "allowed" && e.Kind != "dns" {
		line += fmt.Sprintf("  out %d B, in %d B, %d ms", e.BytesOut, e.BytesIn, e.DurationMS)
	}
	if e.Detail != "" {
		line += "  " + e.Detail
	}
	_, err := fmt.Fprintln(g.stdout, strings.TrimSpace(line))
	return err
}

func newNetTest(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "test WS",
		Short: "Self-test the network policy from inside the guest",
		Long: `Runs probes inside the running guest that cannot leave this machine and reports
whether enforcement holds; exits 1 when a check fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.Workspace(args[0]).NetworkTest(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				if err := g.printJSON(res); err != nil {
					return err
				}
			} else {
				for _, ch := range res.Checks {
					mark := "ok  "
					if !ch.OK {
						mark = "FAIL"
					}
					fmt.Fprintf(g.stdout, "%s %s: want %s, got %s\n", mark, ch.Name, ch.Want, ch.Got)
					if !ch.OK && ch.Detail != "" {
						fmt.Fprintf(g.stdout, "     %s\n", ch.Detail)
					}
				}
			}
			if !res.OK {
				return fmt.Errorf("network self-test of %s failed: %w", res.Workspace, errdefs.ErrFailedPrecondition)
			}
			return nil
		},
	}
}
