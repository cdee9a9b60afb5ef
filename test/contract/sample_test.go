package contract

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/ops"
)

// addMissing writes a golden file for each operation that has none, with
// every request and result field set to a plausible value, so that any
// later rename or removal shows. Review a new file before checking it in.
func addMissing(t *testing.T) {
	for _, op := range ops.All {
		path := goldenPath(op.Name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		req := reflect.New(op.RequestType()).Elem()
		fill(req, "", op)
		res := reflect.New(op.ResultType()).Elem()
		fill(res, "", op)
		g := struct {
			Operation string `json:"operation"`
			Request   any    `json:"request"`
			Result    any    `json:"result"`
		}{op.Name, req.Interface(), res.Interface()}
		b, err := json.MarshalIndent(g, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: review it", path)
	}
}

// samples are values for fields by JSON name, where a type's plain
// sample would not read like a real call.
var samples = map[string]any{
	"ws": "demo", "workspace": "demo", "id": "ws-0a1b2c3d", "workspace_id": "ws-0a1b2c3d",
	"image": "debian-12", "backend": "qemu", "state": "running",
	"argv": []string{"python3", "-m", "http.server", "8000"}, "command": "make test",
	"cwd": "/workspace", "env": []string{"LANG=C.UTF-8"}, "path": "src/main.go",
	"paths": []string{"src"}, "seed": "/home/me/project", "src": "/home/me/project",
	"source": "/home/me/project", "dest": "/home/me/out", "dst": "/home/me/out",
	"destination": "/home/me/out", "to": "before-upgrade", "from": "before-upgrade",
	"snapshot": "before-upgrade", "disk_size": "8G", "size": "1G",
	"publish": []string{"8080:8000"}, "ready": []string{"port:8000"}, "restart": "on-failure",
	"signal": "TERM", "encoding": "base64", "stdout_encoding": "base64", "stderr_encoding": "base64",
	"kind": "disk", "mode": "allowlist", "allow": []string{"deb.example.test"},
	"message": "a message", "reason": "exited", "status": "finished",
	"mount": "/data", "format": "ext4", "protocol": "tcp", "host": "127.0.0.1",
	"stdin": "", "stdin_base64": "",
	"stdout": "aGVsbG8K", "stderr": "d2FybmluZwo=", "data": "aGVsbG8K", "output": "aGVsbG8K",
}

// fill sets every field of v to a sample.
func fill(v reflect.Value, name string, op ops.Op) {
	if s, ok := samples[name]; ok && reflect.TypeOf(s).AssignableTo(v.Type()) && name != "stdin" && name != "stdin_base64" {
		v.Set(reflect.ValueOf(s))
		return
	}
	if s, ok := samples[name]; ok && reflect.TypeOf(s).ConvertibleTo(v.Type()) && v.Kind() == reflect.String {
		v.Set(reflect.ValueOf(s).Convert(v.Type()))
		return
	}
	if v.Type() == reflect.TypeOf(time.Time{}) {
		v.Set(reflect.ValueOf(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if tag == "-" {
				continue
			}
			if sf.Anonymous {
				fill(v.Field(i), "", op)
				continue
			}
			if tag == "stdin" || tag == "stdin_base64" {
				continue // one or the other; a sample leaves both out
			}
			if d := sf.Tag.Get("default"); d != "" {
				if setScalar(v.Field(i), d) {
					continue
				}
			}
			if sf.Tag.Get("format") == "size" && v.Field(i).Kind() == reflect.String {
				v.Field(i).SetString("1G")
				continue
			}
			fill(v.Field(i), tag, op)
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), name, op)
		v.Set(p)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte("example bytes"))
			return
		}
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), strings.TrimSuffix(name, "s"), op)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, "key", op)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, "value", op)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("example-" + strings.ReplaceAll(name, "_", "-"))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		switch {
		case strings.HasSuffix(name, "_ms"):
			v.SetInt(30000)
		case strings.HasSuffix(name, "_bytes") || strings.HasSuffix(name, "_size"):
			v.SetInt(4096)
		case strings.Contains(name, "port"):
			v.SetInt(8000)
		default:
			v.SetInt(3)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(3)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Interface:
		// left empty: an open value has no fixed shape to freeze
	}
}

func setScalar(f reflect.Value, s string) bool {
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return false
		}
		f.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return false
		}
		f.SetBool(b)
	default:
		return false
	}
	return true
}
