package hearth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// remote is the engine of a Client made with WithRemote: it speaks the
// HTTP API of `hearth serve` (internal/httpapi, docs/http-api.md).
type remote struct {
	addr  string
	base  string // http://host:port, or http://hearth for a Unix socket
	token string
	hc    *http.Client
}

var _ engine = (*remote)(nil)

func newRemote(addr, token string) (*remote, error) {
	r := &remote{addr: addr, token: token}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	switch {
	case strings.HasPrefix(addr, "unix://"):
		path := strings.TrimPrefix(addr, "unix://")
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("remote address %q: want unix:///absolute/path.sock: %w", addr, ErrInvalidArgument)
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		tr.Proxy = nil
		r.base = "http://hearth"
	case strings.HasPrefix(addr, "http://"), strings.HasPrefix(addr, "https://"):
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("remote address %q: want http://host:port: %w", addr, ErrInvalidArgument)
		}
		r.base = strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
	default:
		return nil, fmt.Errorf("remote address %q: want unix:///path/hearth.sock or http://host:port: %w", addr, ErrInvalidArgument)
	}
	r.hc = &http.Client{Transport: tr}
	return r, nil
}

// remoteError is an error the server reported: its message, and its kind
// for errors.Is.
type remoteError struct {
	kind errdefs.Kind
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return errdefs.FromKind(e.kind) }

func wsPath(ref string, rest ...string) string {
	p := "/v1/workspaces/" + url.PathEscape(ref)
	for _, s := range rest {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// send makes a request; the caller closes the response body.
func (r *remote) send(ctx context.Context, method, path string, q url.Values, body any, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := r.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("remote request: %v: %w", err, ErrInvalidArgument)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		return nil, fmt.Errorf("hearth serve at %s: %v (is `hearth serve` running?): %w", r.addr, err, ErrUnavailable)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb api.ErrorBody
	if json.Unmarshal(b, &eb) != nil || eb.Error.Kind == "" {
		return &remoteError{kind: kindOfStatus(resp.StatusCode), msg: fmt.Sprintf("hearth serve: HTTP %s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	return &remoteError{kind: errdefs.Kind(eb.Error.Kind), msg: eb.Error.Message}
}

// kindOfStatus guesses a kind for a non-API error response.
func kindOfStatus(code int) errdefs.Kind {
	switch code {
	case http.StatusNotFound:
		return errdefs.KindNotFound
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
		return errdefs.KindInvalidArgument
	case http.StatusConflict:
		return errdefs.KindConflict
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return errdefs.KindUnavailable
	case http.StatusGatewayTimeout:
		return errdefs.KindTimeout
	case http.StatusNotImplemented:
		return errdefs.KindNotImplemented
	}
	return errdefs.KindInternal
}

// call makes a JSON request and decodes the JSON result into out.
func (r *remote) call(ctx context.Context, method, path string, q url.Values, body, out any) error {
	resp, err := r.send(ctx, method, path, q, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode the response: %v: %w", method, path, err, ErrUnavailable)
	}
	return nil
}

func callT[T any](ctx context.Context, r *remote, method, path string, q url.Values, body any) (*T, error) {
	var out T
	if err := r.call(ctx, method, path, q, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func callList[T any](ctx context.Context, r *remote, path string, q url.Values) ([]T, error) {
	var out []T
	if err := r.call(ctx, http.MethodGet, path, q, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Home is unknown for a remote Client.
func (r *remote) Home() string { return "" }

func absPath(p string) string {
	if p == "" {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func millis(d time.Duration) int64 {
	if d > 0 && d < time.Millisecond {
		return 1
	}
	return d.Milliseconds()
}

// execRequest converts ExecOptions to the JSON shape. Stdin travels in the
// body, so it must be UTF-8 text under the body limit.
func execRequest(o ExecOptions) (api.ExecRequest, error) {
	req := api.ExecRequest{Argv: o.Argv, Command: o.Shell, Cwd: o.Cwd, Env: o.Env,
		TimeoutMS: millis(o.Timeout), YieldMS: millis(o.Yield), Detach: o.Detach}
	if o.Stdin != nil {
		b, err := io.ReadAll(io.LimitReader(o.Stdin, 1<<20))
		if err != nil {
			return req, fmt.Errorf("read stdin: %w", err)
		}
		if len(b) >= 1<<20-4096 || !utf8.Valid(b) {
			return req, fmt.Errorf("a remote command's stdin must be UTF-8 text under 1 MiB: push files with SyncPush instead: %w", ErrInvalidArgument)
		}
		req.Stdin = string(b)
	}
	return req, nil
}

// execCall posts an exec (or run) request, streaming output to the
// writers over NDJSON when any is set.
func (r *remote) execCall(ctx context.Context, path string, body any, o ExecOptions) (*ExecResult, error) {
	var res *ExecResult
	var err error
	if o.Stdout == nil && o.Stderr == nil {
		res, err = callT[ExecResult](ctx, r, http.MethodPost, path, nil, body)
	} else {
		res, err = r.stream(ctx, path, body, o.Stdout, o.Stderr)
	}
	if err == nil && !o.Capture {
		res.Stdout, res.Stderr, res.StdoutEncoding, res.StderrEncoding = "", "", "", ""
		res.StdoutTruncated, res.StderrTruncated = false, false
	}
	return res, err
}

// stream reads an NDJSON exec response.
func (r *remote) stream(ctx context.Context, path string, body any, stdout, stderr io.Writer) (*ExecResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := r.send(ctx, http.MethodPost, path, nil, body, "application/x-ndjson")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		var res ExecResult
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			return nil, fmt.Errorf("decode the exec result: %v: %w", err, ErrUnavailable)
		}
		return &res, nil
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var line struct {
			Stream string      `json:"stream"`
			Data   []byte      `json:"data"`
			Result *ExecResult `json:"result"`
			Error  *struct {
				Kind    string `json:"kind"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := dec.Decode(&line); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("exec: %w", ctx.Err())
			}
			return nil, fmt.Errorf("exec output stream from %s ended without a result: %v: %w", r.addr, err, ErrUnavailable)
		}
		switch {
		case line.Result != nil:
			return line.Result, nil
		case line.Error != nil:
			return nil, &remoteError{kind: errdefs.Kind(line.Error.Kind), msg: line.Error.Message}
		}
		w := stdout
		if line.Stream == "stderr" {
			w = stderr
		}
		if w != nil {
			if _, err := w.Write(line.Data); err != nil {
				return nil, fmt.Errorf("write %s: %w", line.Stream, err)
			}
		}
	}
}

// Run boots a throwaway VM on the server.
func (r *remote) Run(ctx context.Context, o RunOptions) (*ExecResult, error) {
	e, err := execRequest(o.Exec)
	if err != nil {
		return nil, err
	}
	req := api.RunRequest{Image: o.Image, Backend: o.Backend, CPUs: o.CPUs, MemoryMiB: o.MemoryMiB, ExecRequest: e}
	return r.execCall(ctx, "/v1/run", req, o.Exec)
}

// Create creates a workspace. o.Progress is not called remotely.
func (r *remote) Create(ctx context.Context, o CreateOptions) (*WorkspaceInfo, error) {
	req := api.CreateRequest{Name: o.Name, Image: o.Image, Backend: o.Backend, CPUs: o.CPUs, MemoryMiB: o.MemoryMiB, Seed: absPath(o.Seed)}
	if o.DiskSize != 0 {
		req.DiskSize = strconv.FormatInt(o.DiskSize, 10)
	}
	return callT[WorkspaceInfo](ctx, r, http.MethodPost, "/v1/workspaces", nil, req)
}

func (r *remote) List(ctx context.Context) ([]WorkspaceInfo, error) {
	return callList[WorkspaceInfo](ctx, r, "/v1/workspaces", nil)
}

func (r *remote) Get(ctx context.Context, ref string) (*WorkspaceInfo, error) {
	return callT[WorkspaceInfo](ctx, r, http.MethodGet, wsPath(ref), nil, nil)
}

func (r *remote) Start(ctx context.Context, ref string) (*WorkspaceInfo, error) {
	return callT[WorkspaceInfo](ctx, r, http.MethodPost, wsPath(ref, "start"), nil, nil)
}

func (r *remote) Stop(ctx context.Context, ref string) (*WorkspaceInfo, error) {
	return callT[WorkspaceInfo](ctx, r, http.MethodPost, wsPath(ref, "stop"), nil, nil)
}

func (r *remote) Delete(ctx context.Context, ref string, force bool) (*WorkspaceInfo, error) {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	return callT[WorkspaceInfo](ctx, r, http.MethodDelete, wsPath(ref), q, nil)
}

func (r *remote) Exec(ctx context.Context, ref string, o ExecOptions) (*ExecResult, error) {
	if (o.Detach || o.Yield > 0) && (o.Stdout != nil || o.Stderr != nil) {
		return nil, fmt.Errorf("a detached command's output goes to the command log, not to writers: read it with CommandRead: %w", ErrInvalidArgument)
	}
	req, err := execRequest(o)
	if err != nil {
		return nil, err
	}
	return r.execCall(ctx, wsPath(ref, "exec"), req, o)
}

func (r *remote) Logs(ctx context.Context, ref string, o LogsOptions) ([]Command, error) {
	var q url.Values
	if o.Tail != 0 {
		q = url.Values{"tail": {strconv.Itoa(o.Tail)}}
	}
	return callList[Command](ctx, r, wsPath(ref, "logs"), q)
}

// CommandOutput reads a logged command's output page by page.
func (r *remote) CommandOutput(ctx context.Context, ref, commandID, stream string) (io.ReadCloser, *Command, error) {
	cmds, err := r.Logs(ctx, ref, LogsOptions{})
	if err != nil {
		return nil, nil, err
	}
	for i := range cmds {
		if cmds[i].ID == commandID {
			return &outputReader{ctx: ctx, r: r, ref: ref, id: commandID, stream: stream}, &cmds[i], nil
		}
	}
	return nil, nil, fmt.Errorf("command %q in workspace %q: %w", commandID, ref, ErrNotFound)
}

// outputReader pages through CommandRead up to the output's size.
type outputReader struct {
	ctx             context.Context
	r               *remote
	ref, id, stream string
	off             int64
	buf             []byte
	done            bool
}

func (o *outputReader) Read(p []byte) (int, error) {
	for len(o.buf) == 0 {
		if o.done {
			return 0, io.EOF
		}
		out, err := o.r.CommandRead(o.ctx, o.ref, o.id, o.stream, o.off, 256<<10)
		if err != nil {
			return 0, err
		}
		data := []byte(out.Data)
		if out.Encoding == "base64" {
			if data, err = base64.StdEncoding.DecodeString(out.Data); err != nil {
				return 0, fmt.Errorf("command output: %v: %w", err, errdefs.ErrInternal)
			}
		}
		o.buf, o.off = data, out.NextOffset
		o.done = out.NextOffset >= out.TotalBytes || len(data) == 0
	}
	n := copy(p, o.buf)
	o.buf = o.buf[n:]
	return n, nil
}

func (o *outputReader) Close() error { return nil }

func (r *remote) SyncPush(ctx context.Context, ref, src string, o SyncOptions) (*SyncResult, error) {
	req := api.SyncPushRequest{Source: absPath(src), Dest: o.Dest, Delete: o.Delete}
	return callT[SyncResult](ctx, r, http.MethodPost, wsPath(ref, "sync"), nil, req)
}

func (r *remote) Diff(ctx context.Context, ref string, o DiffOptions) (*DiffResult, error) {
	q := url.Values{}
	for _, p := range o.Paths {
		q.Add("paths", p)
	}
	if o.NoPatch {
		q.Set("no_patch", "true")
	}
	return callT[DiffResult](ctx, r, http.MethodGet, wsPath(ref, "diff"), q, nil)
}

func (r *remote) Export(ctx context.Context, ref, guestPath, hostDest string, o ExportOptions) (*ExportResult, error) {
	req := api.ExportRequest{GuestPath: guestPath, HostDest: absPath(hostDest), Archive: o.Archive, Force: o.Force}
	return callT[ExportResult](ctx, r, http.MethodPost, wsPath(ref, "export"), nil, req)
}

func (r *remote) ShellOpen(ctx context.Context, ref string, o ShellOpenOptions) (*Shell, error) {
	req := api.ShellOpenRequest{Cwd: o.Cwd, Env: o.Env, Cols: o.Cols, Rows: o.Rows}
	return callT[Shell](ctx, r, http.MethodPost, wsPath(ref, "shells"), nil, req)
}

func (r *remote) ShellWrite(ctx context.Context, ref, shellID string, data []byte) (*Shell, error) {
	var req api.ShellWriteRequest
	if utf8.Valid(data) {
		req.Data = string(data)
	} else {
		req.DataBase64 = base64.StdEncoding.EncodeToString(data)
	}
	return callT[Shell](ctx, r, http.MethodPost, wsPath(ref, "shells", shellID, "write"), nil, req)
}

func (r *remote) ShellRead(ctx context.Context, ref, shellID string, o ShellReadOptions) (*ShellOutput, error) {
	q := url.Values{}
	if o.Cursor != nil {
		q.Set("cursor", strconv.FormatInt(*o.Cursor, 10))
	}
	if o.Wait > 0 {
		q.Set("wait_ms", strconv.FormatInt(millis(o.Wait), 10))
	}
	if o.Plain {
		q.Set("plain", "true")
	}
	return callT[ShellOutput](ctx, r, http.MethodGet, wsPath(ref, "shells", shellID, "output"), q, nil)
}

func (r *remote) ShellResize(ctx context.Context, ref, shellID string, cols, rows int) (*Shell, error) {
	return callT[Shell](ctx, r, http.MethodPost, wsPath(ref, "shells", shellID, "resize"), nil, api.ShellResizeRequest{Cols: cols, Rows: rows})
}

func (r *remote) ShellSignal(ctx context.Context, ref, shellID, signal string) (*Shell, error) {
	return callT[Shell](ctx, r, http.MethodPost, wsPath(ref, "shells", shellID, "signal"), nil, api.ShellSignalRequest{Signal: signal})
}

func (r *remote) ShellClose(ctx context.Context, ref, shellID string) (*Shell, error) {
	return callT[Shell](ctx, r, http.MethodDelete, wsPath(ref, "shells", shellID), nil, nil)
}

func (r *remote) ShellList(ctx context.Context, ref string) ([]Shell, error) {
	return callList[Shell](ctx, r, wsPath(ref, "shells"), nil)
}

// ShellAttach is not available over the HTTP API.
func (r *remote) ShellAttach(ctx context.Context, ref, shellID string, stdin io.Reader, stdout io.Writer, resize <-chan [2]int) error {
	return fmt.Errorf("shell attach over the HTTP API: use ShellWrite and ShellRead, or attach with the local CLI: %w", ErrNotImplemented)
}

func (r *remote) CommandWait(ctx context.Context, ref, commandID string, timeout time.Duration) (*ExecResult, error) {
	return callT[ExecResult](ctx, r, http.MethodPost, wsPath(ref, "commands", commandID, "wait"), nil, api.CommandWaitRequest{TimeoutMS: millis(timeout)})
}

func (r *remote) CommandRead(ctx context.Context, ref, commandID, stream string, offset int64, limit int) (*CommandOutput, error) {
	q := url.Values{}
	if stream != "" {
		q.Set("stream", stream)
	}
	if offset != 0 {
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return callT[CommandOutput](ctx, r, http.MethodGet, wsPath(ref, "commands", commandID, "output"), q, nil)
}

func (r *remote) CommandKill(ctx context.Context, ref, commandID, signal string) (*ExecResult, error) {
	return callT[ExecResult](ctx, r, http.MethodPost, wsPath(ref, "commands", commandID, "kill"), nil, api.CommandKillRequest{Signal: signal})
}
