// Package httpapi is hearth's HTTP/JSON API (`hearth serve`): one route per
// operation of the registry in internal/ops, each a thin layer over the Go
// SDK. Request bodies are the shapes of package api, decoded strictly
// (unknown fields are errors); responses are the SDK's result types as
// JSON; every error is an api.ErrorBody whose kind maps to one HTTP status
// (StatusOf). docs/http-api.md describes the API and docs/openapi.json
// (served at GET /v1/openapi.json) specifies it.
package httpapi

import (
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ops"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// NDJSON is the media type of streamed exec output.
const NDJSON = "application/x-ndjson"

//go:embed openapi.json
var openapiDoc []byte

// OpenAPI returns the OpenAPI 3.1 document of the API (docs/openapi.json).
func OpenAPI() []byte { return openapiDoc }

// Options configure the handler.
type Options struct {
	// Version is reported by GET /v1/health.
	Version string
	// Log receives one line per request and every recovered panic
	// (default: discard).
	Log *slog.Logger
	// CheckRequest, when set, vets every decoded request before it runs
	// (host path confinement); its error is returned to the caller.
	CheckRequest func(op ops.Op, req any) error
}

type server struct {
	inv  Invoker
	opts Options
	log  *slog.Logger
}

// New returns the API handler over inv (see FromClient). It does not check
// tokens: wrap it with RequireToken when it listens on TCP.
func New(inv Invoker, opts Options) http.Handler {
	s := &server{inv: inv, opts: opts, log: opts.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.Version == "" {
		s.opts.Version = "dev"
	}
	mux := http.NewServeMux()
	for _, op := range ops.All {
		mux.Handle(op.Method+" "+op.Path, s.wrap(op))
	}
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, Health{OK: true, Version: s.opts.Version, Contract: api.ContractVersion})
	})
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapiDoc)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &statusError{status: http.StatusNotFound, kind: errdefs.KindNotFound,
			msg: fmt.Sprintf("no route for %s %s (the API is described at GET /v1/openapi.json)", r.Method, r.URL.Path)})
	})
	return s.recoverer(mux)
}

// Health is the body of GET /v1/health.
type Health struct {
	OK       bool   `json:"ok"`
	Version  string `json:"version"`
	Contract string `json:"contract"`
}

// wrap runs one route: decode, call, encode, log.
func (s *server) wrap(op ops.Op) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		res, err := s.handle(op, w, r)
		switch {
		case err != nil:
			writeError(w, err)
		case res == handled:
		default:
			writeJSON(w, http.StatusOK, res)
		}
		s.log.Info("request", "op", op.Name, "method", r.Method, "path", r.URL.Path,
			"ms", time.Since(start).Milliseconds(), "error", errString(err))
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// StatusOf maps an error's kind to its HTTP status.
func StatusOf(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return errdefs.HTTPStatus(err)
}

// statusError is an error with an explicit status (413, 401, 404 routes).
type statusError struct {
	status int
	kind   errdefs.Kind
	msg    string
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return errdefs.FromKind(e.kind) }

// ErrorBody returns the JSON error shape of err.
func ErrorBody(err error) api.ErrorBody {
	var b api.ErrorBody
	b.Error.Kind = string(errdefs.Classify(err))
	b.Error.Message = err.Error()
	b.Error.Arg = errdefs.ArgOf(err)
	return b
}

func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, StatusOf(err), ErrorBody(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// recoverer turns a handler panic into a 500 JSON error (when nothing was
// written yet) and keeps the server running.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
			if !tw.wrote {
				writeError(tw, fmt.Errorf("internal error serving %s %s: %v: %w", r.Method, r.URL.Path, p, errdefs.ErrInternal))
			}
		}()
		next.ServeHTTP(tw, r)
	})
}

// trackingWriter remembers whether the header was sent.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Flush passes flushes through (streamed exec output).
func (t *trackingWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// RequireToken wraps h so every request must carry "Authorization: Bearer
// <token>" (compared in constant time); others get 401 with a JSON error.
func RequireToken(h http.Handler, token string) http.Handler {
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || len(want) == 0 || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hearth"`)
			writeError(w, &statusError{status: http.StatusUnauthorized, kind: errdefs.KindInvalidArgument,
				msg: "missing or wrong bearer token: send 'Authorization: Bearer <token>' with the token hearth serve was started with (--token-file or HEARTH_TOKEN)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}
