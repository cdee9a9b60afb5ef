// Package agent is hearth's guest agent: the program that runs inside every
// VM (as PID 1, from a tiny initramfs), prepares the root file system, and
// serves the operations of package guestproto to the host.
//
// Each host stream carries one operation. Handlers are registered per
// operation by the file that implements them (exec.go, shell.go, files.go).
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// Version is the agent's version, reported in the handshake. Set by the
// linker (-X) from the build; "dev" otherwise.
var Version = "dev"

// handlerFunc serves one operation. It may stream frames through st before
// returning; the returned Response (or error) is sent as the final frame.
type handlerFunc func(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error)

var handlers = map[guestproto.Op]handlerFunc{}

// register installs the handler for op; called from init functions.
func register(op guestproto.Op, h handlerFunc) {
	if _, dup := handlers[op]; dup {
		panic("agent: duplicate handler for " + string(op))
	}
	handlers[op] = h
}

// Server serves guestproto streams. Its state (shell sessions) outlives
// any one stream.
type Server struct {
	Log *slog.Logger
	// Shutdown is called by the shutdown operation after its response is
	// sent; nil in tests.
	Shutdown func()
	// ShellArgv is the command shell sessions run. Empty: /bin/bash -l
	// where /bin/bash exists, else /bin/sh. Tests on the host set a shell
	// that reads no start-up files (bash --noprofile --norc), so the host
	// user's ~/.bashrc cannot slow them down or write into their output.
	ShellArgv []string

	shells   *shellTable   // set by newShellTable in shell.go
	services *serviceTable // services.go
}

// NewServer returns a Server with its session tables ready.
func NewServer(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Log: log}
	s.init()
	return s
}

// Stream is one host stream. Writes are serialised so handlers may write
// frames from several goroutines (stdout and stderr pumps).
type Stream struct {
	conn net.Conn
	wmu  sync.Mutex
	rbuf []byte
	// responded: the handler sent the final Response itself (a stream
	// that turns into raw bytes, such as port_connect).
	responded bool
}

// NewStream wraps a connection.
func NewStream(c net.Conn) *Stream { return &Stream{conn: c} }

// WriteFrame sends one frame.
func (st *Stream) WriteFrame(t guestproto.FrameType, p []byte) error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	return guestproto.WriteFrame(st.conn, t, p)
}

// WriteJSON sends v as a FrameJSON.
func (st *Stream) WriteJSON(v any) error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	return guestproto.WriteJSON(st.conn, v)
}

// ReadFrame reads the next frame from the host. The payload is valid until
// the next call. Only one goroutine may read.
func (st *Stream) ReadFrame() (guestproto.FrameType, []byte, error) {
	t, p, err := guestproto.ReadFrame(st.conn, st.rbuf)
	if cap(p) > cap(st.rbuf) && cap(p) <= 1<<20 {
		st.rbuf = p[:0]
	}
	return t, p, err
}

// Conn is the underlying connection.
func (st *Stream) Conn() net.Conn { return st.conn }

// Serve accepts streams from ln until it fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.ServeConn(ctx, c)
	}
}

// ServeConn serves the single operation a stream carries, then closes it.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	st := NewStream(c)
	t, p, err := st.ReadFrame()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.Log.Debug("read request", "err", err)
		}
		return
	}
	var req guestproto.Request
	if t != guestproto.FrameJSON {
		st.WriteJSON(&guestproto.Response{Error: &guestproto.Error{Code: guestproto.CodeInvalid, Message: fmt.Sprintf("first frame is %v, want a json request", t)}})
		return
	}
	if err := jsonUnmarshal(p, &req); err != nil {
		st.WriteJSON(&guestproto.Response{Error: &guestproto.Error{Code: guestproto.CodeInvalid, Message: "bad request: " + err.Error()}})
		return
	}
	if req.Op == guestproto.OpSecrets {
		defer clear(p) // the request carried secret values
	}
	h, ok := handlers[req.Op]
	if !ok {
		st.WriteJSON(&guestproto.Response{Error: &guestproto.Error{Code: guestproto.CodeUnsupported, Message: fmt.Sprintf("agent %s does not know operation %q", Version, req.Op)}})
		return
	}
	resp, err := func() (resp *guestproto.Response, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("agent panic in %s: %v", req.Op, r)
			}
		}()
		return h(ctx, s, st, &req)
	}()
	if st.responded {
		return
	}
	if err != nil {
		resp = &guestproto.Response{Error: toProtoError(err)}
	}
	if resp == nil {
		resp = &guestproto.Response{}
	}
	st.WriteJSON(resp)
	if req.Op == guestproto.OpShutdown && err == nil && s.Shutdown != nil {
		s.Shutdown()
	}
}

// protoError carries a guestproto error code through Go error returns.
type protoError struct {
	code string
	msg  string
}

func (e *protoError) Error() string { return e.msg }

// errorf returns an error that reaches the host with the given code.
func errorf(code, format string, args ...any) error {
	return &protoError{code: code, msg: fmt.Sprintf(format, args...)}
}

func toProtoError(err error) *guestproto.Error {
	var pe *protoError
	if errors.As(err, &pe) {
		return &guestproto.Error{Code: pe.code, Message: pe.msg}
	}
	return &guestproto.Error{Code: guestproto.CodeInternal, Message: err.Error()}
}
