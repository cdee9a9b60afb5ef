package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"reflect"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ops"
)

// Invoker carries out operations: a *hearth.Client (FromClient), or a
// fake in tests.
type Invoker interface {
	Invoke(ctx context.Context, name string, req any, s hearth.Streams) (any, error)
}

// FromClient serves a Go SDK client.
func FromClient(c *hearth.Client) Invoker { return c }

// handled is returned by handlers that wrote the response themselves.
var handled = &struct{ written bool }{true}

// handle serves one operation: its route (method and path) and request
// come from the operation table. Path segments fill the request's path
// fields; GET and DELETE read the other fields from the query, other
// methods from the JSON body.
func (s *server) handle(op ops.Op, w http.ResponseWriter, r *http.Request) (any, error) {
	req := op.NewRequest()
	var extra []string
	if op.Stream {
		extra = append(extra, "stream")
	}
	if err := decode(r, req, extra...); err != nil {
		return nil, err
	}
	v := reflect.ValueOf(req).Elem()
	for _, a := range op.Args() {
		if !a.Path {
			continue
		}
		f := v.FieldByName(fieldName(op, a.Name))
		got, seg := f.String(), r.PathValue(a.Name)
		if got != "" && got != seg {
			return nil, errdefs.Arg(a.Name, "%q in the body differs from %q in the path: leave it out of the body", got, seg)
		}
		f.SetString(seg)
	}
	if s.opts.CheckRequest != nil {
		if err := s.opts.CheckRequest(op, req); err != nil {
			return nil, err
		}
	}
	if op.Stream && wantsStream(r) {
		return s.stream(w, func(st hearth.Streams) (any, error) {
			return s.inv.Invoke(r.Context(), op.Name, req, st)
		})
	}
	return s.inv.Invoke(r.Context(), op.Name, req, hearth.Streams{})
}

// fieldName finds the Go name of the request field with JSON name json.
func fieldName(op ops.Op, json string) string {
	for _, a := range op.Args() {
		if a.Name == json {
			return a.GoName()
		}
	}
	panic(fmt.Sprintf("httpapi: %s has no field %s", op.Name, json))
}
