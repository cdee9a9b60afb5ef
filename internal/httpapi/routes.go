package httpapi

import (
	"net/http"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
)

// route serves one operation of internal/ops; its method and path come
// from the registry (ops.Op.HTTP). req and resp are zero values of the
// request and result types, for the OpenAPI document.
type route struct {
	op   string
	req  any // nil: no parameters
	resp any
	// stream is set for operations that can stream NDJSON output.
	stream bool
	h      func(s *server, w http.ResponseWriter, r *http.Request) (any, error)
}

// handled is returned by handlers that wrote the response themselves.
var handled = &struct{ written bool }{true}

// DeleteRequest selects how `workspace_delete` deletes (query parameter
// force=true). It is the one parameter set package api has no type for.
type DeleteRequest struct {
	Force bool `json:"force,omitempty"`
}

// noParams is the request of operations without parameters: any field is
// unknown.
type noParams struct{}

// routes is the route table: exactly the operations of ops.All that have
// an HTTP entry (a test keeps them equal).
var routes = []route{
	{op: "run", req: api.RunRequest{}, resp: api.ExecResult{}, stream: true, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.RunRequest
		if err := decode(r, &req, "stream"); err != nil {
			return nil, err
		}
		o, err := hearth.RunOptionsFrom(req)
		if err != nil {
			return nil, err
		}
		return s.execMaybeStream(w, r, func(opt *hearth.ExecOptions) (*api.ExecResult, error) {
			o.Exec.Stdout, o.Exec.Stderr = opt.Stdout, opt.Stderr
			return s.svc.Run(r.Context(), o)
		})
	}},
	{op: "workspace_create", req: api.CreateRequest{}, resp: api.Workspace{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.CreateRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		o, err := hearth.CreateOptionsFrom(req)
		if err != nil {
			return nil, err
		}
		return s.svc.CreateWorkspace(r.Context(), o)
	}},
	{op: "workspace_list", req: noParams{}, resp: []api.Workspace{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		if err := decode(r, &noParams{}); err != nil {
			return nil, err
		}
		l, err := s.svc.ListWorkspaces(r.Context())
		return nonNil(l), err
	}},
	{op: "workspace_show", req: noParams{}, resp: api.Workspace{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		if err := decode(r, &noParams{}); err != nil {
			return nil, err
		}
		return s.svc.Show(r.Context(), r.PathValue("ws"))
	}},
	{op: "workspace_start", req: noParams{}, resp: api.Workspace{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		if err := decode(r, &noParams{}); err != nil {
			return nil, err
		}
		return s.svc.Start(r.Context(), r.PathValue("ws"))
	}},
	{op: "workspace_stop", req: noParams{}, resp: api.Workspace{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		if err := decode(r, &noParams{}); err != nil {
			return nil, err
		}
		return s.svc.Stop(r.Context(), r.PathValue("ws"))
	}},
	{op: "workspace_delete", req: DeleteRequest{}, resp: api.Workspace{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req DeleteRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.svc.Delete(r.Context(), r.PathValue("ws"), req.Force)
	}},
	{op: "workspace_exec", req: api.ExecRequest{}, resp: api.ExecResult{}, stream: true, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.ExecRequest
		if err := decode(r, &req, "stream"); err != nil {
			return nil, err
		}
		o, err := hearth.ExecOptionsFrom(req)
		if err != nil {
			return nil, err
		}
		return s.execMaybeStream(w, r, func(opt *hearth.ExecOptions) (*api.ExecResult, error) {
			o.Stdout, o.Stderr = opt.Stdout, opt.Stderr
			return s.svc.Exec(r.Context(), r.PathValue("ws"), o)
		})
	}},
	{op: "workspace_logs", req: api.LogsRequest{}, resp: []api.Command{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.LogsRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		l, err := s.svc.Logs(r.Context(), r.PathValue("ws"), hearth.LogsOptions{Tail: req.Tail})
		return nonNil(l), err
	}},
	{op: "workspace_sync_push", req: api.SyncPushRequest{}, resp: hearth.SyncResult{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.SyncPushRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.svc.SyncPush(r.Context(), r.PathValue("ws"), req.Source, hearth.SyncOptions{Dest: req.Dest, Delete: req.Delete})
	}},
	{op: "workspace_diff", req: api.DiffRequest{}, resp: hearth.DiffResult{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.DiffRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.svc.Diff(r.Context(), r.PathValue("ws"), hearth.DiffOptions{Paths: req.Paths, NoPatch: req.NoPatch})
	}},
	{op: "workspace_export", req: api.ExportRequest{}, resp: hearth.ExportResult{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.ExportRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.svc.Export(r.Context(), r.PathValue("ws"), req.GuestPath, req.HostDest, hearth.ExportOptions{Archive: req.Archive, Force: req.Force})
	}},
	{op: "command_wait", req: api.CommandWaitRequest{}, resp: api.ExecResult{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.CommandWaitRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if err := nonNegative("timeout_ms", req.TimeoutMS); err != nil {
			return nil, err
		}
		return s.svc.CommandWait(r.Context(), r.PathValue("ws"), r.PathValue("id"), time.Duration(req.TimeoutMS)*time.Millisecond)
	}},
	{op: "command_read", req: api.CommandReadRequest{}, resp: api.CommandOutput{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.CommandReadRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.svc.CommandRead(r.Context(), r.PathValue("ws"), r.PathValue("id"), req.Stream, req.Offset, req.Limit)
	}},
	{op: "command_kill", req: api.CommandKillRequest{}, resp: api.ExecResult{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.CommandKillRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.svc.CommandKill(r.Context(), r.PathValue("ws"), r.PathValue("id"), req.Signal)
	}},
	{op: "shell_open", req: api.ShellOpenRequest{}, resp: api.Shell{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.ShellOpenRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.svc.ShellOpen(r.Context(), r.PathValue("ws"), hearth.ShellOpenOptions{Cwd: req.Cwd, Env: req.Env, Cols: req.Cols, Rows: req.Rows})
	}},
	{op: "shell_write", req: api.ShellWriteRequest{}, resp: api.Shell{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.ShellWriteRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		data, err := hearth.ShellWriteData(req)
		if err != nil {
			return nil, err
		}
		return s.svc.ShellWrite(r.Context(), r.PathValue("ws"), r.PathValue("id"), data)
	}},
	{op: "shell_read", req: api.ShellReadRequest{}, resp: api.ShellOutput{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.ShellReadRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if err := nonNegative("wait_ms", req.WaitMS); err != nil {
			return nil, err
		}
		return s.svc.ShellRead(r.Context(), r.PathValue("ws"), r.PathValue("id"),
			hearth.ShellReadOptions{Cursor: req.Cursor, Wait: time.Duration(req.WaitMS) * time.Millisecond, Plain: req.Plain})
	}},
	{op: "shell_resize", req: api.ShellResizeRequest{}, resp: api.Shell{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.ShellResizeRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.svc.ShellResize(r.Context(), r.PathValue("ws"), r.PathValue("id"), req.Cols, req.Rows)
	}},
	{op: "shell_signal", req: api.ShellSignalRequest{}, resp: api.Shell{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		var req api.ShellSignalRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.svc.ShellSignal(r.Context(), r.PathValue("ws"), r.PathValue("id"), req.Signal)
	}},
	{op: "shell_close", req: noParams{}, resp: api.Shell{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		if err := decode(r, &noParams{}); err != nil {
			return nil, err
		}
		return s.svc.ShellClose(r.Context(), r.PathValue("ws"), r.PathValue("id"))
	}},
	{op: "shell_list", req: noParams{}, resp: []api.Shell{}, h: func(s *server, w http.ResponseWriter, r *http.Request) (any, error) {
		if err := decode(r, &noParams{}); err != nil {
			return nil, err
		}
		l, err := s.svc.ShellList(r.Context(), r.PathValue("ws"))
		return nonNil(l), err
	}},
}

// nonNil makes a nil list encode as [] rather than null.
func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}
