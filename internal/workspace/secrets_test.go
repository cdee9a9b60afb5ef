package workspace

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/secrets"
)

func TestSecretExposureAndEnv(t *testing.T) {
	m := testManager(t, time.Second, time.Second)
	ctx := context.Background()
	const v1, v2, v3 = "value-one-1111", "value-two-2222", "value-three-3333"
	if _, err := m.SecretSet(ctx, "ONE", []byte(v1), SecretSetOptions{}); err != nil {
		t.Fatal(err)
	}
	m.SecretSet(ctx, "TWO", []byte(v2), SecretSetOptions{})
	m.SecretSet(ctx, "BROK", []byte(v3), SecretSetOptions{Hosts: []string{"api.example.com"}})

	for _, tc := range []struct {
		specs []string
		kind  error
		arg   string
	}{
		{[]string{"NOPE"}, errdefs.ErrNotFound, ""},
		{[]string{"TWO:brokered"}, errdefs.ErrInvalidArgument, "hosts"},
		{[]string{"ONE:sideways"}, errdefs.ErrInvalidArgument, "secrets"},
		{[]string{"ONE", "ONE:file"}, errdefs.ErrInvalidArgument, "secrets"},
		{[]string{"bad-name"}, errdefs.ErrInvalidArgument, "secrets"},
	} {
		_, err := m.createSecrets(tc.specs)
		if !errors.Is(err, tc.kind) || (tc.arg != "" && errdefs.ArgOf(err) != tc.arg) {
			t.Errorf("%v: %v (arg %q), want %v %s", tc.specs, err, errdefs.ArgOf(err), tc.kind, tc.arg)
		}
		for _, v := range []string{v1, v2, v3} {
			if err != nil && strings.Contains(err.Error(), v) {
				t.Errorf("%v: error holds a value: %v", tc.specs, err)
			}
		}
	}
	exp, err := m.createSecrets([]string{"ONE", "TWO:file", "BROK:brokered"})
	if err != nil {
		t.Fatal(err)
	}
	if exp[0].Mode != "env" || exp[2].Placeholder == "" || exp[2].Headers[0] != "Authorization" || exp[2].Hosts[0] != "api.example.com" {
		t.Fatalf("exposures %+v", exp)
	}
	rec := addRecord(t, m, "w", true)
	rec.Secrets = exp
	if err := m.writeRecord(rec); err != nil {
		t.Fatal(err)
	}
	// Only what is asked for; brokered gives its placeholder.
	for _, tc := range []struct {
		names []string
		all   bool
		want  []string
	}{
		{nil, false, nil},
		{[]string{"ONE"}, false, []string{"ONE=" + v1}},
		{[]string{"BROK"}, false, []string{"BROK=" + exp[2].Placeholder}},
		{nil, true, []string{"ONE=" + v1, "BROK=" + exp[2].Placeholder}},
	} {
		rec.SecretEnvAll = tc.all
		env, err := m.secretEnv(rec, tc.names)
		if err != nil || !slices.Equal(env, tc.want) {
			t.Errorf("%v all=%v: %q %v, want %q", tc.names, tc.all, env, err, tc.want)
		}
	}
	if _, err := m.secretEnv(rec, []string{"TWO"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("file secret as env: %v", err)
	}
	if _, err := m.secretEnv(rec, []string{"OTHER"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unexposed: %v", err)
	}
	// The redactor covers every exposed value, brokered too.
	red := m.redactor(rec)
	if got := red.String(v1 + " " + v2 + " " + v3); got != "[REDACTED:ONE] [REDACTED:TWO] [REDACTED:BROK]" {
		t.Fatalf("redacted %q", got)
	}
	// A secret in use cannot be removed; list names its users, not values.
	if _, err := m.SecretRemove(ctx, "ONE"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("remove in use: %v", err)
	}
	l, _ := m.SecretList(ctx)
	if len(l) != 3 || !slices.Contains(l[2].Workspaces, "w") {
		t.Fatalf("list %+v", l)
	}
	// The record holds no value.
	b, _ := m.readRecord(rec.ID)
	for _, s := range b.Secrets {
		if strings.Contains(s.Placeholder, "value-") {
			t.Fatal("placeholder holds a value")
		}
	}
}

func TestRedactShellRead(t *testing.T) {
	red := secrets.NewRedactor([]secrets.Secret{{Name: "K", Value: []byte("topsecret")}})
	r := &guestproto.ShellReadResult{Output: []byte("$ echo top"), Cursor: 0, NextCursor: 10, Shell: guestproto.ShellInfo{State: "running"}}
	if out := redactShellRead(red, r); string(out) != "$ echo " || r.NextCursor != 7 {
		t.Fatalf("running: %q next %d", out, r.NextCursor)
	}
	r = &guestproto.ShellReadResult{Output: []byte("$ echo top"), NextCursor: 10, Shell: guestproto.ShellInfo{State: "exited"}}
	if out := redactShellRead(red, r); string(out) != "$ echo top" || r.NextCursor != 10 {
		t.Fatalf("exited: %q next %d", out, r.NextCursor)
	}
	r = &guestproto.ShellReadResult{Output: []byte("topsecret\n"), NextCursor: 10, Shell: guestproto.ShellInfo{State: "running"}}
	if out := redactShellRead(red, r); string(out) != "[REDACTED:K]\n" || r.NextCursor != 10 {
		t.Fatalf("whole: %q next %d", out, r.NextCursor)
	}
}
