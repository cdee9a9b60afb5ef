package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/cli"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/httpapi"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// kinds is every error kind of the contract with what each surface shows
// for it (docs/public-contract.md, "Errors").
var kinds = []struct {
	kind   errdefs.Kind
	err    error
	exit   int
	status int
}{
	{errdefs.KindInvalidArgument, hearth.ErrInvalidArgument, 2, http.StatusBadRequest},
	{errdefs.KindNotFound, hearth.ErrNotFound, 3, http.StatusNotFound},
	{errdefs.KindAlreadyExists, hearth.ErrAlreadyExists, 4, http.StatusConflict},
	{errdefs.KindFailedPrecondition, hearth.ErrFailedPrecondition, 4, http.StatusConflict},
	{errdefs.KindConflict, hearth.ErrConflict, 4, http.StatusConflict},
	{errdefs.KindUnavailable, hearth.ErrUnavailable, 5, http.StatusServiceUnavailable},
	{errdefs.KindTimeout, hearth.ErrTimeout, 124, http.StatusGatewayTimeout},
	{errdefs.KindResourceExhausted, hearth.ErrResourceExhausted, 1, http.StatusInsufficientStorage},
	{errdefs.KindNotImplemented, hearth.ErrNotImplemented, 1, http.StatusNotImplemented},
	{errdefs.KindCanceled, hearth.ErrCanceled, 130, 499},
	{errdefs.KindInternal, hearth.ErrInternal, 1, http.StatusInternalServerError},
}

// TestErrorKindsOnEverySurface makes the engine fail with each kind and
// checks the HTTP status and body, the MCP error result, the Go SDK's
// sentinel, and the CLI's exit status and --json body (the CLI driving the
// same server with --remote).
func TestErrorKindsOnEverySurface(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(httpapi.New(f, httpapi.Options{}))
	defer srv.Close()
	cs := mcpSession(t, f)
	goc, err := hearth.New(hearth.WithRemote(srv.URL, ""))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[errdefs.Kind]bool{}
	for _, k := range kinds {
		seen[k.kind] = true
		t.Run(string(k.kind), func(t *testing.T) {
			msg := fmt.Sprintf("workspace \"demo\": a %s failure", k.kind)
			f.mu.Lock()
			f.err = fmt.Errorf("%s: %w", msg, k.err)
			f.mu.Unlock()
			if got := errdefs.Classify(f.err); got != k.kind {
				t.Fatalf("Classify = %s", got)
			}

			resp, err := http.Get(srv.URL + "/v1/workspaces/demo")
			if err != nil {
				t.Fatal(err)
			}
			var body api.ErrorBody
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != k.status || body.Error.Kind != string(k.kind) || !strings.Contains(body.Error.Message, msg) {
				t.Errorf("http: %d %+v, want %d %s", resp.StatusCode, body.Error, k.status, k.kind)
			}

			res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "workspace_show", Arguments: map[string]any{"workspace": "demo"}})
			if err != nil {
				t.Fatal(err)
			}
			if txt := contentText(res); !res.IsError || !strings.Contains(txt, msg) || !strings.Contains(txt, "["+string(k.kind)+"]") {
				t.Errorf("mcp: isError %v, %q", res.IsError, txt)
			}

			_, err = goc.Workspace("demo").Show(context.Background())
			if !errors.Is(err, k.err) || !strings.Contains(fmt.Sprint(err), msg) {
				t.Errorf("go: %v, want errors.Is %v", err, k.err)
			}

			var out, errOut bytes.Buffer
			code := cli.Run(context.Background(), []string{"--remote", srv.URL, "--json", "workspace", "show", "demo"}, strings.NewReader(""), &out, &errOut)
			body = api.ErrorBody{}
			if err := json.Unmarshal(out.Bytes(), &body); err != nil {
				t.Errorf("cli --json: %v: %q", err, out.String())
			}
			if code != k.exit || body.Error.Kind != string(k.kind) || !strings.Contains(errOut.String(), msg) {
				t.Errorf("cli: exit %d, %+v, stderr %q; want exit %d", code, body.Error, errOut.String(), k.exit)
			}
		})
	}
	for _, k := range errdefs.Kinds() {
		if !seen[k] {
			t.Errorf("error kind %s has no row here", k)
		}
	}
}
