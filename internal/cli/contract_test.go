package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/ops"
	"github.com/spf13/pflag"
)

// TestFlagsMatchTable checks every CLI flag that stands for a request
// field against the operation table: its name (the field's JSON name in
// kebab case, or its cli tag), its type, and its default. A field marked
// cli:"arg" is positional and cli:"-" is taken another way (help says how).
func TestFlagsMatchTable(t *testing.T) {
	root := newRoot(&globals{stdout: io.Discard, stderr: io.Discard})
	for _, o := range ops.All {
		// A CLI path may end in the flag that selects the operation
		// ("workspace logs --prune").
		path, flag, _ := strings.Cut(o.CLI, " --")
		cmd, _, err := root.Find(strings.Fields(path))
		if err != nil || cmd.CommandPath() != "hearth "+path {
			t.Errorf("%s: no `hearth %s` command", o.Name, path)
			continue
		}
		if flag != "" && cmd.Flags().Lookup(flag) == nil {
			t.Errorf("%s: `hearth %s` has no --%s", o.Name, path, flag)
		}
		for _, a := range o.Args() {
			if a.CLI == "arg" || a.CLI == "-" {
				continue
			}
			f := cmd.Flags().Lookup(a.CLI)
			if f == nil {
				t.Errorf("%s: `hearth %s` has no --%s for argument %s", o.Name, o.CLI, a.CLI, a.Name)
				continue
			}
			if a.GoType().Kind() == reflect.Pointer {
				// An optional value: the flag's sentinel stands for "not given".
				continue
			}
			if err := flagAgrees(a, f); err != nil {
				t.Errorf("%s: `hearth %s --%s` disagrees with argument %s: %v", o.Name, o.CLI, a.CLI, a.Name, err)
			}
		}
	}
}

// flagAgrees compares a flag's type and default with an argument's.
func flagAgrees(a ops.Arg, f *pflag.Flag) error {
	typ := f.Value.Type()
	switch a.Type {
	case "string":
		if typ != "string" {
			return fmt.Errorf("flag type %s, want string", typ)
		}
		if f.DefValue != a.Default {
			return fmt.Errorf("flag default %q, table default %q", f.DefValue, a.Default)
		}
	case "boolean":
		if typ != "bool" {
			return fmt.Errorf("flag type %s, want bool", typ)
		}
		if want := strconv.FormatBool(a.Default == "true"); f.DefValue != want {
			return fmt.Errorf("flag default %s, table default %s", f.DefValue, want)
		}
	case "array":
		if typ != "stringArray" && typ != "stringSlice" {
			return fmt.Errorf("flag type %s, want a repeatable string flag", typ)
		}
	case "integer":
		def, _ := strconv.ParseInt(orZero(a.Default), 10, 64)
		if strings.HasSuffix(a.Name, "_ms") {
			if typ != "duration" {
				return fmt.Errorf("flag type %s, want a duration for %s", typ, a.Name)
			}
			d, err := time.ParseDuration(f.DefValue)
			if err != nil || d.Milliseconds() != def {
				return fmt.Errorf("flag default %s, table default %d ms", f.DefValue, def)
			}
			return nil
		}
		if typ != "int" && typ != "int64" {
			return fmt.Errorf("flag type %s, want an integer", typ)
		}
		if n, _ := strconv.ParseInt(f.DefValue, 10, 64); n != def {
			return fmt.Errorf("flag default %s, table default %d", f.DefValue, def)
		}
	default:
		return fmt.Errorf("argument type %s has no CLI rule", a.Type)
	}
	return nil
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// TestArgErrorsNameFlags: an argument error names the flag on the CLI and
// the JSON name (with "arg") in --json output, from the same error.
func TestArgErrorsNameFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		flag, arg string
	}{
		{[]string{"workspace", "create", "--memory", "64"}, "--memory: 64 MiB is too small", "memory_mib"},
		{[]string{"workspace", "create", "--cpus", "99"}, "--cpus: 99", "cpus"},
		{[]string{"run", "--memory", "64", "--", "true"}, "--memory: 64 MiB", "memory_mib"},
	} {
		var out, errb bytes.Buffer
		code := Run(t.Context(), append([]string{"--home", t.TempDir()}, tc.args...), strings.NewReader(""), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.flag) || strings.Contains(errb.String(), "hearth: "+tc.arg+":") {
			t.Errorf("%v: exit %d, stderr %q, want it to say %q", tc.args, code, errb.String(), tc.flag)
		}
		out.Reset()
		errb.Reset()
		Run(t.Context(), append([]string{"--home", t.TempDir(), "--json"}, tc.args...), strings.NewReader(""), &out, &errb)
		var eb api.ErrorBody
		if err := json.Unmarshal(out.Bytes(), &eb); err != nil || eb.Error.Arg != tc.arg || eb.Error.Kind != "invalid_argument" {
			t.Errorf("%v --json: %s (%v), want arg %q", tc.args, out.String(), err, tc.arg)
		}
	}
}
