// Package errdefs is hearth's small error vocabulary. Errors are wrapped with
// context (fmt.Errorf("workspace %q: %w", name, errdefs.ErrNotFound)) and
// classified with errors.Is; every surface (CLI exit codes, HTTP status,
// MCP isError text, Python exceptions) maps these kinds in one place.
package errdefs

import (
	"context"
	"errors"
	"fmt"
)

// Error kinds.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrConflict           = errors.New("conflict")
	ErrUnavailable        = errors.New("unavailable")
	ErrTimeout            = errors.New("timed out")
	ErrNotImplemented     = errors.New("not implemented")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrCanceled           = errors.New("canceled")
	ErrInternal           = errors.New("internal error")
)

// Kind is the stable name of an error kind, as used in JSON error bodies.
type Kind string

// Kinds, in the order Classify tests them.
const (
	KindNotFound           Kind = "not_found"
	KindAlreadyExists      Kind = "already_exists"
	KindInvalidArgument    Kind = "invalid_argument"
	KindFailedPrecondition Kind = "failed_precondition"
	KindConflict           Kind = "conflict"
	KindUnavailable        Kind = "unavailable"
	KindTimeout            Kind = "timeout"
	KindNotImplemented     Kind = "not_implemented"
	KindResourceExhausted  Kind = "resource_exhausted"
	KindCanceled           Kind = "canceled"
	KindInternal           Kind = "internal"
)

var table = []struct {
	kind Kind
	err  error
}{
	{KindNotFound, ErrNotFound},
	{KindAlreadyExists, ErrAlreadyExists},
	{KindInvalidArgument, ErrInvalidArgument},
	{KindFailedPrecondition, ErrFailedPrecondition},
	{KindConflict, ErrConflict},
	{KindUnavailable, ErrUnavailable},
	{KindTimeout, ErrTimeout},
	{KindNotImplemented, ErrNotImplemented},
	{KindResourceExhausted, ErrResourceExhausted},
	{KindCanceled, ErrCanceled},
}

// Kinds returns every kind of the contract, KindInternal last. The set is
// closed within a major contract version.
func Kinds() []Kind {
	ks := make([]Kind, 0, len(table)+1)
	for _, t := range table {
		ks = append(ks, t.kind)
	}
	return append(ks, KindInternal)
}

// Classify returns the kind of err; KindInternal when it has none. A
// caller's own cancellation is KindCanceled and its deadline KindTimeout.
func Classify(err error) Kind {
	for _, t := range table {
		if errors.Is(err, t.err) {
			return t.kind
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	}
	return KindInternal
}

// ArgError is an invalid argument, named by its JSON name (memory_mib,
// timeout_ms). Each surface renders the name its own way: the CLI shows
// the flag (--memory), JSON surfaces the name itself and the "arg" field.
type ArgError struct {
	// Arg is the argument's JSON name.
	Arg string
	// Msg says what was wrong with it and what to do.
	Msg string
}

func (e *ArgError) Error() string { return e.Arg + ": " + e.Msg }

// Unwrap makes an ArgError an ErrInvalidArgument.
func (e *ArgError) Unwrap() error { return ErrInvalidArgument }

// Arg returns an ArgError for the argument named arg.
func Arg(arg, format string, a ...any) error {
	return &ArgError{Arg: arg, Msg: fmt.Sprintf(format, a...)}
}

// ArgOf returns the JSON name of the argument err blames, or "".
func ArgOf(err error) string {
	var ae *ArgError
	if errors.As(err, &ae) {
		return ae.Arg
	}
	return ""
}

// FromKind returns the sentinel of a kind (ErrInternal for unknown kinds).
func FromKind(k Kind) error {
	for _, t := range table {
		if t.kind == k {
			return t.err
		}
	}
	return ErrInternal
}

// ExitCode is the CLI exit status for an error of this kind. Codes 1-2 are
// generic failure and usage; commands that run a guest process exit with
// that process's status instead.
func ExitCode(err error) int {
	switch Classify(err) {
	case KindInvalidArgument:
		return 2
	case KindNotFound:
		return 3
	case KindAlreadyExists, KindConflict, KindFailedPrecondition:
		return 4
	case KindTimeout:
		return 124
	case KindUnavailable:
		return 5
	case KindCanceled:
		return 130
	}
	return 1
}

// HTTPStatus is the HTTP API's status for an error of this kind.
func HTTPStatus(err error) int {
	switch Classify(err) {
	case KindNotFound:
		return 404
	case KindInvalidArgument:
		return 400
	case KindAlreadyExists, KindConflict, KindFailedPrecondition:
		return 409
	case KindUnavailable:
		return 503
	case KindTimeout:
		return 504
	case KindNotImplemented:
		return 501
	case KindResourceExhausted:
		return 507
	case KindCanceled:
		return 499 // client closed request
	}
	return 500
}

// KindError is an error that crossed a process boundary as its message
// and kind (a supervisor's boot failure, a remote server's error).
type KindError struct {
	Kind Kind
	Msg  string
}

func (e *KindError) Error() string { return e.Msg }

// Unwrap makes the error match its kind's sentinel.
func (e *KindError) Unwrap() error { return FromKind(e.Kind) }

// Mark gives err the kind of sentinel (one of the Err* values) without
// changing its message; err stays reachable with errors.As.
func Mark(err, sentinel error) error {
	if err == nil {
		return nil
	}
	return &marked{err: err, kind: sentinel}
}

type marked struct{ err, kind error }

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.kind} }
