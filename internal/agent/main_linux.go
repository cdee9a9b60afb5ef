package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Main is the agent program (cmd/hearth-agent). As PID 1 it prepares the
// root file system, reaps orphans and powers the VM off on shutdown;
// started any other way it only serves. It never returns.
func Main() {
	pid1 := os.Getpid() == 1
	out := console()
	log := slog.New(slog.NewTextHandler(&prefixWriter{w: out, prefix: []byte("hearth-agent: ")}, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // the console has its own clock
			}
			return a
		},
	}))
	log.Info("starting", "version", Version, "pid1", pid1)

	stop := func() {
		log.Info("agent exiting (not PID 1: not powering off)")
		os.Exit(0)
	}
	if pid1 {
		startReaper(log)
		stop = func() { powerOff(log) }
		if _, err := initSystem(log); err != nil {
			// Without a root there is nothing to serve: say why on the
			// console, where the host reads it after the VMM exits.
			fmt.Fprintf(out, "hearth-agent: cannot prepare the root file system: %v\n", err)
			log.Error("cannot prepare the root file system; powering off", "err", err)
			time.Sleep(200 * time.Millisecond) // let the serial console drain
			powerOff(log)
		}
	}

	srv := NewServer(log)
	srv.Shutdown = stop
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGPWR, unix.SIGINT)
	go func() {
		sig := <-sigs
		log.Info("signal received; shutting down", "signal", sig)
		stop()
	}()
	serveTransports(context.Background(), srv, log)
	log.Info("ready")
	select {}
}

// console returns where logs go: stderr, which the kernel connects to
// /dev/console for init, or /dev/console itself when stderr is unusable.
func console() io.Writer {
	if _, err := os.Stderr.Stat(); err == nil {
		return os.Stderr
	}
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		return f
	}
	return io.Discard
}

// prefixWriter starts every line with prefix, so console readers can tell
// the agent's lines from the kernel's.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	var buf bytes.Buffer
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line = b[:i+1]
		}
		buf.Write(p.prefix)
		buf.Write(line)
		b = b[len(line):]
	}
	_, err := p.w.Write(buf.Bytes())
	return n, err
}
