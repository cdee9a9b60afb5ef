// Package contract tests that the wire shapes of contract 1.0 do not
// change under a caller: every operation's checked-in request and result
// (testdata/golden) are replayed through the HTTP API, MCP and the remote
// Go SDK over an engine that answers with the checked-in result. A change
// that stops an old request from decoding to the same values, or that
// drops, renames or retypes a result field an old caller reads, fails here.
//
// The files are written once, when an operation is added
// (go test ./test/contract -run Golden -add), and never rewritten within a
// major version.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/httpapi"
	"github.com/hearthvm/hearth/internal/mcp"
	"github.com/hearthvm/hearth/internal/ops"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

var addGolden = flag.Bool("add", false, "write golden files for operations that have none (never rewrites one)")

// golden is one operation's checked-in example.
type golden struct {
	Operation string          `json:"operation"`
	Request   json.RawMessage `json:"request"`
	Result    json.RawMessage `json:"result"`
}

func goldenPath(name string) string { return filepath.Join("testdata", "golden", name+".json") }

func loadGolden(t *testing.T, op ops.Op) golden {
	t.Helper()
	b, err := os.ReadFile(goldenPath(op.Name))
	if err != nil {
		t.Fatalf("%s has no golden file (%v): a new operation adds one with `go test ./test/contract -run Golden -add`, then review it", op.Name, err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil || g.Operation != op.Name {
		t.Fatalf("%s: golden file is not {operation, request, result} for this operation: %v", goldenPath(op.Name), err)
	}
	return g
}

// fake is an engine that records the request it was given and answers
// with a canned result or error.
type fake struct {
	mu     sync.Mutex
	got    map[string]any
	result map[string]any
	err    error
}

func newFake() *fake { return &fake{got: map[string]any{}, result: map[string]any{}} }

func (f *fake) Invoke(ctx context.Context, name string, req any, s hearth.Streams) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got[name] = req
	if f.err != nil {
		return nil, f.err
	}
	r, ok := f.result[name]
	if !ok {
		return nil, fmt.Errorf("fake: no result for %s", name)
	}
	return r, nil
}

// request returns what the engine received for op, as JSON.
func (f *fake) request(t *testing.T, op string) map[string]any {
	t.Helper()
	f.mu.Lock()
	req, ok := f.got[op]
	delete(f.got, op)
	f.mu.Unlock()
	if !ok {
		t.Fatalf("%s: the engine was not called", op)
	}
	return toMap(t, req)
}

func toMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

// covers reports where got lacks or changes something want has: got may
// carry more (defaults filled in, fields added by a minor version).
func covers(want, got any, at string) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %v", at, got)}
		}
		var bad []string
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				bad = append(bad, fmt.Sprintf("%s.%s: missing", at, k))
				continue
			}
			bad = append(bad, covers(wv, gv, at+"."+k)...)
		}
		return bad
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d elements, got %v", at, len(w), got)}
		}
		var bad []string
		for i := range w {
			bad = append(bad, covers(w[i], g[i], fmt.Sprintf("%s[%d]", at, i))...)
		}
		return bad
	default:
		if !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s: want %v, got %v", at, want, got)}
		}
		return nil
	}
}

// resultValue decodes a golden result into the operation's result type,
// strictly: a field the type no longer has is an error.
func resultValue(t *testing.T, op ops.Op, raw json.RawMessage) any {
	t.Helper()
	v := reflect.New(op.ResultType()).Interface()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: the golden result no longer decodes into api.%s: %v", op.Name, op.ResultType().Name(), err)
	}
	return v
}

func decodeObject(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// httpRequest builds the HTTP request a 1.0 caller sends for a golden
// request: path fields in the path, the rest in the query (GET, DELETE)
// or the JSON body.
func httpRequest(t *testing.T, base string, op ops.Op, req map[string]any) *http.Request {
	t.Helper()
	path := op.Path
	rest := map[string]any{}
	for k, v := range req {
		rest[k] = v
	}
	for _, a := range op.Args() {
		if !a.Path {
			continue
		}
		s, _ := req[a.Name].(string)
		path = strings.Replace(path, "{"+a.Name+"}", url.PathEscape(s), 1)
		delete(rest, a.Name)
	}
	var body io.Reader
	if op.Method == http.MethodGet || op.Method == http.MethodDelete {
		q := url.Values{}
		for k, v := range rest {
			switch v := v.(type) {
			case []any:
				for _, e := range v {
					q.Add(k, fmt.Sprint(e))
				}
			case float64:
				q.Set(k, fmt.Sprintf("%d", int64(v)))
			case map[string]any:
				t.Fatalf("%s: %s is an object, which a query cannot carry", op.Name, k)
			default:
				q.Set(k, fmt.Sprint(v))
			}
		}
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
	} else if len(rest) > 0 {
		b, _ := json.Marshal(rest)
		body = bytes.NewReader(b)
	}
	r, err := http.NewRequest(op.Method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mcpSession(t *testing.T, inv mcp.Invoker) *sdk.ClientSession {
	t.Helper()
	s := mcp.NewServer(inv, mcp.Options{})
	st, ct := sdk.NewInMemoryTransports()
	ss, err := s.Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "golden", Version: "1.0.0"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestGolden replays every operation's golden request and result through
// HTTP, MCP and the remote Go SDK.
func TestGolden(t *testing.T) {
	if *addGolden {
		addMissing(t)
	}
	f := newFake()
	srv := httptest.NewServer(httpapi.New(f, httpapi.Options{}))
	defer srv.Close()
	cs := mcpSession(t, f)
	goc, err := hearth.New(hearth.WithRemote(srv.URL, ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops.All {
		t.Run(op.Name, func(t *testing.T) {
			g := loadGolden(t, op)
			wantReq := decodeObject(t, g.Request)
			res := resultValue(t, op, g.Result)
			f.mu.Lock()
			f.result[op.Name] = res
			f.mu.Unlock()
			var wantRes any
			json.Unmarshal(g.Result, &wantRes)

			t.Run("http", func(t *testing.T) {
				resp, err := http.DefaultClient.Do(httpRequest(t, srv.URL, op, wantReq))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s %s: %d %s", op.Method, op.Path, resp.StatusCode, body)
				}
				for _, b := range covers(wantReq, f.request(t, op.Name), "request") {
					t.Error(b)
				}
				var got any
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("response is not JSON: %v: %s", err, body)
				}
				for _, b := range covers(wantRes, got, "result") {
					t.Error(b)
				}
			})
			t.Run("mcp", func(t *testing.T) {
				res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: op.Name, Arguments: json.RawMessage(g.Request)})
				if err != nil {
					t.Fatal(err)
				}
				if res.IsError {
					t.Fatalf("tool error: %s", contentText(res))
				}
				for _, b := range covers(wantReq, f.request(t, op.Name), "request") {
					t.Error(b)
				}
				var got any
				b, _ := json.Marshal(res.StructuredContent)
				json.Unmarshal(b, &got)
				for _, b := range covers(wantRes, got, "result") {
					t.Error(b)
				}
			})
			t.Run("go", func(t *testing.T) {
				req := op.NewRequest()
				if err := json.Unmarshal(g.Request, req); err != nil {
					t.Fatal(err)
				}
				out, err := goc.Invoke(context.Background(), op.Name, req, hearth.Streams{})
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range covers(wantReq, f.request(t, op.Name), "request") {
					t.Error(b)
				}
				for _, b := range covers(wantRes, toAny(t, out), "result") {
					t.Error(b)
				}
			})
		})
	}
}

func toAny(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	json.Unmarshal(b, &out)
	return out
}

// TestGoldenFilesAreOperations fails on a golden file whose operation is
// gone: removing an operation needs a new major version.
func TestGoldenFilesAreOperations(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	var gone []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if _, ok := ops.ByName(name); !ok {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	if len(gone) > 0 {
		t.Fatalf("operations of contract 1.0 are gone: %v (removing one needs contract 2.0)", gone)
	}
	if len(files) < len(ops.All) {
		t.Fatalf("%d golden files for %d operations", len(files), len(ops.All))
	}
}

func contentText(res *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}
