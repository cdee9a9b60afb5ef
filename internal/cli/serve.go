package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/hostpath"
	"github.com/hearthvm/hearth/internal/httpapi"
	"github.com/hearthvm/hearth/internal/version"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newServeCmd) }

func newServeCmd(g *globals) *cobra.Command {
	var socket, listen, tokenFile, certFile, keyFile string
	var allowPaths []string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP/JSON API (Unix socket by default; token-protected TCP with --listen)",
		Long: `Serve hearth's HTTP/JSON API (docs/http-api.md, GET /v1/openapi.json) until SIGINT
or SIGTERM. The Python SDK speaks it, as does the Go SDK with hearth.WithRemote.

By default it listens on a Unix socket (mode 0600) at $XDG_RUNTIME_DIR/hearth/hearth.sock,
or $HEARTH_HOME/hearth.sock when XDG_RUNTIME_DIR is unset. With --listen HOST:PORT it
also (or, without --socket, only) listens on TCP, where every request must carry
"Authorization: Bearer <token>" with the token from --token-file or $HEARTH_TOKEN. A
--listen address that is not loopback also needs TLS (--tls-cert and --tls-key).

Host paths in requests (seed, sync push source, export destination) are paths on
this machine, and must lie, after symlinks, under a directory given with --allow-path;
without one, those requests fail.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewTextHandler(g.stderr, nil))
			var token string
			if listen != "" {
				t, err := readToken(tokenFile, "--listen")
				if err != nil {
					return err
				}
				token = t
				if certFile == "" {
					if err := checkLoopback(listen); err != nil {
						return err
					}
				}
			}
			if (certFile == "") != (keyFile == "") {
				return errdefs.Arg("tls_cert", "give --tls-cert and --tls-key together")
			}
			roots, err := hostpath.NewRoots(allowPaths)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			h := httpapi.New(httpapi.FromClient(c), httpapi.Options{Version: version.String(), Log: log, CheckRequest: roots.Guard()})
			var lns []net.Listener
			var srvs []*http.Server
			if socket != "" || listen == "" {
				private := socket == ""
				if socket == "" {
					socket = httpapi.DefaultSocket(g.home)
				}
				ln, err := httpapi.ListenUnix(socket, private)
				if err != nil {
					return err
				}
				lns, srvs = append(lns, ln), append(srvs, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second})
				log.Info("listening", "socket", socket, "home", g.home)
			}
			if listen != "" {
				ln, err := net.Listen("tcp", listen)
				if err != nil {
					for _, l := range lns {
						l.Close()
					}
					return fmt.Errorf("listen on %s: %v: %w", listen, err, errdefs.ErrUnavailable)
				}
				if certFile != "" {
					cert, err := tls.LoadX509KeyPair(certFile, keyFile)
					if err != nil {
						for _, l := range lns {
							l.Close()
						}
						ln.Close()
						return errdefs.Arg("tls_cert", "load --tls-cert and --tls-key: %v", err)
					}
					ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
				}
				lns, srvs = append(lns, ln), append(srvs, &http.Server{Handler: httpapi.RequireToken(h, token), ReadHeaderTimeout: 10 * time.Second})
				log.Info("listening", "tcp", ln.Addr().String(), "tls", certFile != "", "home", g.home)
			}
			return serveAll(cmd.Context(), log, lns, srvs)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "Unix socket path (default $XDG_RUNTIME_DIR/hearth/hearth.sock or $HEARTH_HOME/hearth.sock)")
	cmd.Flags().StringVar(&listen, "listen", "", "also serve TCP on HOST:PORT (requires a token)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the bearer token for --listen (default $HEARTH_TOKEN)")
	cmd.Flags().StringVar(&certFile, "tls-cert", "", "TLS certificate for --listen (needed off loopback)")
	cmd.Flags().StringVar(&keyFile, "tls-key", "", "TLS key for --listen")
	cmd.Flags().StringArrayVar(&allowPaths, "allow-path", nil, "a host directory requests may read from or write to (repeatable)")
	return cmd
}

// checkLoopback refuses a TCP address that is not loopback (plain HTTP
// would carry the bearer token in clear).
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: want HOST:PORT such as 127.0.0.1:8080: %w", addr, errdefs.ErrInvalidArgument)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--listen %q is not a loopback address: serving there needs TLS, give --tls-cert and --tls-key: %w", addr, errdefs.ErrInvalidArgument)
}

// readToken returns a bearer token: from the file, else $HEARTH_TOKEN; an
// empty or short one is an error. flag names what needs it.
func readToken(file, flag string) (string, error) {
	t := os.Getenv("HEARTH_TOKEN")
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		t = string(b)
	}
	t = strings.TrimSpace(t)
	if t == "" {
		return "", fmt.Errorf("%s needs a bearer token: give --token-file FILE or set HEARTH_TOKEN (e.g. HEARTH_TOKEN=$(openssl rand -hex 32)): %w", flag, errdefs.ErrInvalidArgument)
	}
	if len(t) < 16 {
		return "", fmt.Errorf("the bearer token is %d characters: use at least 16 (e.g. openssl rand -hex 32): %w", len(t), errdefs.ErrInvalidArgument)
	}
	return t, nil
}

// serveAll serves until ctx ends (SIGINT/SIGTERM), then shuts down
// gracefully: in-flight requests get 30 s to finish.
func serveAll(ctx context.Context, log *slog.Logger, lns []net.Listener, srvs []*http.Server) error {
	errc := make(chan error, len(srvs))
	for i := range srvs {
		go func(i int) { errc <- srvs[i].Serve(lns[i]) }(i)
	}
	var err error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errc:
		log.Error("server stopped", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range srvs {
		if e := s.Shutdown(sctx); e != nil {
			s.Close()
		}
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %v: %w", err, errdefs.ErrUnavailable)
	}
	return nil
}
