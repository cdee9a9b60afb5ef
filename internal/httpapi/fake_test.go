package httpapi

import (
	"context"
	"reflect"
	"sync"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/ops"
)

// fake is an Invoker for tests where the VM is not the point: it records
// each call (operation and request) and returns err, or what a hook
// returns, or the operation's zero result.
type fake struct {
	mu    sync.Mutex
	calls []string
	reqs  []any
	err   error
	// exec, when set, serves run and workspace_exec.
	exec func(ctx context.Context, req any, s hearth.Streams) (*api.ExecResult, error)
	// show, when set, serves workspace_show.
	show func(ctx context.Context, ws string) (*api.Workspace, error)
}

func (f *fake) Invoke(ctx context.Context, name string, req any, s hearth.Streams) (any, error) {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	f.reqs = append(f.reqs, req)
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	op, _ := ops.ByName(name)
	if err := op.Prepare(req, false); err != nil {
		return nil, err
	}
	switch {
	case (name == "run" || name == "workspace_exec") && f.exec != nil:
		return f.exec(ctx, req, s)
	case name == "workspace_show" && f.show != nil:
		return f.show(ctx, req.(*api.WorkspaceRequest).Workspace)
	}
	return reflect.New(op.ResultType()).Interface(), nil
}

// last returns the latest call's operation and request.
func (f *fake) last() (string, any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return "", nil
	}
	return f.calls[len(f.calls)-1], f.reqs[len(f.reqs)-1]
}
