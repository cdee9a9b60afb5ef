package cli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/ops"
)

func TestParseSize(t *testing.T) {
	cases := map[string]int64{"512M": 512 << 20, "8G": 8 << 30, "10GiB": 10 << 30, "1024": 1024, "2k": 2048, "1T": 1 << 40}
	for in, want := range cases {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"lots", "-1G", "1.5G", "G", "0"} {
		if _, err := parseSize(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestDetachReader(t *testing.T) {
	d := &detachReader{r: strings.NewReader("abc\x1ddef")}
	b, _ := io.ReadAll(d)
	if string(b) != "abc" {
		t.Fatalf("got %q", b)
	}
}

// TestUsageErrors checks that bad command lines exit 2 with a message that
// says what to do, without touching any VM.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"workspace", "show"}, "takes WS"},
		{[]string{"workspace", "create", "--cpus", "x"}, "invalid argument"},
		{[]string{"workspace", "export", "a", "b"}, "GUEST_PATH"},
		{[]string{"workspace", "sync", "push", "a"}, "SRC"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := Run(t.Context(), append(c.args, "--home", t.TempDir()), strings.NewReader(""), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q (want %q)", c.args, code, errb.String(), c.want)
		}
	}
}

// TestCLIHasEveryOp fails when the CLI lacks an operation of the registry.
func TestCLIHasEveryOp(t *testing.T) {
	root := newRoot(&globals{stdout: io.Discard, stderr: io.Discard})
	for _, o := range ops.All {
		path, _, _ := strings.Cut(o.CLI, " --")
		cmd, rest, err := root.Find(strings.Fields(path))
		if err != nil || len(rest) != 0 || cmd.CommandPath() != "hearth "+path {
			t.Errorf("%s: no `hearth %s` command (found %v, rest %v, err %v)", o.Name, path, cmd.CommandPath(), rest, err)
		}
	}
}
