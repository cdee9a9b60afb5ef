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
	"reflect"
	"strconv"
	"strings"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ops"
)

// remote is the engine of a Client made with WithRemote: it speaks the
// HTTP API of `hearth serve` (internal/httpapi, docs/http-api.md).
type remote struct {
	addr  string
	base  string // http://host:port, or http://hearth for a Unix socket
	token string
	hc    *http.Client
}

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
	return remoteErr(eb.Error)
}

// remoteErr rebuilds a server's error: an argument error stays one, so
// errdefs.ArgOf names the argument on this side too.
func remoteErr(e api.Error) error {
	if e.Arg != "" && errdefs.Kind(e.Kind) == errdefs.KindInvalidArgument {
		return &errdefs.ArgError{Arg: e.Arg, Msg: strings.TrimPrefix(e.Message, e.Arg+": ")}
	}
	return &remoteError{kind: errdefs.Kind(e.Kind), msg: e.Message}
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

// absPath makes a host path absolute: a remote server resolves paths on
// its own machine.
func absPath(p string) string {
	if p == "" {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// maxRemoteStdin bounds stdin sent inside a request.
const maxRemoteStdin = 1<<20 - 4096

// invoke carries out op over the HTTP API: path fields fill the route's
// {name} segments, the other fields go in the query (GET, DELETE) or the
// JSON body; stdin travels as stdin_base64; output streams as NDJSON when
// the caller gave writers.
func (r *remote) invoke(ctx context.Context, op ops.Op, req any, s Streams) (any, error) {
	rv := reflect.ValueOf(req)
	if rv.Kind() != reflect.Pointer || rv.Elem().Type() != op.RequestType() {
		return nil, fmt.Errorf("%s: request of type %T, want *%s: %w", op.Name, req, op.RequestType(), errdefs.ErrInternal)
	}
	if s.Stdin != nil {
		b, err := ops.ReadAllLimited(s.Stdin, maxRemoteStdin, "stdin")
		if err != nil {
			return nil, err
		}
		f := rv.Elem().FieldByName("StdinBase64")
		if !f.IsValid() {
			return nil, errdefs.Arg("stdin", "%s takes no stdin", op.Name)
		}
		f.SetString(base64.StdEncoding.EncodeToString(b))
	}
	fields := map[string]any{}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s request: %w", op.Name, err)
	}
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("encode %s request: %w", op.Name, err)
	}
	path := op.Path
	for _, a := range op.Args() {
		if !a.Path {
			continue
		}
		v, _ := fields[a.Name].(string)
		if v == "" {
			return nil, errdefs.Arg(a.Name, "is required")
		}
		path = strings.Replace(path, "{"+a.Name+"}", url.PathEscape(v), 1)
		delete(fields, a.Name)
	}
	var q url.Values
	var body any
	if op.Method == http.MethodGet || op.Method == http.MethodDelete {
		q = url.Values{}
		for k, v := range fields {
			switch v := v.(type) {
			case []any:
				for _, x := range v {
					q.Add(k, fmt.Sprint(x))
				}
			case float64:
				q.Set(k, strconv.FormatFloat(v, 'f', -1, 64))
			default:
				q.Set(k, fmt.Sprint(v))
			}
		}
	} else if len(fields) > 0 {
		body = fields
	}
	out := reflect.New(op.ResultType())
	if op.Stream && (s.Stdout != nil || s.Stderr != nil) {
		res, err := r.stream(ctx, path, body, s.Stdout, s.Stderr)
		if err != nil {
			return nil, err
		}
		return res, nil
	}
	if err := r.call(ctx, op.Method, path, q, body, out.Interface()); err != nil {
		return nil, err
	}
	return out.Interface(), nil
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
			Error  *api.Error  `json:"error"`
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
			return nil, remoteErr(*line.Error)
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
