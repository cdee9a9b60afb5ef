// Package qmp is a small client of the QEMU Machine Protocol: the JSON
// protocol of a QEMU monitor socket (-qmp unix:PATH,server=on,wait=off).
// It is the base of memory snapshots on QEMU 7.2, where the measured way
// to save a microvm is `stop` → `migrate exec:cat > FILE` and to restore
// it a new QEMU with `-incoming defer` → `migrate-incoming exec:cat FILE`
// → `cont` (7.2 has no file: URI and no mapped-ram).
//
// A client makes one call at a time; asynchronous events that arrive
// between calls are kept (Events) and never mistaken for replies.
package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
)

// Greeting is QEMU's first message.
type Greeting struct {
	QMP struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
		Capabilities []string `json:"capabilities"`
	} `json:"QMP"`
}

// Version is "MAJOR.MINOR.MICRO" of the QEMU that greeted.
func (g *Greeting) Version() string {
	v := g.QMP.Version.QEMU
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro)
}

// Event is an asynchronous QMP event.
type Event struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Error is a command's error reply.
type Error struct {
	Command string
	Class   string `json:"class"`
	Desc    string `json:"desc"`
}

func (e *Error) Error() string { return fmt.Sprintf("qmp %s: %s (%s)", e.Command, e.Desc, e.Class) }

// Client is a QMP connection in command mode.
type Client struct {
	conn     net.Conn
	r        *bufio.Reader
	mu       sync.Mutex
	seq      int
	Greeting Greeting
	events   []Event
}

// Dial connects to a QMP socket, reads the greeting and enters command
// mode (qmp_capabilities).
func Dial(ctx context.Context, socket string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("connect to QEMU's monitor %s: %w: %w", socket, err, errdefs.ErrUnavailable)
	}
	c, err := New(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// New starts a QMP session on conn.
func New(ctx context.Context, conn net.Conn) (*Client, error) {
	c := &Client{conn: conn, r: bufio.NewReader(conn)}
	stop := c.deadline(ctx)
	defer stop()
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("qmp greeting: %w: %w", err, errdefs.ErrUnavailable)
	}
	if err := json.Unmarshal(line, &c.Greeting); err != nil || c.Greeting.QMP.Version.QEMU.Major == 0 {
		return nil, fmt.Errorf("qmp greeting %q: not a QMP server: %w", strings.TrimSpace(string(line)), errdefs.ErrInternal)
	}
	if err := c.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// deadline applies ctx's deadline (and cancellation) to the connection.
func (c *Client) deadline(ctx context.Context) func() {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		c.conn.SetDeadline(time.Time{})
	}
}

// Close ends the session.
func (c *Client) Close() error { return c.conn.Close() }

// Events returns and forgets the events received so far.
func (c *Client) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := c.events
	c.events = nil
	return ev
}

// Execute runs one command; out, when not nil, receives its "return".
func (c *Client) Execute(ctx context.Context, command string, args, out any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	stop := c.deadline(ctx)
	defer stop()
	c.seq++
	id := fmt.Sprintf("h%d", c.seq)
	req := map[string]any{"execute": command, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return c.ioErr(ctx, command, err)
	}
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			return c.ioErr(ctx, command, err)
		}
		var msg struct {
			Event  string          `json:"event"`
			Data   json.RawMessage `json:"data"`
			ID     string          `json:"id"`
			Return json.RawMessage `json:"return"`
			Error  *Error          `json:"error"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return fmt.Errorf("qmp %s: bad reply %q: %w", command, strings.TrimSpace(string(line)), errdefs.ErrInternal)
		}
		if msg.Event != "" {
			c.events = append(c.events, Event{Event: msg.Event, Data: msg.Data})
			continue
		}
		if msg.ID != id {
			continue // a reply to a call whose caller gave up
		}
		if msg.Error != nil {
			msg.Error.Command = command
			return msg.Error
		}
		if out != nil && len(msg.Return) > 0 {
			if err := json.Unmarshal(msg.Return, out); err != nil {
				return fmt.Errorf("qmp %s: decode reply: %w", command, err)
			}
		}
		return nil
	}
}

func (c *Client) ioErr(ctx context.Context, command string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("qmp %s: %w", command, context.Cause(ctx))
	}
	return fmt.Errorf("qmp %s: %w: %w", command, err, errdefs.ErrUnavailable)
}

// Status is query-status: "running", "paused", "inmigrate", "postmigrate", …
func (c *Client) Status(ctx context.Context) (string, error) {
	var st struct {
		Status  string `json:"status"`
		Running bool   `json:"running"`
	}
	if err := c.Execute(ctx, "query-status", nil, &st); err != nil {
		return "", err
	}
	return st.Status, nil
}

// MigrationStatus is the part of query-migrate a save or restore needs.
type MigrationStatus struct {
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc,omitempty"`
	TotalTime int64  `json:"total-time,omitempty"`
	RAM       *struct {
		Transferred int64 `json:"transferred"`
		Total       int64 `json:"total"`
	} `json:"ram,omitempty"`
}

// SetCapabilities turns migration capabilities on (e.g. "x-ignore-shared").
func (c *Client) SetCapabilities(ctx context.Context, caps ...string) error {
	var l []map[string]any
	for _, cp := range caps {
		l = append(l, map[string]any{"capability": cp, "state": true})
	}
	return c.Execute(ctx, "migrate-set-capabilities", map[string]any{"capabilities": l}, nil)
}

// Migrate starts an outgoing migration to uri ("exec:cat > FILE") and
// waits for it to end.
func (c *Client) Migrate(ctx context.Context, uri string) (*MigrationStatus, error) {
	if err := c.Execute(ctx, "migrate", map[string]any{"uri": uri}, nil); err != nil {
		return nil, err
	}
	return c.WaitMigration(ctx)
}

// MigrateIncoming starts an incoming migration (QEMU started with
// -incoming defer) from uri ("exec:cat FILE") and waits for it to end.
func (c *Client) MigrateIncoming(ctx context.Context, uri string) (*MigrationStatus, error) {
	if err := c.Execute(ctx, "migrate-incoming", map[string]any{"uri": uri}, nil); err != nil {
		return nil, err
	}
	return c.WaitMigration(ctx)
}

// ErrMigrationFailed is a migration that ended in "failed" or "cancelled".
var ErrMigrationFailed = errors.New("migration failed")

// WaitMigration polls query-migrate until the migration completes or
// fails (QEMU 7.2 has no event a caller could wait on without polling for
// every case, so it polls, backing off to 50 ms).
func (c *Client) WaitMigration(ctx context.Context) (*MigrationStatus, error) {
	delay := 2 * time.Millisecond
	for {
		var st MigrationStatus
		if err := c.Execute(ctx, "query-migrate", nil, &st); err != nil {
			return nil, err
		}
		switch st.Status {
		case "completed":
			return &st, nil
		case "failed", "cancelled":
			return &st, fmt.Errorf("%w: %s %s", ErrMigrationFailed, st.Status, st.ErrorDesc)
		case "":
			// An incoming migration reports nothing until it starts, and
			// nothing once done: the VM's status says.
			s, err := c.Status(ctx)
			if err != nil {
				return nil, err
			}
			if s == "paused" || s == "running" || s == "postmigrate" {
				return &MigrationStatus{Status: "completed"}, nil
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the migration (%s): %w", st.Status, context.Cause(ctx))
		case <-t.C:
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// SetMaxBandwidth lifts migration's bandwidth limit (bytes per second;
// QEMU's default throttles a save to a local file for nothing).
func (c *Client) SetMaxBandwidth(ctx context.Context, bytesPerSec int64) error {
	return c.Execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": bytesPerSec}, nil)
}
