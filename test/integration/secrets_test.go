package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/mcp"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sys/unix"
)

// randomValue is a secret value no file can hold by chance.
func randomValue(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func randomName(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + "_" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// filesHolding lists the files under dir whose bytes hold one of values.
func filesHolding(t *testing.T, dir string, values ...string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if d.Name() == "base.ext4" || d.Name() == "vmlinux" {
			return nil // hard links to the image: read-only, shared
		}
		for _, v := range fileHolds(t, p, values...) {
			hits = append(hits, p+" holds "+v[:4]+"…")
		}
		return nil
	})
	return hits
}

// fileHolds returns the values whose bytes occur in the file at p. It
// reads only the data of a sparse file (a workspace disk), in chunks that
// overlap by the longest value.
func fileHolds(t *testing.T, p string, values ...string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	longest := 0
	for _, v := range values {
		longest = max(longest, len(v))
	}
	found := map[string]bool{}
	buf := make([]byte, 4<<20)
	fd := int(f.Fd())
	var off int64
	for {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: no data past off
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		for pos := data; pos < hole; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), hole-pos)], pos)
			if n == 0 && err != nil {
				break
			}
			for _, v := range values {
				if bytes.Contains(buf[:n], []byte(v)) {
					found[v] = true
				}
			}
			if pos+int64(n) >= hole {
				break
			}
			pos += int64(max(n-longest, 1))
		}
		off = hole
	}
	var out []string
	for _, v := range values {
		if found[v] {
			out = append(out, v)
		}
	}
	return out
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecrets: a file secret is at /run/secrets/NAME (tmpfs, 0400 root)
// and not on the workspace's disk; an env secret reaches only the commands
// that ask and comes back [REDACTED:NAME] in exec results (foreground and
// detached), the command log, shell output and MCP results; a brokered
// secret's value never enters the guest; after a restart the file is
// back; an export holds no secret, even through a symlink or a bind mount.
func TestSecrets(t *testing.T) {
	c := sdk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	envName, fileName, brokName := randomName("ENV"), randomName("FILE"), randomName("BROK")
	envVal, fileVal, brokVal := randomValue("ev-"), randomValue("fv-"), randomValue("bv-")
	for _, s := range []struct {
		name, value string
		o           hearth.SecretSetOptions
	}{{envName, envVal, hearth.SecretSetOptions{}}, {fileName, fileVal, hearth.SecretSetOptions{}},
		{brokName, brokVal, hearth.SecretSetOptions{Hosts: []string{"127.0.0.1:9"}, Headers: []string{"X-Api-Key"}}}} {
		meta, err := c.SecretSet(ctx, s.name, []byte(s.value), s.o)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(meta)
		if strings.Contains(string(b), s.value) {
			t.Fatalf("secret_set result holds the value: %s", b)
		}
		name := s.name
		t.Cleanup(func() { c.SecretRemove(context.Background(), name) })
	}
	ws := newWorkspace(t, c, hearth.CreateOptions{DiskSize: 1 << 30, Secrets: []string{envName + ":env", fileName + ":file", brokName + ":brokered"}})
	if len(ws.Info.Secrets) != 3 {
		t.Fatalf("workspace secrets: %+v", ws.Info.Secrets)
	}
	all := []string{envVal, fileVal, brokVal}
	noValue := func(what, s string) {
		t.Helper()
		for _, v := range all {
			if strings.Contains(s, v) {
				t.Errorf("%s holds a secret value: %q", what, s)
			}
		}
	}
	run := func(o hearth.ExecOptions) *hearth.ExecResult {
		t.Helper()
		o.Capture = true
		r, err := ws.Exec(ctx, o)
		if err != nil {
			t.Fatalf("exec %q: %v", o.Shell, err)
		}
		noValue("exec result of "+o.Shell, r.Stdout+r.Stderr+r.Message)
		return r
	}

	t.Run("file", func(t *testing.T) {
		p := "/run/secrets/" + fileName
		if r := run(hearth.ExecOptions{Shell: "stat -c '%a %U' " + p + "; df --output=fstype /run/secrets | tail -1"}); r.Stdout != "400 root\ntmpfs\n" {
			t.Fatalf("mode, owner and file system of %s: %q %q", p, r.Stdout, r.Stderr)
		}
		if r := run(hearth.ExecOptions{Shell: "cat " + p + "; echo; base64 -w0 " + p}); !strings.Contains(r.Stdout, "[REDACTED:"+fileName+"]\n[REDACTED:"+fileName+"]") {
			t.Fatalf("cat of the file secret: %q", r.Stdout)
		}
		// Not on the disk: flush the guest's caches, then read the disk.
		run(hearth.ExecOptions{Shell: "sync; echo 3 > /proc/sys/vm/drop_caches"})
		if hits := fileHolds(t, filepath.Join(wsDirOf(ws), "disk.ext4"), all...); len(hits) > 0 {
			t.Errorf("the workspace's disk image holds %d secret values", len(hits))
		}
	})

	t.Run("env", func(t *testing.T) {
		script := `echo "k=$` + envName + `"; printf %s "$` + envName + `" | base64; echo "k=$` + envName + `" >&2`
		r := run(hearth.ExecOptions{Shell: script, SecretEnv: []string{envName}})
		want := "k=[REDACTED:" + envName + "]\n[REDACTED:" + envName + "]\n"
		if r.Stdout != want || r.Stderr != "k=[REDACTED:"+envName+"]\n" {
			t.Fatalf("stdout %q stderr %q, want %q", r.Stdout, r.Stderr, want)
		}
		if r := run(hearth.ExecOptions{Shell: `echo "k=${` + envName + `:-unset}"`}); r.Stdout != "k=unset\n" {
			t.Fatalf("a command that did not ask got the env secret: %q", r.Stdout)
		}
		// Detached (the supervisor logs its output).
		d, err := ws.Exec(ctx, hearth.ExecOptions{Shell: `sleep 1; echo "d=$` + envName + `"`, SecretEnv: []string{envName}, Yield: 2 * time.Minute, Capture: true})
		if err != nil {
			t.Fatal(err)
		}
		if d.Stdout != "d=[REDACTED:"+envName+"]\n" {
			t.Fatalf("detached: %+v", d)
		}
		// The command log: entries, outputs, files.
		cmds, err := ws.Logs(ctx, hearth.LogsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(cmds)
		noValue("command log", string(b))
		for _, cmd := range cmds {
			for _, stream := range []string{"stdout", "stderr"} {
				o, err := ws.CommandRead(ctx, cmd.ID, stream, 0, 1<<20)
				if err != nil {
					continue // pruned or none
				}
				noValue("command_read "+cmd.ID, o.Data)
			}
		}
		if hits := filesHolding(t, filepath.Join(wsDirOf(ws), "logs"), all...); len(hits) > 0 {
			t.Errorf("command log files hold secret values: %v", hits)
		}
		// A bad name, and a file secret asked for as env.
		if _, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"true"}, SecretEnv: []string{"NOPE_X"}}); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("unknown secret_env: %v", err)
		}
		if _, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"true"}, SecretEnv: []string{fileName}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("file secret as env: %v", err)
		}
	})

	t.Run("brokered", func(t *testing.T) {
		// Hex dumps are not redacted: they show what the guest really has.
		r := run(hearth.ExecOptions{Shell: "{ env; cat /proc/1/environ; cat /run/secrets/" + brokName + "; } | od -An -tx1 | tr -d ' \\n'", SecretEnv: []string{brokName}})
		raw, err := hex.DecodeString(strings.TrimSpace(r.Stdout))
		if err != nil {
			t.Fatalf("hex: %v: %q", err, r.Stdout)
		}
		if bytes.Contains(raw, []byte(brokVal)) {
			t.Fatal("the guest's environment or files hold the brokered value")
		}
		var ph string
		for _, s := range ws.Info.Secrets {
			if s.Name == brokName {
				ph = s.Placeholder
			}
		}
		if ph == "" || !bytes.Contains(raw, []byte(brokName+"="+ph)) || !bytes.Contains(raw, []byte(ph)) {
			t.Fatalf("the guest does not see the placeholder %q", ph)
		}
	})

	t.Run("shell", func(t *testing.T) {
		sh, err := ws.ShellOpen(ctx, hearth.ShellOpenOptions{SecretEnv: []string{envName}})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.ShellClose(context.Background(), sh.ID)
		// The marker "=end" appears in the output only, not in the echoed input.
		if _, err := ws.ShellWrite(ctx, sh.ID, []byte("printf 's=%s=%s\\n' \"$"+envName+"\" end\n")); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		deadline := time.Now().Add(time.Minute)
		for !strings.Contains(out.String(), "=end") && time.Now().Before(deadline) {
			o, err := ws.ShellRead(ctx, sh.ID, hearth.ShellReadOptions{Wait: 5 * time.Second, Plain: true})
			if err != nil {
				t.Fatal(err)
			}
			out.WriteString(o.Output)
		}
		noValue("shell output", out.String())
		if !strings.Contains(out.String(), "s=[REDACTED:"+envName+"]=end") {
			t.Fatalf("shell output: %q", out.String())
		}
	})

	t.Run("service logs", func(t *testing.T) {
		// A service that prints a file secret, split across two writes.
		script := "v=$(cat /run/secrets/" + fileName + "); printf 'svc=%s' \"${v%????}\"; sleep 0.2; printf '%s=end\\n' \"${v#\"${v%????}\"}\"; exec sleep 600"
		if _, err := ws.ServiceStart(ctx, "leaky", hearth.ServiceStartOptions{Argv: []string{"sh", "-c", script}, Ready: []string{"log:=end"}, Wait: true, WaitTimeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if err := ws.ServiceLogs(ctx, "leaky", hearth.ServiceLogsOptions{}, &out); err != nil {
			t.Fatal(err)
		}
		noValue("service logs", out.String())
		if !strings.Contains(out.String(), "svc=[REDACTED:"+fileName+"]=end") {
			t.Fatalf("service logs: %q", out.String())
		}
		ws.ServiceRemove(ctx, "leaky")

		// One that prints it and exits: the exit tail in wait and show.
		script = "cat /run/secrets/" + fileName + "; echo; exit 3"
		if _, err := ws.ServiceStart(ctx, "quitter", hearth.ServiceStartOptions{Argv: []string{"sh", "-c", script}, Ready: []string{"log:never printed"}}); err != nil {
			t.Fatal(err)
		}
		defer ws.ServiceRemove(ctx, "quitter")
		w, err := ws.ServiceWait(ctx, "quitter", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(w)
		noValue("service wait", string(b))
		if w.Result != "exited" || !strings.Contains(w.Tail, "[REDACTED:"+fileName+"]") {
			t.Fatalf("service wait: %s", b)
		}
		sv, err := ws.ServiceShow(ctx, "quitter")
		if err != nil {
			t.Fatal(err)
		}
		b, _ = json.Marshal(sv)
		noValue("service show", string(b))
		if sv.LastExit == nil || !strings.Contains(sv.LastExit.Tail, "[REDACTED:"+fileName+"]") {
			t.Fatalf("service show: %s", b)
		}
	})

	t.Run("mcp", func(t *testing.T) {
		var logs syncBuffer
		lg := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		srv := mcp.NewServer(c, mcp.Options{Logger: lg, SDKLogger: lg})
		st, ct := sdkmcp.NewInMemoryTransports()
		ss, err := srv.Connect(ctx, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		cs, err := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "test", Version: "0"}, nil).Connect(ctx, ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		text := func(r *sdkmcp.CallToolResult) string {
			b, _ := json.Marshal(r)
			return string(b)
		}
		res, err := cs.CallTool(ctx, &sdkmcp.CallToolParams{Name: "workspace_exec", Arguments: map[string]any{
			"workspace": ws.Info.ID, "command": `echo "m=$` + envName + `"`, "secret_env": []string{envName}}})
		if err != nil {
			t.Fatal(err)
		}
		if s := text(res); res.IsError || !strings.Contains(s, "m=[REDACTED:"+envName+"]") {
			t.Fatalf("MCP exec: %s", s)
		}
		noValue("MCP exec result", text(res))
		// secret_set over MCP: the value goes in, never comes out (result,
		// errors, either log).
		mcpName, mcpVal := randomName("MCP"), randomValue("mv-")
		t.Cleanup(func() { c.SecretRemove(context.Background(), mcpName) })
		res, err = cs.CallTool(ctx, &sdkmcp.CallToolParams{Name: "secret_set", Arguments: map[string]any{"name": mcpName, "value": mcpVal}})
		if err != nil || res.IsError {
			t.Fatalf("MCP secret_set: %v %s", err, text(res))
		}
		res, _ = cs.CallTool(ctx, &sdkmcp.CallToolParams{Name: "secret_set", Arguments: map[string]any{"name": "1bad", "value": mcpVal}})
		if !res.IsError {
			t.Fatal("a bad name was accepted")
		}
		res2, _ := cs.CallTool(ctx, &sdkmcp.CallToolParams{Name: "secret_list", Arguments: map[string]any{}})
		for _, s := range []string{text(res), text(res2), logs.String()} {
			if strings.Contains(s, mcpVal) {
				t.Fatalf("MCP shows the value set over it: %s", s)
			}
		}
		if !strings.Contains(text(res2), mcpName) {
			t.Fatalf("secret_list does not name %s: %s", mcpName, text(res2))
		}
		noValue("MCP logs", logs.String())
	})

	t.Run("export", func(t *testing.T) {
		run(hearth.ExecOptions{Shell: "ln -s /run/secrets /workspace/lnk && mkdir /workspace/mnt && mount --bind /run/secrets /workspace/mnt && ls /workspace/mnt"})
		dest := filepath.Join(t.TempDir(), "out")
		if _, err := ws.Export(ctx, "/workspace", dest, hearth.ExportOptions{}); err != nil {
			t.Fatal(err)
		}
		if hits := filesHolding(t, dest, all...); len(hits) > 0 {
			t.Fatalf("the export holds secret values: %v", hits)
		}
		if _, err := ws.Export(ctx, "/run/secrets", filepath.Join(t.TempDir(), "o2"), hearth.ExportOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("export of /run/secrets: %v", err)
		}
		run(hearth.ExecOptions{Shell: "umount /workspace/mnt"})
	})

	t.Run("restart", func(t *testing.T) {
		if _, err := ws.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if hits := filesHolding(t, wsDirOf(ws), all...); len(hits) > 0 {
			t.Fatalf("the stopped workspace's files hold secret values: %v", hits)
		}
		if _, err := ws.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if r := run(hearth.ExecOptions{Shell: "stat -c %a /run/secrets/" + fileName + " && cat /run/secrets/" + fileName}); r.Stdout != "400\n[REDACTED:"+fileName+"]" {
			t.Fatalf("after a restart: %q %q", r.Stdout, r.Stderr)
		}
		// Removing the exposure removes the file at once.
		if _, err := ws.SecretRemove(ctx, fileName); err != nil {
			t.Fatal(err)
		}
		if r := run(hearth.ExecOptions{Shell: "ls /run/secrets"}); strings.Contains(r.Stdout, fileName) {
			t.Fatalf("file left after secret rm: %q", r.Stdout)
		}
	})
}

// TestSecretBadInput: each bad input is a clear error naming what was
// wrong, never holding the value.
func TestSecretBadInput(t *testing.T) {
	c := sdk(t)
	ctx := context.Background()
	val := randomValue("bad-")
	name := randomName("BADIN")
	for _, tc := range []struct {
		what string
		do   func() error
		kind error
	}{
		{"no value", func() error { _, err := c.SecretSet(ctx, name, nil, hearth.SecretSetOptions{}); return err }, errdefs.ErrInvalidArgument},
		{"too large", func() error {
			_, err := c.SecretSet(ctx, name, []byte(strings.Repeat(val, 64<<10/len(val)+1)), hearth.SecretSetOptions{})
			return err
		}, errdefs.ErrInvalidArgument},
		{"bad name", func() error {
			_, err := c.SecretSet(ctx, "no-dash", []byte(val), hearth.SecretSetOptions{})
			return err
		}, errdefs.ErrInvalidArgument},
		{"any-host", func() error {
			_, err := c.SecretSet(ctx, name, []byte(val), hearth.SecretSetOptions{Hosts: []string{"*"}})
			return err
		}, errdefs.ErrInvalidArgument},
		{"unknown secret on create", func() error {
			_, err := c.CreateWorkspace(ctx, hearth.CreateOptions{Secrets: []string{"NO_SUCH_SECRET_X"}})
			return err
		}, errdefs.ErrNotFound},
		{"unknown rm", func() error { _, err := c.SecretRemove(ctx, "NO_SUCH_SECRET_X"); return err }, errdefs.ErrNotFound},
	} {
		err := tc.do()
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.what, err, tc.kind)
			continue
		}
		if strings.Contains(err.Error(), val) {
			t.Errorf("%s: the error holds the value: %v", tc.what, err)
		}
	}
	// Brokered without hosts.
	if _, err := c.SecretSet(ctx, name, []byte(val), hearth.SecretSetOptions{}); err != nil {
		t.Fatal(err)
	}
	defer c.SecretRemove(ctx, name)
	_, err := c.CreateWorkspace(ctx, hearth.CreateOptions{Secrets: []string{name + ":brokered"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "hosts") || strings.Contains(err.Error(), val) {
		t.Fatalf("brokered without hosts: %v", err)
	}
	_, err = c.CreateWorkspace(ctx, hearth.CreateOptions{Secrets: []string{name + ":sideways"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad mode: %v", err)
	}
	l, err := c.SecretList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(l)
	if strings.Contains(string(b), val) || !strings.Contains(string(b), name) {
		t.Fatalf("secret list: %s", b)
	}
	var _ api.Secret
}
