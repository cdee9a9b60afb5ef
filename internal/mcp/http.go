package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// HTTPHandler serves s over MCP's streamable HTTP transport (mount it at
// /mcp). It is stateless (required for protocol 2026-07-28, G2), a client
// closing its request cancels the tool call, DNS-rebinding protection
// (Host check) is on, and a cross-origin request (a browser page of
// another origin) gets 403 (G7).
func HTTPHandler(s *sdk.Server, log *slog.Logger) http.Handler {
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, &sdk.StreamableHTTPOptions{
		Stateless:                    true,
		PropagateRequestCancellation: true,
		Logger:                       log,
	})
	return http.NewCrossOriginProtection().Handler(h)
}

// CheckLoopback returns an error unless addr (host:port) listens on a
// loopback address only.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--http %q: want HOST:PORT such as 127.0.0.1:8765: %w", addr, errdefs.ErrInvalidArgument)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--http %q is not a loopback address: the MCP server has no authentication, so it listens on 127.0.0.1 or ::1 only (pass --allow-remote to override, behind your own authentication): %w", addr, errdefs.ErrInvalidArgument)
}

// ServeHTTP serves s at /mcp on addr until ctx ends, then shuts down
// gracefully. ready, if set, receives the bound address.
func ServeHTTP(ctx context.Context, s *sdk.Server, addr string, log *slog.Logger, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", HTTPHandler(s, log))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		ready(ln.Addr())
	}
	log.Info("serving MCP over streamable HTTP", "url", "http://"+ln.Addr().String()+"/mcp")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve MCP over HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down MCP HTTP server: %w", err)
	}
	return nil
}
