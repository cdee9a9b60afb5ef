package guestproto

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Probe kinds.
const (
	ProbePort   = "port"
	ProbeHTTP   = "http"
	ProbeLog    = "log"
	ProbeFile   = "file"
	ProbeCmd    = "cmd"
	ProbeNotify = "notify"
)

// Probe is a parsed readiness probe. Both sides parse the same text with
// ParseProbe: the host to refuse a bad probe before anything starts, the
// agent to run it.
//
// Syntax: KIND[{OPTIONS}][:ARGUMENT]
//
//	port:N                        a LISTEN socket on TCP port N (v4 or v6) owned by the service
//	http:[PORT]/PATH[=RANGES]     GET http://127.0.0.1:PORT/PATH answers a status in RANGES
//	                              (default port 80, default 200-399; RANGES like 200,204,300-399,2xx,
//	                              after the last '=')
//	log:REGEX                     a line of the service's output matches REGEX (RE2 syntax)
//	file:PATH                     PATH exists (relative to the service's cwd)
//	cmd:SHELL COMMAND             /bin/sh -c COMMAND exits 0
//	notify                        the service sent READY=1 to $NOTIFY_SOCKET (sd_notify)
//
// OPTIONS is a comma-separated list of interval=D, timeout=D,
// start_period=D and retries=N, where D is a Go duration ("250ms", "2s")
// or a number of seconds. The argument is everything after the first ':'
// following the kind (or the closing brace), taken verbatim, so a regular
// expression or a command may hold any character. Example:
//
//	http{interval=1s,timeout=500ms,retries=5}:8080/healthz=200-299
type Probe struct {
	Kind string
	// Port is the TCP port (port, http).
	Port int
	// Path is the URL path (http) or the file (file).
	Path string
	// Status lists accepted HTTP status ranges (http).
	Status []StatusRange
	// Regexp (log).
	Regexp *regexp.Regexp
	// Command (cmd).
	Command string
	// Interval is the time between checks; Timeout bounds one check (http,
	// cmd); StartPeriod is the time after a start in which failed checks
	// are not counted; Retries is how many failed checks in a row make a
	// passing probe fail (and, after the start period, a starting service
	// unready).
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
	// Text is the probe as written.
	Text string
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// Probe defaults.
const (
	DefaultProbeStartPeriod = 30 * time.Second
	DefaultProbeRetries     = 3
)

// defaultInterval is each kind's check interval: cheap checks often,
// checks that start a process or a request less often. log and notify are
// also checked at once when their event arrives.
func defaultInterval(kind string) time.Duration {
	switch kind {
	case ProbePort, ProbeFile:
		return 100 * time.Millisecond
	case ProbeHTTP:
		return 500 * time.Millisecond
	case ProbeCmd:
		return time.Second
	}
	return time.Second
}

func defaultTimeout(kind string) time.Duration {
	if kind == ProbeCmd {
		return 10 * time.Second
	}
	return 2 * time.Second
}

// ProbeSyntax is a one-line reminder of the syntax, for error messages.
const ProbeSyntax = "port:N | http:[PORT]/PATH[=200-399] | log:REGEX | file:PATH | cmd:COMMAND | notify, optionally KIND{interval=1s,timeout=2s,start_period=30s,retries=3}:ARG"

// ParseProbe parses a probe in the compact syntax (see Probe).
func ParseProbe(text string) (*Probe, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("readiness probe %q: %s (syntax: %s)", text, fmt.Sprintf(format, args...), ProbeSyntax)
	}
	kind, rest := text, ""
	if i := strings.IndexAny(text, "{:"); i >= 0 {
		kind, rest = text[:i], text[i:]
	}
	p := &Probe{Kind: kind, Text: text, Retries: DefaultProbeRetries, StartPeriod: DefaultProbeStartPeriod}
	switch kind {
	case ProbePort, ProbeHTTP, ProbeLog, ProbeFile, ProbeCmd, ProbeNotify:
	case "":
		return nil, bad("no kind")
	default:
		return nil, bad("unknown kind %q", kind)
	}
	p.Interval, p.Timeout = defaultInterval(kind), defaultTimeout(kind)
	if strings.HasPrefix(rest, "{") {
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, bad("options start with '{' but have no closing '}'")
		}
		if err := p.parseOptions(rest[1:end]); err != nil {
			return nil, bad("%v", err)
		}
		rest = rest[end+1:]
	}
	arg, hasArg := strings.CutPrefix(rest, ":")
	if rest != "" && !hasArg {
		return nil, bad("expected ':' after the kind and options, got %q", rest)
	}
	if kind == ProbeNotify {
		if hasArg {
			return nil, bad("notify takes no argument")
		}
		return p, nil
	}
	if arg == "" {
		return nil, bad("%s needs an argument", kind)
	}
	switch kind {
	case ProbePort:
		n, err := parsePort(arg)
		if err != nil {
			return nil, bad("%v", err)
		}
		p.Port = n
	case ProbeHTTP:
		if err := p.parseHTTP(arg); err != nil {
			return nil, bad("%v", err)
		}
	case ProbeLog:
		re, err := regexp.Compile(arg)
		if err != nil {
			return nil, bad("bad regular expression: %v", err)
		}
		p.Regexp = re
	case ProbeFile:
		p.Path = arg
	case ProbeCmd:
		p.Command = arg
	}
	return p, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q: want a number from 1 to 65535", s)
	}
	return n, nil
}

func (p *Probe) parseOptions(s string) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || v == "" {
			return fmt.Errorf("option %q is not KEY=VALUE", kv)
		}
		switch k {
		case "interval", "timeout", "start_period":
			d, err := parseSeconds(v)
			if err != nil {
				return fmt.Errorf("option %s: %v", k, err)
			}
			switch k {
			case "interval":
				if d < 10*time.Millisecond {
					return fmt.Errorf("option interval=%s: want at least 10ms", v)
				}
				p.Interval = d
			case "timeout":
				if d <= 0 {
					return fmt.Errorf("option timeout=%s: want more than 0", v)
				}
				p.Timeout = d
			default:
				p.StartPeriod = d
			}
		case "retries":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return fmt.Errorf("option retries=%s: want a number from 1 to 1000", v)
			}
			p.Retries = n
		default:
			return fmt.Errorf("unknown option %q (known: interval, timeout, start_period, retries)", k)
		}
	}
	return nil
}

// parseSeconds reads a Go duration or a plain number of seconds.
func parseSeconds(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 || f > 86400 {
			return 0, fmt.Errorf("%q: want 0 to 86400 seconds", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > 24*time.Hour {
		return 0, fmt.Errorf("%q is not a duration like 500ms, 2s or 1m", v)
	}
	return d, nil
}

// parseHTTP reads [PORT]/PATH[=RANGES].
func (p *Probe) parseHTTP(arg string) error {
	slash := strings.IndexByte(arg, '/')
	if slash < 0 {
		return fmt.Errorf("http probe needs a path starting with '/', as in http:8080/healthz")
	}
	p.Port = 80
	if slash > 0 {
		n, err := parsePort(arg[:slash])
		if err != nil {
			return err
		}
		p.Port = n
	}
	// The ranges follow the last '=' (a query string may hold others);
	// a suffix of anything but digits, x, ',' and '-' belongs to the path.
	path, ranges, hasRanges := arg[slash:], "", false
	if i := strings.LastIndexByte(path, '='); i >= 0 && strings.Trim(path[i+1:], "0123456789xX,- ") == "" {
		path, ranges, hasRanges = path[:i], path[i+1:], true
	}
	p.Path = path
	if !hasRanges {
		p.Status = []StatusRange{{200, 399}}
		return nil
	}
	for _, r := range strings.Split(ranges, ",") {
		sr, err := parseStatusRange(strings.TrimSpace(r))
		if err != nil {
			return err
		}
		p.Status = append(p.Status, sr)
	}
	return nil
}

func parseStatusRange(s string) (StatusRange, error) {
	code := func(v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 599 {
			return 0, fmt.Errorf("HTTP status %q: want 100 to 599", v)
		}
		return n, nil
	}
	if len(s) == 3 && strings.HasSuffix(strings.ToLower(s), "xx") && s[0] >= '1' && s[0] <= '5' {
		lo := int(s[0]-'0') * 100
		return StatusRange{lo, lo + 99}, nil
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err := code(lo)
		if err != nil {
			return StatusRange{}, err
		}
		b, err := code(hi)
		if err != nil {
			return StatusRange{}, err
		}
		if b < a {
			return StatusRange{}, fmt.Errorf("HTTP status range %q runs backwards", s)
		}
		return StatusRange{a, b}, nil
	}
	n, err := code(s)
	return StatusRange{n, n}, err
}

// StatusOK reports whether code is in one of the probe's ranges.
func (p *Probe) StatusOK(code int) bool {
	for _, r := range p.Status {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// CheckServiceSpec validates a service definition: its name, command,
// environment, restart settings and probes. Both sides call it.
func CheckServiceSpec(s *ServiceSpec) error {
	if err := CheckServiceName(s.Name); err != nil {
		return err
	}
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return invalidf("service %s: no command: give the program and its arguments (argv)", s.Name)
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			return invalidf("service %s: environment entry %q is not KEY=VALUE", s.Name, kv)
		}
	}
	switch s.Restart {
	case "", RestartNo, RestartOnFailure, RestartAlways:
	default:
		return invalidf("service %s: restart policy %q: want no, on-failure or always", s.Name, s.Restart)
	}
	if s.RestartDelayMS < 0 || s.RestartMaxDelayMS < 0 || s.StartLimitBurst < 0 || s.StartLimitIntervalMS < 0 {
		return invalidf("service %s: restart delays and start limits must not be negative", s.Name)
	}
	notify := 0
	for _, r := range s.Ready {
		p, err := ParseProbe(r)
		if err != nil {
			return invalidf("service %s: %v", s.Name, err)
		}
		if p.Kind == ProbeNotify {
			notify++
		}
	}
	if notify > 1 {
		return invalidf("service %s: notify is given %d times; once is enough", s.Name, notify)
	}
	return nil
}

// InvalidError is a definition that does not validate.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

func invalidf(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

var serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckServiceName checks a service name: 1-63 characters of letters,
// digits, '.', '_' and '-', starting with a letter or digit.
func CheckServiceName(name string) error {
	if !serviceNameRE.MatchString(name) {
		return invalidf("service name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}
