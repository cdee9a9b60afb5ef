package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ops"
	"github.com/hearthvm/hearth/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite openapi.json and docs/openapi.json from GenerateOpenAPI")

func newTestServer(t *testing.T, f *fake) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(f, Options{Version: "test"}))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func errKind(t *testing.T, b []byte) api.ErrorBody {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Kind == "" {
		t.Fatalf("not an error body: %s", b)
	}
	return eb
}

// TestRoutesMatchOps: every operation of the table is served at its
// route and reaches the operation of that name with its path fields set.
func TestRoutesMatchOps(t *testing.T) {
	f := &fake{}
	srv := newTestServer(t, f)
	for _, o := range ops.All {
		t.Run(o.Name, func(t *testing.T) {
			path := strings.NewReplacer("{workspace}", "demo", "{command_id}", "c1", "{shell_id}", "s1", "{service}", "web", "{port}", "8080", "{disk}", "d1").Replace(o.Path)
			body := ""
			switch o.Name {
			case "run", "workspace_exec":
				body = `{"argv":["true"]}`
			case "workspace_sync_push":
				body = `{"source":"/tmp"}`
			case "workspace_export":
				body = `{"guest_path":"/workspace","host_dest":"/tmp/x"}`
			case "shell_signal":
				body = `{"signal":"INT"}`
			case "workspace_files_get", "disk_files_get":
				body = `{"path":"/x","host_dest":"/tmp/x"}`
			case "disk_create":
				body = `{"name":"d1"}`
			case "disk_resize":
				body = `{"size":"2G"}`
			case "disk_export":
				body = `{"host_dest":"/tmp/x"}`
			case "disk_import":
				body = `{"source":"/tmp"}`
			case "workspace_disk_attach", "workspace_disk_detach":
				body = `{"disk":"d1"}`
			case "workspace_files_cat", "disk_files_cat":
				path += "?path=/x"
			case "snapshot_create", "workspace_fork":
				body = `{"name":"n1"}`
			case "service_start":
				body = `{"service":"web","argv":["true"]}`
			case "port_publish":
				body = `{"port":"8080:80"}`
			}
			code, b := do(t, srv, o.Method, path, body)
			if code != http.StatusOK {
				t.Fatalf("%s %s: %d %s", o.Method, path, code, b)
			}
			name, req := f.last()
			if name != o.Name {
				t.Fatalf("%s reached %q, want %q", o.Path, name, o.Name)
			}
			rv := reflect.ValueOf(req).Elem()
			for _, a := range o.Args() {
				if a.Path && rv.FieldByName(a.GoName()).String() == "" {
					t.Errorf("path field %s not set", a.Name)
				}
			}
			if !json.Valid(b) || bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
				t.Fatalf("body %s", b)
			}
		})
	}
}

// TestListShapes: list results are objects, as the contract says.
func TestListShapes(t *testing.T) {
	srv := newTestServer(t, &fake{})
	for path, key := range map[string]string{"/v1/workspaces": "workspaces", "/v1/workspaces/x/logs": "commands", "/v1/workspaces/x/shells": "shells"} {
		code, b := do(t, srv, "GET", path, "")
		var m map[string]json.RawMessage
		if code != 200 || json.Unmarshal(b, &m) != nil || m[key] == nil {
			t.Errorf("GET %s: %d %s, want {%q: [...]}", path, code, b, key)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		kind   string
	}{
		{fmt.Errorf("workspace %q: %w", "x", errdefs.ErrNotFound), 404, "not_found"},
		{errdefs.ErrInvalidArgument, 400, "invalid_argument"},
		{errdefs.ErrAlreadyExists, 409, "already_exists"},
		{errdefs.ErrConflict, 409, "conflict"},
		{errdefs.ErrFailedPrecondition, 409, "failed_precondition"},
		{errdefs.ErrUnavailable, 503, "unavailable"},
		{errdefs.ErrTimeout, 504, "timeout"},
		{errdefs.ErrNotImplemented, 501, "not_implemented"},
		{errdefs.ErrResourceExhausted, 507, "resource_exhausted"},
		{errors.New("boom"), 500, "internal"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			srv := newTestServer(t, &fake{err: tc.err})
			code, b := do(t, srv, "GET", "/v1/workspaces/x", "")
			if eb := errKind(t, b); code != tc.status || eb.Error.Kind != tc.kind || eb.Error.Message != tc.err.Error() {
				t.Fatalf("got %d %s, want %d %s", code, b, tc.status, tc.kind)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	srv := newTestServer(t, &fake{})
	big := `{"argv":["true"],"stdin":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"unknown field", "POST", "/v1/workspaces/x/exec", `{"argv":["true"],"bogus":1}`, 400, `"bogus"`},
		{"unknown field nested op", "POST", "/v1/workspaces/x/start", `{"force":true}`, 400, `"force"`},
		{"bad json", "POST", "/v1/workspaces", `{"name":`, 400, "not valid JSON"},
		{"wrong type", "POST", "/v1/workspaces", `{"cpus":"two"}`, 400, `"cpus"`},
		{"trailing data", "POST", "/v1/workspaces", `{} {}`, 400, "after the JSON"},
		{"too large", "POST", "/v1/workspaces/x/exec", big, 413, "larger than"},
		{"unknown query", "GET", "/v1/workspaces/x/diff?bogus=1", "", 400, `"bogus"`},
		{"bad query int", "GET", "/v1/workspaces/x/logs?tail=many", "", 400, `"tail"`},
		{"query on post", "POST", "/v1/workspaces/x/sync?source=/tmp", `{"source":"/tmp"}`, 400, `"source"`},
		{"negative wait", "POST", "/v1/workspaces/x/commands/c/wait", `{"timeout_ms":-1}`, 400, "negative"},
		{"over max", "GET", "/v1/workspaces/x/shells/s/output?wait_ms=60000", "", 400, "wait_ms: 60000 is more than the maximum 50000"},
		{"path field in body differs", "POST", "/v1/workspaces/x/exec", `{"workspace":"y","argv":["true"]}`, 400, "workspace"},
		{"no route", "GET", "/v1/nope", "", 404, "no route"},
		{"bad size", "POST", "/v1/workspaces", `{"disk_size":"lots"}`, 400, "disk_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := do(t, srv, tc.method, tc.path, tc.body)
			eb := errKind(t, b)
			if code != tc.status || !strings.Contains(eb.Error.Message, tc.msg) {
				t.Fatalf("got %d %s, want %d with %s", code, b, tc.status, tc.msg)
			}
		})
	}
}

func TestQueryParameters(t *testing.T) {
	f := &fake{}
	srv := newTestServer(t, f)
	if code, b := do(t, srv, "GET", "/v1/workspaces/x/diff?paths=a&paths=b/c&no_patch=true&exclude=*.log", ""); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	if _, r := f.last(); fmt.Sprint(*r.(*api.DiffRequest)) != "{x [a b/c] true [*.log] 1048576 16777216 0 1000}" {
		t.Fatalf("diff request %+v", r)
	}
	if code, b := do(t, srv, "GET", "/v1/workspaces/x/shells/s1/output?cursor=7&wait_ms=20&plain=1", ""); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	if _, r := f.last(); func() bool {
		o := r.(*api.ShellReadRequest)
		return o.Cursor == nil || *o.Cursor != 7 || o.WaitMS != 20 || !o.Plain || o.ShellID != "s1"
	}() {
		t.Fatalf("shell read request %+v", r)
	}
	if code, b := do(t, srv, "DELETE", "/v1/workspaces/x?force=true", ""); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	if _, r := f.last(); !r.(*api.DeleteRequest).Force {
		t.Fatalf("delete force %+v", r)
	}
	if code, b := do(t, srv, "POST", "/v1/workspaces/x/commands/c9/wait", ""); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	if _, r := f.last(); r.(*api.CommandWaitRequest).TimeoutMS != 30000 {
		t.Fatalf("command_wait default timeout %+v", r)
	}
}

func TestTokenAuth(t *testing.T) {
	const tok = "0123456789abcdef0123"
	srv := httptest.NewServer(RequireToken(New(&fake{}, Options{}), tok))
	defer srv.Close()
	for _, tc := range []struct {
		name, header string
		status       int
	}{
		{"none", "", 401},
		{"wrong", "Bearer nope", 401},
		{"basic", "Basic " + tok, 401},
		{"right", "Bearer " + tok, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/v1/health", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if tc.status == 401 {
				errKind(t, b)
			}
		})
	}
	// The remote SDK sends the token.
	c, err := hearth.New(hearth.WithRemote(srv.URL, tok))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Workspace("x").Show(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, _ = hearth.New(hearth.WithRemote(srv.URL, "wrong-token-wrong-token"))
	if _, err := c.Workspace("x").Show(context.Background()); !errors.Is(err, hearth.ErrInvalidArgument) || !strings.Contains(err.Error(), "bearer token") {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestPanicRecovery(t *testing.T) {
	f := &fake{show: func(ctx context.Context, ws string) (*api.Workspace, error) { panic("kaboom") }}
	srv := newTestServer(t, f)
	code, b := do(t, srv, "GET", "/v1/workspaces/x", "")
	if eb := errKind(t, b); code != 500 || eb.Error.Kind != "internal" || !strings.Contains(eb.Error.Message, "kaboom") {
		t.Fatalf("%d %s", code, b)
	}
	if code, b := do(t, srv, "GET", "/v1/health", ""); code != 200 || !strings.Contains(string(b), `"ok":true`) {
		t.Fatalf("after a panic: %d %s", code, b)
	}
}

func TestStreamedExec(t *testing.T) {
	f := &fake{exec: func(ctx context.Context, _ any, o hearth.Streams) (*api.ExecResult, error) {
		if o.Stdout == nil {
			return &api.ExecResult{Status: "finished", Stdout: "plain"}, nil
		}
		o.Stdout.Write([]byte("out1\n"))
		o.Stderr.Write([]byte{0xff, 0})
		o.Stdout.Write([]byte("out2\n"))
		return &api.ExecResult{Status: "finished", ExitCode: 3, Stdout: "out1\nout2\n"}, nil
	}}
	srv := newTestServer(t, f)
	for _, tc := range []struct{ name, query, accept string }{{"accept", "", NDJSON}, {"query", "?stream=1", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/v1/workspaces/x/exec"+tc.query, strings.NewReader(`{"argv":["x"]}`))
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != NDJSON {
				t.Fatalf("content type %q", ct)
			}
			var lines []StreamLine
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var l StreamLine
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				lines = append(lines, l)
			}
			if len(lines) != 4 || string(lines[0].Data) != "out1\n" || lines[1].Stream != "stderr" || !bytes.Equal(lines[1].Data, []byte{0xff, 0}) || lines[3].Result == nil || lines[3].Result.ExitCode != 3 {
				t.Fatalf("lines %+v", lines)
			}
		})
	}
	// Plain JSON without the ask.
	if code, b := do(t, srv, "POST", "/v1/workspaces/x/exec", `{"argv":["x"]}`); code != 200 || !strings.Contains(string(b), `"plain"`) {
		t.Fatalf("%d %s", code, b)
	}
	// The remote SDK streams into writers and returns the result.
	c, err := hearth.New(hearth.WithRemote(srv.URL, ""))
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	res, err := c.Workspace("x").Exec(context.Background(), hearth.ExecOptions{Argv: []string{"x"}, Stdout: &out, Stderr: &errb, Capture: true})
	if err != nil || res.ExitCode != 3 || out.String() != "out1\nout2\n" || !bytes.Equal(errb.Bytes(), []byte{0xff, 0}) {
		t.Fatalf("remote stream: %v %+v %q %q", err, res, out.String(), errb.Bytes())
	}
}

func TestStreamError(t *testing.T) {
	f := &fake{exec: func(ctx context.Context, _ any, o hearth.Streams) (*api.ExecResult, error) {
		o.Stdout.Write([]byte("partial"))
		return nil, fmt.Errorf("exec in x: guest went away: %w", errdefs.ErrUnavailable)
	}}
	srv := newTestServer(t, f)
	c, _ := hearth.New(hearth.WithRemote(srv.URL, ""))
	var out bytes.Buffer
	_, err := c.Workspace("x").Exec(context.Background(), hearth.ExecOptions{Argv: []string{"x"}, Stdout: &out})
	if !errors.Is(err, hearth.ErrUnavailable) || out.String() != "partial" {
		t.Fatalf("%v %q", err, out.String())
	}
	// An error before any output keeps its status.
	f2 := &fake{err: fmt.Errorf("workspace %q: %w", "x", errdefs.ErrNotFound)}
	srv2 := newTestServer(t, f2)
	c2, _ := hearth.New(hearth.WithRemote(srv2.URL, ""))
	if _, err := c2.Workspace("x").Exec(context.Background(), hearth.ExecOptions{Argv: []string{"x"}, Stdout: &out}); !errors.Is(err, hearth.ErrNotFound) {
		t.Fatalf("%v", err)
	}
}

// TestDisconnectCancels: a client that goes away mid-exec cancels the SDK
// call's context; the server keeps serving.
func TestDisconnectCancels(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan struct{})
	f := &fake{exec: func(ctx context.Context, _ any, _ hearth.Streams) (*api.ExecResult, error) {
		close(started)
		select {
		case <-ctx.Done():
			close(cancelled)
			return nil, ctx.Err()
		case <-time.After(20 * time.Second):
			return nil, errors.New("not cancelled")
		}
	}}
	srv := newTestServer(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	c, _ := hearth.New(hearth.WithRemote(srv.URL, ""))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Workspace("x").Exec(ctx, hearth.ExecOptions{Argv: []string{"sleep", "100"}})
		errc <- err
	}()
	<-started
	cancel()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not cancel the call")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error %v", err)
	}
	if code, _ := do(t, srv, "GET", "/v1/health", ""); code != 200 {
		t.Fatal("server broken after a disconnect")
	}
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "hearth.sock")
	ln, err := ListenUnix(sock, true)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{sock: 0o600, filepath.Dir(sock): 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: mode %v, want %v (%v)", path, fi.Mode().Perm(), want, err)
		}
	}
	srv := &http.Server{Handler: New(&fake{err: fmt.Errorf("workspace %q: %w", "nope", errdefs.ErrNotFound)}, Options{})}
	go srv.Serve(ln)
	c, err := hearth.New(hearth.WithRemote("unix://"+sock, ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Workspace("nope").Show(context.Background()); !errors.Is(err, hearth.ErrNotFound) || err.Error() != `workspace "nope": not found` {
		t.Fatalf("remote error: %v", err)
	}
	// A live socket is not replaced.
	if _, err := ListenUnix(sock, true); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second server: %v", err)
	}
	srv.Close()
	// A stale one (its server died without removing it) is.
	stale := filepath.Join(dir, "stale.sock")
	l2, err := ListenUnix(stale, false)
	if err != nil {
		t.Fatal(err)
	}
	l2.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	l2.Close()
	if _, err := os.Stat(stale); err != nil {
		t.Fatal("stale socket vanished")
	}
	l3, err := ListenUnix(stale, false)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l3.Close()
	// Not a socket: refuse.
	plain := filepath.Join(dir, "file")
	os.WriteFile(plain, nil, 0o600)
	if _, err := ListenUnix(plain, false); err == nil {
		t.Fatal("replaced a regular file")
	}
	// Nothing listening: unavailable.
	c, _ = hearth.New(hearth.WithRemote("unix://"+filepath.Join(dir, "none.sock"), ""))
	if _, err := c.ListWorkspaces(context.Background()); !errors.Is(err, hearth.ErrUnavailable) {
		t.Fatalf("no server: %v", err)
	}
}

func TestRemoteAddress(t *testing.T) {
	for _, addr := range []string{"", "tcp://x:1", "unix://rel.sock", "http://"} {
		if _, err := hearth.New(hearth.WithRemote(addr, "")); !errors.Is(err, hearth.ErrInvalidArgument) {
			t.Errorf("%q: %v", addr, err)
		}
	}
}

func TestOpenAPI(t *testing.T) {
	gen := GenerateOpenAPI()
	docs := filepath.Join(testenv.RepoRoot(), "docs", "openapi.json")
	if *update {
		for _, p := range []string{"openapi.json", docs} {
			if err := os.WriteFile(p, gen, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	if !bytes.Equal(gen, OpenAPI()) {
		t.Fatal("internal/httpapi/openapi.json is stale: go test ./internal/httpapi -run OpenAPI -update")
	}
	d, err := os.ReadFile(docs)
	if err != nil || !bytes.Equal(d, OpenAPI()) {
		t.Fatalf("docs/openapi.json differs from the served copy (%v): go test ./internal/httpapi -run OpenAPI -update", err)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(gen, &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("%v %q", err, doc.OpenAPI)
	}
	for _, o := range ops.All {
		if doc.Paths[o.Path][strings.ToLower(o.Method)] == nil {
			t.Errorf("openapi lacks %s %s", o.Method, o.Path)
		}
	}
	srv := newTestServer(t, &fake{})
	if code, b := do(t, srv, "GET", "/v1/openapi.json", ""); code != 200 || !bytes.Equal(b, gen) {
		t.Fatalf("served openapi: %d", code)
	}
}
