package httpapi

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/ops"
)

// GenerateOpenAPI builds the OpenAPI 3.1 document from the route table,
// the operation registry and the api types. The committed copies
// (openapi.json here, served, and docs/openapi.json) are its output; a
// test keeps them equal (go test ./internal/httpapi -run OpenAPI -update).
func GenerateOpenAPI() []byte {
	g := &schemaGen{schemas: map[string]any{}}
	paths := map[string]map[string]any{}
	errResp := map[string]any{"description": "An error (see docs/http-api.md for the kinds and statuses)",
		"content": map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(api.ErrorBody{}))}}}
	for _, op := range ops.All {
		method, path := strings.ToLower(op.Method), op.Path
		o := map[string]any{"operationId": op.Name, "summary": op.Summary,
			"description": op.Guide + "\n\nCLI: hearth " + op.CLI + "; Go: " + op.Go + "; Python: " + op.Python + "."}
		var params []any
		body := map[string]any{}
		var required []string
		for _, a := range op.Args() {
			ps := g.schema(a.GoType())
			if a.Default != "" || a.Max != "" || a.Doc != "" {
				ps = withArg(ps, a)
			}
			switch {
			case a.Path:
				params = append(params, map[string]any{"name": a.Name, "in": "path", "required": true, "description": a.Doc, "schema": ps})
			case method == "get" || method == "delete":
				params = append(params, map[string]any{"name": a.Name, "in": "query", "description": a.Doc, "schema": ps})
			default:
				body[a.Name] = ps
				if a.Required {
					required = append(required, a.Name)
				}
			}
		}
		if len(body) > 0 {
			bs := map[string]any{"type": "object", "properties": body, "additionalProperties": false}
			if len(required) > 0 {
				bs["required"] = required
			}
			o["requestBody"] = map[string]any{"required": len(required) > 0, "content": map[string]any{"application/json": map[string]any{"schema": bs}}}
		}
		if op.Stream {
			params = append(params, map[string]any{"name": "stream", "in": "query", "description": "1 streams NDJSON (as does Accept: application/x-ndjson)", "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		content := map[string]any{"application/json": map[string]any{"schema": g.schema(op.ResultType())}}
		if op.Stream {
			content[NDJSON] = map[string]any{"schema": g.schema(reflect.TypeOf(StreamLine{})),
				"description": "One JSON object per line: output chunks, then one result or error line"}
		}
		o["responses"] = map[string]any{"200": map[string]any{"description": "OK", "content": content}, "default": errResp}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][method] = o
	}
	paths["/v1/health"] = map[string]any{"get": map[string]any{"operationId": "health", "summary": "Readiness: the server answers",
		"responses": map[string]any{"200": map[string]any{"description": "OK", "content": map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(Health{}))}}}}}}
	paths["/v1/openapi.json"] = map[string]any{"get": map[string]any{"operationId": "openapi", "summary": "This document",
		"responses": map[string]any{"200": map[string]any{"description": "OK", "content": map[string]any{"application/json": map[string]any{}}}}}}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "hearth HTTP API", "version": api.ContractVersion,
			"description": "Persistent microVM workspaces. Served by `hearth serve` on a Unix socket (no token) or on TCP with a bearer token. Host paths are paths on the machine hearth serve runs on. See docs/http-api.md."},
		"paths":      paths,
		"components": map[string]any{"schemas": g.schemas, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n')
}

// withArg adds an argument's description, default and maximum to its
// schema (a copy).
func withArg(s map[string]any, a ops.Arg) map[string]any {
	c := map[string]any{}
	for k, v := range s {
		c[k] = v
	}
	if a.Doc != "" {
		c["description"] = a.Doc
	}
	if a.Default != "" {
		if n, err := strconv.ParseInt(a.Default, 10, 64); err == nil && a.Type == "integer" {
			c["default"] = n
		} else {
			c["default"] = a.Default
		}
	}
	if a.Max != "" {
		n, _ := strconv.ParseInt(a.Max, 10, 64)
		c["maximum"] = n
	}
	return c
}

type field struct {
	name     string
	typ      reflect.Type
	required bool
}

// fieldsOf lists a struct's JSON fields, embedded structs flattened.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			out = append(out, fieldsOf(sf.Type)...)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		out = append(out, field{name: name, typ: sf.Type, required: !strings.Contains(opts, "omitempty")})
	}
	return out
}

type schemaGen struct{ schemas map[string]any }

// names renames types whose Go names say little out of their package.
var names = map[string]string{"Result": "DiffResult", "File": "DiffFile", "Summary": "DiffSummary"}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	if t == reflect.TypeOf(time.Time{}) {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		var req []string
		for _, f := range fieldsOf(t) {
			props[f.name] = g.schema(f.typ)
			if f.required {
				req = append(req, f.name)
			}
		}
		s := map[string]any{"type": "object", "properties": props}
		if len(req) > 0 {
			s["required"] = req
		}
		name := t.Name()
		if name == "" {
			return s
		}
		if n, ok := names[name]; ok {
			name = n
		}
		if name == "noParams" {
			name = "Empty"
		}
		g.schemas[name] = s
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}
