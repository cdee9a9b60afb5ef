package mcp

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
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
	return fmt.Errorf("--http %q is not a loopback address: off loopback the MCP server needs TLS (--tls-cert and --tls-key) as well as its bearer token: %w", addr, errdefs.ErrInvalidArgument)
}

// RequireToken wraps h so every request must carry "Authorization: Bearer
// <token>" (compared in constant time); others get 401.
func RequireToken(h http.Handler, token string) http.Handler {
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || len(want) == 0 || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hearth-mcp"`)
			http.Error(w, "missing or wrong bearer token: send 'Authorization: Bearer <token>' (the token hearth mcp serve printed, or the one it was given)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// HTTPOptions secure the HTTP transport.
type HTTPOptions struct {
	// Token is the bearer token every request must carry (required).
	Token string
	// CertFile and KeyFile serve TLS (required off loopback).
	CertFile, KeyFile string
}

// ServeHTTP serves s at /mcp on addr until ctx ends, then shuts down
// gracefully. Every request must carry the bearer token. ready, if set,
// receives the bound address.
func ServeHTTP(ctx context.Context, s *sdk.Server, addr string, log *slog.Logger, o HTTPOptions, ready func(net.Addr)) error {
	if o.Token == "" {
		return fmt.Errorf("MCP over HTTP needs a bearer token: %w", errdefs.ErrInvalidArgument)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", RequireToken(HTTPHandler(s, log), o.Token))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		ready(ln.Addr())
	}
	scheme := "http"
	if o.CertFile != "" {
		scheme = "https"
	}
	log.Info("serving MCP over streamable HTTP", "url", scheme+"://"+ln.Addr().String()+"/mcp")
	errc := make(chan error, 1)
	go func() {
		if o.CertFile != "" {
			errc <- srv.ServeTLS(ln, o.CertFile, o.KeyFile)
			return
		}
		errc <- srv.Serve(ln)
	}()
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
