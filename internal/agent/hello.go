package agent

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/hearthvm/hearth/internal/guestproto"
)

func init() {
	register(guestproto.OpHello, handleHello)
}

func handleHello(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	return &guestproto.Response{Hello: hello()}, nil
}

// hello describes this agent and the guest it runs in.
func hello() *guestproto.Hello {
	h := &guestproto.Hello{
		ProtocolVersion: guestproto.ProtocolVersion,
		AgentVersion:    Version,
		Capabilities:    capabilities(),
		Kernel:          readTrimmed("/proc/sys/kernel/osrelease"),
		BootID:          readTrimmed("/proc/sys/kernel/random/boot_id"),
		UptimeMS:        uptimeMS(),
	}
	return h
}

// capabilities lists the registered operations, sorted.
func capabilities() []string {
	out := make([]string, 0, len(handlers))
	for op := range handlers {
		out = append(out, string(op))
	}
	slices.Sort(out)
	return out
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// uptimeMS reads the first field of /proc/uptime (seconds since boot).
func uptimeMS() int64 {
	f := strings.Fields(readTrimmed("/proc/uptime"))
	if len(f) == 0 {
		return 0
	}
	sec, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0
	}
	return int64(sec * 1000)
}
