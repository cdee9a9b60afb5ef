package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// fakeQEMU serves QMP on one end of a pipe: it greets, then answers each
// command with reply(cmd, args), sending an event before every reply.
func fakeQEMU(t *testing.T, reply func(cmd string, args json.RawMessage) (ret any, errClass string)) net.Conn {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		defer a.Close()
		w := func(v any) bool {
			bs, _ := json.Marshal(v)
			_, err := a.Write(append(bs, '\n'))
			return err == nil
		}
		if !w(map[string]any{"QMP": map[string]any{"version": map[string]any{"qemu": map[string]int{"major": 7, "minor": 2, "micro": 22}, "package": "test"}, "capabilities": []string{"oob"}}}) {
			return
		}
		r := bufio.NewReader(a)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct {
				Execute   string          `json:"execute"`
				ID        string          `json:"id"`
				Arguments json.RawMessage `json:"arguments"`
			}
			json.Unmarshal(line, &req)
			if !w(map[string]any{"event": "TICK", "data": map[string]string{"cmd": req.Execute}}) {
				return
			}
			ret, class := reply(req.Execute, req.Arguments)
			if class != "" {
				w(map[string]any{"id": req.ID, "error": map[string]string{"class": class, "desc": "no " + req.Execute}})
				continue
			}
			if ret == nil {
				ret = map[string]any{}
			}
			w(map[string]any{"id": req.ID, "return": ret})
		}
	}()
	return b
}

func TestSessionAndMigration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	polls := 0
	var uri, capArgs string
	conn := fakeQEMU(t, func(cmd string, args json.RawMessage) (any, string) {
		switch cmd {
		case "qmp_capabilities", "stop", "migrate-set-parameters":
			return nil, ""
		case "migrate-set-capabilities":
			capArgs = string(args)
			return nil, ""
		case "migrate":
			var a struct{ URI string }
			json.Unmarshal(args, &a)
			uri = a.URI
			return nil, ""
		case "query-migrate":
			polls++
			if polls < 3 {
				return map[string]any{"status": "active"}, ""
			}
			return map[string]any{"status": "completed", "total-time": 12, "ram": map[string]int64{"transferred": 100, "total": 200}}, ""
		case "query-status":
			return map[string]any{"status": "paused", "running": false}, ""
		}
		return nil, "CommandNotFound"
	})
	c, err := New(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := c.Greeting.Version(); v != "7.2.22" {
		t.Fatalf("version %s", v)
	}
	if err := c.Execute(ctx, "stop", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SetCapabilities(ctx, "x-ignore-shared"); err != nil || !strings.Contains(capArgs, `"x-ignore-shared"`) {
		t.Fatalf("capabilities %s: %v", capArgs, err)
	}
	st, err := c.Migrate(ctx, "exec:cat > /x")
	if err != nil || st.Status != "completed" || st.RAM.Transferred != 100 || uri != "exec:cat > /x" || polls != 3 {
		t.Fatalf("migrate: %+v %v (uri %q, polls %d)", st, err, uri, polls)
	}
	if s, err := c.Status(ctx); err != nil || s != "paused" {
		t.Fatalf("status %q %v", s, err)
	}
	// Events that came between replies are kept, not taken for replies.
	if ev := c.Events(); len(ev) < 5 || ev[0].Event != "TICK" {
		t.Fatalf("events %+v", ev)
	}
	var qe *Error
	if err := c.Execute(ctx, "bogus", nil, nil); !errors.As(err, &qe) || qe.Class != "CommandNotFound" || qe.Command != "bogus" {
		t.Fatalf("error reply: %v", err)
	}
}

func TestMigrationFailsAndTimeouts(t *testing.T) {
	conn := fakeQEMU(t, func(cmd string, args json.RawMessage) (any, string) {
		if cmd == "query-migrate" {
			return map[string]any{"status": "failed", "error-desc": "disk full"}, ""
		}
		return nil, ""
	})
	ctx := context.Background()
	c, err := New(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Migrate(ctx, "exec:cat > /x"); !errors.Is(err, ErrMigrationFailed) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("failed migration: %v", err)
	}
	c.Close()

	// A QEMU that never answers: the call ends with the context.
	a, b := net.Pipe()
	defer a.Close()
	go func() { a.Write([]byte(`{"QMP":{"version":{"qemu":{"major":7,"minor":2,"micro":0}}}}` + "\n")) }()
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := New(tctx, b); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("silent QEMU: %v", err)
	}
	// Not QMP at all.
	a2, b2 := net.Pipe()
	go func() { a2.Write([]byte("hello\n")); a2.Close() }()
	if _, err := New(ctx, b2); !errors.Is(err, errdefs.ErrInternal) {
		t.Fatalf("not QMP: %v", err)
	}
}
