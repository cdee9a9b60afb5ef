package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestClassifyAndExitCode(t *testing.T) {
	cases := []struct {
		err  error
		kind Kind
		code int
	}{
		{fmt.Errorf("workspace %q: %w", "x", ErrNotFound), KindNotFound, 3},
		{fmt.Errorf("bad: %w", ErrInvalidArgument), KindInvalidArgument, 2},
		{fmt.Errorf("x: %w", ErrFailedPrecondition), KindFailedPrecondition, 4},
		{fmt.Errorf("x: %w", ErrAlreadyExists), KindAlreadyExists, 4},
		{fmt.Errorf("x: %w", ErrConflict), KindConflict, 4},
		{fmt.Errorf("x: %w", ErrUnavailable), KindUnavailable, 5},
		{fmt.Errorf("x: %w", ErrTimeout), KindTimeout, 124},
		{errors.New("plain"), KindInternal, 1},
	}
	for _, c := range cases {
		if k := Classify(c.err); k != c.kind {
			t.Errorf("%v: kind %s, want %s", c.err, k, c.kind)
		}
		if code := ExitCode(c.err); code != c.code {
			t.Errorf("%v: exit %d, want %d", c.err, code, c.code)
		}
		if c.kind != KindInternal && !errors.Is(FromKind(c.kind), FromKind(Classify(c.err))) {
			t.Errorf("%s does not round-trip", c.kind)
		}
	}
	if FromKind("bogus") != ErrInternal {
		t.Error("unknown kind is not internal")
	}
}

func TestMarkAndArg(t *testing.T) {
	base := errors.New("VMM exited")
	m := Mark(fmt.Errorf("boot: %w", base), ErrUnavailable)
	if Classify(m) != KindUnavailable || !errors.Is(m, base) || m.Error() != "boot: VMM exited" {
		t.Fatalf("Mark: %v %v", Classify(m), m)
	}
	a := fmt.Errorf("create: %w", Arg("memory_mib", "64 MiB is too small"))
	if Classify(a) != KindInvalidArgument || ArgOf(a) != "memory_mib" {
		t.Fatalf("Arg: %v %q", Classify(a), ArgOf(a))
	}
	if Classify(context.Canceled) != KindCanceled || Classify(fmt.Errorf("x: %w", context.DeadlineExceeded)) != KindTimeout {
		t.Fatal("context errors")
	}
}
