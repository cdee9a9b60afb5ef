// Package ops is the one place an operation of hearth's contract is
// defined: its name, summary, request and result types (package api),
// defaults (the request types' struct tags), annotations, HTTP method and
// path, CLI path, Python method, and the call into the engine. Everything
// else is derived from this table:
//   - the MCP tools, their input and output schemas (internal/mcp);
//   - the HTTP routes and the OpenAPI document (internal/httpapi);
//   - the remote Go engine behind hearth.WithRemote (remote.go);
//   - the operation table of docs/public-contract.md and
//     docs/operations.json, which the Python tests read (go run ./internal/ops/gen).
//
// Tests check the CLI's flags and the Python SDK's keywords against the
// request fields, and fail naming any surface that disagrees.
//
// Adding an operation: add its request (and result) type to package api,
// an entry here, the engine method on workspace.Manager, the Go SDK method
// (hearth.go, which calls Client.invoke), the CLI command and the Python
// method; then run `go run ./internal/ops/gen`.
package ops

import (
	"context"
	"io"
	"reflect"

	"github.com/hearthvm/hearth/internal/workspace"
)

// Op is one operation of the contract.
type Op struct {
	// Name is the canonical name, also the MCP tool name.
	Name string
	// Summary is one line on what it does.
	Summary string
	// Guide tells a model (and the reader of the docs) when to use it and
	// what to call next.
	Guide string
	// CLI is the command path after `hearth`.
	CLI string
	// Go is the SDK method (Client.X or Workspace.X).
	Go string
	// Python is the Python SDK method (Client.x or Workspace.x).
	Python string
	// Method and Path are the HTTP route; {name} segments bind request
	// fields tagged path:"true".
	Method, Path string
	// Request and Result are zero values of the api types.
	Request, Result any
	// ReadOnly, Destructive and Idempotent are the MCP annotations.
	ReadOnly, Destructive, Idempotent bool
	// Stream is set when output can stream (HTTP NDJSON) as it is made.
	Stream bool
	// MCP holds the defaults MCP applies instead of the contract's, under
	// the same field names, so no MCP call blocks past its clients' limits.
	MCP map[string]int64
	// ArgsDoc overrides ArgDocs for this operation's arguments.
	ArgsDoc map[string]string

	local func(ctx context.Context, m *workspace.Manager, req any, s IO) (any, error)
}

// IO is what travels beside a request in-process: streams and progress.
// Over HTTP, Stdin goes in the request (stdin_base64) and output streams as
// NDJSON when the operation has Stream set.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Progress       func(string)
}

// RequestType and ResultType are the operation's api types.
func (o Op) RequestType() reflect.Type { return reflect.TypeOf(o.Request) }

// ResultType is the type of the operation's result.
func (o Op) ResultType() reflect.Type { return reflect.TypeOf(o.Result) }

// NewRequest returns a pointer to a new zero request.
func (o Op) NewRequest() any { return reflect.New(o.RequestType()).Interface() }

// Call runs the operation on m. req is the request (a value or a pointer
// to one); Prepare has been applied by the caller.
func (o Op) Call(ctx context.Context, m *workspace.Manager, req any, s IO) (any, error) {
	v := reflect.ValueOf(req)
	if v.Kind() == reflect.Pointer {
		req = v.Elem().Interface()
	}
	return o.local(ctx, m, req, s)
}

// ByName returns the operation called name.
func ByName(name string) (Op, bool) {
	for _, o := range All {
		if o.Name == name {
			return o, true
		}
	}
	return Op{}, false
}

// bind adapts a typed engine call to Op.local.
func bind[Req, Res any](f func(ctx context.Context, m *workspace.Manager, r Req, s IO) (Res, error)) func(context.Context, *workspace.Manager, any, IO) (any, error) {
	return func(ctx context.Context, m *workspace.Manager, req any, s IO) (any, error) {
		r, ok := req.(Req)
		if !ok {
			var want Req
			return nil, errWrongRequest(req, want)
		}
		return f(ctx, m, r, s)
	}
}
