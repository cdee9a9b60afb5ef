package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
)

// StreamLine is one line of a streamed exec response (NDJSON): output
// chunks {"stream":"stdout"|"stderr","data":"<base64>"}, then exactly one
// {"result":{...}} or {"error":{...}}.
type StreamLine struct {
	Stream string          `json:"stream,omitempty"`
	Data   []byte          `json:"data,omitempty"`
	Result *api.ExecResult `json:"result,omitempty"`
	Error  *api.Error      `json:"error,omitempty"`
}

// wantsStream says whether the client asked for NDJSON output.
func wantsStream(r *http.Request) bool {
	if v := r.URL.Query().Get("stream"); v != "" && v != "0" && v != "false" {
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), NDJSON)
}

// stream runs call with the command's output going out as NDJSON lines as
// it arrives. The response
// starts with the first output, so an error before any output (unknown
// workspace, bad argument) still gets its proper status.
func (s *server) stream(w http.ResponseWriter, call func(st hearth.Streams) (any, error)) (any, error) {
	nw := &ndjsonWriter{w: w}
	out, err := call(hearth.Streams{Stdout: nw.stream("stdout"), Stderr: nw.stream("stderr")})
	res, _ := out.(*api.ExecResult)
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if !nw.started {
		if err != nil {
			return nil, err
		}
		nw.start()
	}
	line := StreamLine{Result: res}
	if err != nil {
		b := ErrorBody(err)
		line = StreamLine{Error: &b.Error}
	}
	nw.line(&line)
	return handled, nil
}

// ndjsonWriter writes NDJSON lines, flushing each.
type ndjsonWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	started bool
	failed  bool
}

func (n *ndjsonWriter) start() {
	n.w.Header().Set("Content-Type", NDJSON)
	n.w.Header().Set("X-Content-Type-Options", "nosniff")
	n.w.WriteHeader(http.StatusOK)
	n.started = true
}

// line writes one line; a client that went away turns later writes into
// no-ops (its request context is cancelled, which ends the command).
func (n *ndjsonWriter) line(l *StreamLine) {
	if n.failed {
		return
	}
	b, _ := json.Marshal(l)
	if _, err := n.w.Write(append(b, '\n')); err != nil {
		n.failed = true
		return
	}
	http.NewResponseController(n.w).Flush()
}

func (n *ndjsonWriter) stream(name string) *streamWriter { return &streamWriter{n: n, name: name} }

// streamWriter is the io.Writer of one output stream.
type streamWriter struct {
	n    *ndjsonWriter
	name string
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if !s.n.started {
		s.n.start()
	}
	s.n.line(&StreamLine{Stream: s.name, Data: p})
	return len(p), nil
}
