package guestproto

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseProbe(t *testing.T) {
	good := []struct {
		in   string
		want Probe
	}{
		{"port:8000", Probe{Kind: ProbePort, Port: 8000, Interval: 100 * time.Millisecond, Timeout: 2 * time.Second, StartPeriod: DefaultProbeStartPeriod, Retries: 3}},
		{"port{interval=250ms,retries=5,start_period=0}:3000", Probe{Kind: ProbePort, Port: 3000, Interval: 250 * time.Millisecond, Timeout: 2 * time.Second, Retries: 5}},
		{"http:8080/healthz", Probe{Kind: ProbeHTTP, Port: 8080, Path: "/healthz", Status: []StatusRange{{200, 399}}, Interval: 500 * time.Millisecond, Timeout: 2 * time.Second, StartPeriod: DefaultProbeStartPeriod, Retries: 3}},
		{"http:/=200,204,3xx", Probe{Kind: ProbeHTTP, Port: 80, Path: "/", Status: []StatusRange{{200, 200}, {204, 204}, {300, 399}}, Interval: 500 * time.Millisecond, Timeout: 2 * time.Second, StartPeriod: DefaultProbeStartPeriod, Retries: 3}},
		{"http{timeout=1.5}:9000/a/b?x=y=500-599", Probe{Kind: ProbeHTTP, Port: 9000, Path: "/a/b?x=y", Status: []StatusRange{{500, 599}}, Interval: 500 * time.Millisecond, Timeout: 1500 * time.Millisecond, StartPeriod: DefaultProbeStartPeriod, Retries: 3}},
		{"http:9000/a?q=abc", Probe{Kind: ProbeHTTP, Port: 9000, Path: "/a?q=abc", Status: []StatusRange{{200, 399}}, Interval: 500 * time.Millisecond, Timeout: 2 * time.Second, StartPeriod: DefaultProbeStartPeriod, Retries: 3}},
		{"file:/tmp/ready", Probe{Kind: ProbeFile, Path: "/tmp/ready", Interval: 100 * time.Millisecond, Timeout: 2 * time.Second, StartPeriod: DefaultProbeStartPeriod, Retries: 3}},
		{"cmd:pg_isready -h 127.0.0.1, -q", Probe{Kind: ProbeCmd, Command: "pg_isready -h 127.0.0.1, -q", Interval: time.Second, Timeout: 10 * time.Second, StartPeriod: DefaultProbeStartPeriod, Retries: 3}},
		{"notify", Probe{Kind: ProbeNotify, Interval: time.Second, Timeout: 2 * time.Second, StartPeriod: DefaultProbeStartPeriod, Retries: 3}},
		{"notify{start_period=2m}", Probe{Kind: ProbeNotify, Interval: time.Second, Timeout: 2 * time.Second, StartPeriod: 2 * time.Minute, Retries: 3}},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParseProbe(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if p.Text != tc.in || p.Kind != tc.want.Kind || p.Port != tc.want.Port || p.Command != tc.want.Command {
				t.Fatalf("got %+v", p)
			}
			if p.Path != tc.want.Path || p.Interval != tc.want.Interval || p.Timeout != tc.want.Timeout || p.StartPeriod != tc.want.StartPeriod || p.Retries != tc.want.Retries {
				t.Fatalf("got %+v, want %+v", p, tc.want)
			}
			if len(p.Status) != len(tc.want.Status) {
				t.Fatalf("status %v, want %v", p.Status, tc.want.Status)
			}
			for i := range p.Status {
				if p.Status[i] != tc.want.Status[i] {
					t.Fatalf("status %v, want %v", p.Status, tc.want.Status)
				}
			}
		})
	}
	bad := map[string]string{
		"":                      "no kind",
		"tcp:80":                "unknown kind",
		"port":                  "needs an argument",
		"port:":                 "needs an argument",
		"port:0":                "1 to 65535",
		"port:65536":            "1 to 65535",
		"port:80x":              "1 to 65535",
		"port{interval=1s:80":   "no closing",
		"port{every=1s}:80":     "unknown option",
		"port{interval=1ms}:80": "at least 10ms",
		"port{retries=0}:80":    "retries",
		"port{timeout=soon}:80": "not a duration",
		"port{interval}:80":     "KEY=VALUE",
		"port 80":               "unknown kind",
		"http:8080":             "path starting with '/'",
		"http:8080/x=99":        "100 to 599",
		"http:8080/x=300-200":   "backwards",
		"log:([a-z]":            "regular expression",
		"notify:x":              "no argument",
		"file{retries=2}x":      "expected ':'",
	}
	for in, want := range bad {
		_, err := ParseProbe(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseProbe(%q) = %v, want an error containing %q", in, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), "syntax:") {
			t.Errorf("ParseProbe(%q): the error does not show the syntax: %v", in, err)
		}
	}
}

func TestLogProbeKeepsTheRegexVerbatim(t *testing.T) {
	p, err := ParseProbe("log:ready to accept connections{1,}: (yes|no)")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Regexp.MatchString("database system is ready to accept connections: yes") {
		t.Fatalf("regexp %q", p.Regexp)
	}
	// Options come before the colon; braces after it belong to the regex.
	p, err = ParseProbe("log{retries=2}:a{2}")
	if err != nil || p.Retries != 2 || !p.Regexp.MatchString("aa") || p.Regexp.MatchString("a{2}") {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestStatusOK(t *testing.T) {
	p, _ := ParseProbe("http:80/")
	for code, want := range map[int]bool{199: false, 200: true, 302: true, 399: true, 400: false, 500: false} {
		if p.StatusOK(code) != want {
			t.Errorf("default range: %d ok = %v", code, !want)
		}
	}
}

func TestCheckServiceSpec(t *testing.T) {
	ok := ServiceSpec{Name: "web", Argv: []string{"python3"}, Ready: []string{"port:8000"}, Restart: RestartOnFailure}
	if err := CheckServiceSpec(&ok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mut  func(*ServiceSpec)
		want string
	}{
		{func(s *ServiceSpec) { s.Name = "" }, "service name"},
		{func(s *ServiceSpec) { s.Name = "a/b" }, "service name"},
		{func(s *ServiceSpec) { s.Name = "-x" }, "service name"},
		{func(s *ServiceSpec) { s.Argv = nil }, "no command"},
		{func(s *ServiceSpec) { s.Env = []string{"NOEQUALS"} }, "KEY=VALUE"},
		{func(s *ServiceSpec) { s.Restart = "sometimes" }, "restart policy"},
		{func(s *ServiceSpec) { s.Ready = []string{"port:x"} }, "readiness probe"},
		{func(s *ServiceSpec) { s.Ready = []string{"notify", "notify"} }, "notify is given 2 times"},
		{func(s *ServiceSpec) { s.StartLimitBurst = -1 }, "negative"},
	} {
		s := ok
		tc.mut(&s)
		err := CheckServiceSpec(&s)
		var ie *InvalidError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ie) {
			t.Errorf("%+v: %v, want an InvalidError containing %q", s, err, tc.want)
		}
	}
}
