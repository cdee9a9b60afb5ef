package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// decode fills v (a pointer to a request struct) from the request: the
// JSON body (which may be empty) and, for GET and DELETE, the query
// parameters named like the JSON fields. Unknown fields and parameters are
// invalid arguments; extra lists query parameters the route itself reads
// (like "stream").
func decode(r *http.Request, v any, extra ...string) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &statusError{status: http.StatusRequestEntityTooLarge, kind: errdefs.KindInvalidArgument,
				msg: fmt.Sprintf("request body is larger than %d bytes: send files by host path (seed, sync push) rather than in the body", MaxBodyBytes)}
		}
		return fmt.Errorf("read request body: %v: %w", err, errdefs.ErrUnavailable)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return bodyError(err)
		}
		if dec.More() {
			return fmt.Errorf("request body: unexpected data after the JSON object: %w", errdefs.ErrInvalidArgument)
		}
	}
	q := r.URL.Query()
	for _, k := range extra {
		q.Del(k)
	}
	if len(q) == 0 {
		return nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodDelete {
		for k := range q {
			return fmt.Errorf("unknown query parameter %q: %s %s takes its arguments in the JSON body: %w", k, r.Method, r.URL.Path, errdefs.ErrInvalidArgument)
		}
	}
	return decodeQuery(q, v)
}

// bodyError rewords a JSON decoding error.
func bodyError(err error) error {
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return fmt.Errorf("unknown field %s in the request body (the request shapes are in GET /v1/openapi.json): %w", f, errdefs.ErrInvalidArgument)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: want %s, got JSON %s: %w", te.Field, te.Type, te.Value, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("request body is not valid JSON: %s: %w", strings.TrimPrefix(msg, "json: "), errdefs.ErrInvalidArgument)
}

// decodeQuery sets the fields of the struct v points to from query
// parameters named by their JSON names.
func decodeQuery(q map[string][]string, v any) error {
	fields := map[string]reflect.Value{}
	jsonFields(reflect.ValueOf(v).Elem(), fields)
	for k, vals := range q {
		f, ok := fields[k]
		if !ok {
			return fmt.Errorf("unknown query parameter %q (the parameters are in GET /v1/openapi.json): %w", k, errdefs.ErrInvalidArgument)
		}
		if err := setField(f, vals); err != nil {
			return fmt.Errorf("query parameter %q: %v: %w", k, err, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// jsonFields maps the JSON names of a struct's fields (embedded structs
// flattened) to the fields.
func jsonFields(v reflect.Value, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			jsonFields(v.Field(i), out)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		out[name] = v.Field(i)
	}
}

func setField(f reflect.Value, vals []string) error {
	if f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String {
		f.Set(reflect.ValueOf(append([]string(nil), vals...)))
		return nil
	}
	if len(vals) != 1 {
		return fmt.Errorf("given %d times, want once", len(vals))
	}
	s := vals[0]
	if f.Kind() == reflect.Pointer {
		p := reflect.New(f.Type().Elem())
		if err := setScalar(p.Elem(), s); err != nil {
			return err
		}
		f.Set(p)
		return nil
	}
	return setScalar(f, s)
}

func setScalar(f reflect.Value, s string) error {
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		if s == "" {
			f.SetBool(true)
			return nil
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", s)
		}
		f.SetInt(n)
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}
