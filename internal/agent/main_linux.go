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
	if pid1 {
		// As PID 1 the agent takes no signal as an order: any guest
		// process may send one (`kill $(lsof -t -i:PORT)` names the agent
		// when it holds a published port's connection), and the kernel
		// delivers to init only the signals init handles. The host shuts
		// the guest down with the shutdown operation. Every signal is
		// caught and dropped: Go's default for an uncaught SIGHUP,
		// SIGTERM, SIGQUIT, SIGABRT ... is to exit, and init exiting
		// panics the kernel. (Caught, not ignored, so the processes the
		// agent starts get the default dispositions.)
		ignoreSignals(log)
	} else {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, unix.SIGTERM, unix.SIGPWR, unix.SIGINT)
		go func() {
			sig := <-sigs
			log.Info("signal received; shutting down", "signal", sig)
			stop()
		}()
	}
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

// ignoreSignals catches every signal and drops it, logging the ones a
// process sent on purpose.
func ignoreSignals(log *slog.Logger) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	go func() {
		for sig := range sigs {
			switch sig {
			case unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH, unix.SIGPIPE:
			default:
				log.Info("signal ignored: the agent takes orders only from the host", "signal", sig)
			}
		}
	}()
}
