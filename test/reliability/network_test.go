package reliability

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/netstack/dnstest"
)

// NetReport holds the network boundary checks, by mode.
type NetReport struct {
	Modes []NetMode `json:"modes"`
}

// NetMode is the checks of one mode.
type NetMode struct {
	Mode     string     `json:"mode"`
	SelfTest bool       `json:"self_test_ok"`
	Checks   []NetCheck `json:"checks"`
}

// NetCheck is one probe: the product's self-test's, or the gate's own.
type NetCheck struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	OK   bool   `json:"ok"`
}

// serveHTTP serves body on addr (a loopback address) until the test ends.
func (r *run) serveHTTP(addr, body string) (int, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, body) })}
	go srv.Serve(ln)
	r.t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// network runs the product's network self-test in every mode, plus the
// gate's own probes. Every address involved is on the host's loopback and
// names resolve through a DNS server on 127.0.0.1.
func (r *run) network(ctx context.Context) {
	nr := &NetReport{}
	r.rep.Network = nr
	allowedPort, err1 := r.serveHTTP("127.0.0.2:0", "allowed-server")
	deniedPort, err2 := r.serveHTTP("127.0.0.3:0", "denied-server")
	hostPort, err3 := r.serveHTTP("127.0.0.1:0", "host-port")
	otherPort, err4 := r.serveHTTP("127.0.0.1:0", "other-port")
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			r.errorf("network: listen: %v", err)
			return
		}
	}
	dns := dnstest.Start(r.t, map[string]netip.Addr{
		"allowed.test": netip.MustParseAddr("127.0.0.2"),
		"denied.test":  netip.MustParseAddr("127.0.0.3"),
		"rebind.test":  netip.MustParseAddr("127.0.0.1"),
	})
	// The supervisor inherits the environment: its stack asks this resolver.
	r.t.Setenv("HEARTH_NET_DNS", dns.Addr)
	ws, err := r.workspace(ctx, "net", hearth.CreateOptions{})
	if err != nil {
		r.errorf("network: %v", err)
		return
	}
	sh := func(script string) (int, string) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		res, err := ws.Exec(cctx, hearth.ExecOptions{Argv: []string{"sh", "-c", script}, Capture: true})
		if err != nil {
			return -1, err.Error()
		}
		return res.ExitCode, strings.TrimSpace(res.Stdout + " " + res.Stderr)
	}
	failed := 0
	mode := func(name string) *NetMode {
		st, err := ws.NetworkTest(ctx)
		m := NetMode{Mode: name}
		if err != nil {
			m.Checks = append(m.Checks, NetCheck{Name: "self-test", Want: "runs", Got: err.Error()})
		} else {
			m.SelfTest = st.OK
			if st.Mode != name {
				m.Checks = append(m.Checks, NetCheck{Name: "self-test mode", Want: name, Got: st.Mode})
			}
			for _, c := range st.Checks {
				m.Checks = append(m.Checks, NetCheck{Name: "self-test: " + c.Name, Want: c.Want, Got: strings.TrimSpace(c.Got + " " + c.Detail), OK: c.OK})
			}
		}
		nr.Modes = append(nr.Modes, m)
		return &nr.Modes[len(nr.Modes)-1]
	}
	check := func(m *NetMode, name, want string, ok func(code int, out string) bool, script string) {
		code, out := sh(script)
		m.Checks = append(m.Checks, NetCheck{Name: name, Want: want, Got: fmt.Sprintf("exit %d: %s", code, out), OK: ok(code, out)})
	}
	fails := func(code int, _ string) bool { return code != 0 }
	refused := func(code int, _ string) bool { return code == 7 } // curl: could not connect
	curl := func(url string) string { return "curl -sS --max-time 10 " + url }

	// none: no interface, no DNS.
	m := mode("none")
	check(m, "name does not resolve", "lookup fails", fails, "getent hosts allowed.test")

	// egress: a domain rule and its loopback range, one host port.
	pol := hearth.NetworkPolicy{Mode: "egress", AllowHost: []int{hostPort}, Rules: []hearth.NetworkRule{
		{Action: "allow", Match: "allowed.test"}, {Action: "allow", Match: "rebind.test"}, {Action: "allow", Match: "127.0.0.2/32"}}}
	if _, err := ws.NetworkSet(ctx, pol); err != nil {
		r.errorf("network: set egress: %v", err)
		return
	}
	if _, err := ws.Stop(ctx); err != nil {
		r.errorf("network: stop: %v", err)
		return
	}
	if _, err := ws.Start(ctx); err != nil {
		r.errorf("network: start: %v", err)
		return
	}
	m = mode("egress")
	check(m, "allowed name on loopback stand-in connects", "allowed-server", func(c int, o string) bool { return c == 0 && o == "allowed-server" },
		curl(fmt.Sprintf("http://allowed.test:%d/", allowedPort)))
	check(m, "name no rule allows", "not resolved", fails, curl(fmt.Sprintf("http://denied.test:%d/", deniedPort)))
	check(m, "allowed name answering 127.0.0.1 (rebinding)", "not resolved", fails, "getent hosts rebind.test")
	check(m, "host port not opened", "connection refused", refused, curl(fmt.Sprintf("http://host.hearth.internal:%d/", otherPort)))
	check(m, "host port opened", "host-port", func(c int, o string) bool { return c == 0 && o == "host-port" },
		curl(fmt.Sprintf("http://host.hearth.internal:%d/", hostPort)))
	asked := dns.AskedAbout("denied.test")
	m.Checks = append(m.Checks, NetCheck{Name: "denied name never sent to the resolver", Want: "not asked", Got: fmt.Sprintf("asked: %v", asked), OK: !asked})

	// open: all public egress; loopback answers and host ports stay shut.
	if _, err := ws.NetworkSet(ctx, hearth.NetworkPolicy{Mode: "open", AllowHost: []int{hostPort}}); err != nil {
		r.errorf("network: set open: %v", err)
		return
	}
	m = mode("open")
	check(m, "name answering a loopback address (rebinding)", "not resolved", fails, "getent hosts allowed.test")
	check(m, "host port not opened", "connection refused", refused, curl(fmt.Sprintf("http://host.hearth.internal:%d/", otherPort)))
	check(m, "host port opened", "host-port", func(c int, o string) bool { return c == 0 && o == "host-port" },
		curl(fmt.Sprintf("http://host.hearth.internal:%d/", hostPort)))

	for _, m := range nr.Modes {
		for _, c := range m.Checks {
			if !c.OK {
				failed++
			}
		}
	}
	r.rep.goal("network: boundary checks failed", failed)
}
