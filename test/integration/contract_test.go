package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/httpapi"
)

// TestContractAgreement checks, on a real VM, the fixes the operation
// table brought: every surface captures exec output (the Go SDK too),
// stdin carries arbitrary bytes over the remote engine, shell_close is
// idempotent, and a boot failure is `unavailable` for create as for run.
func TestContractAgreement(t *testing.T) {
	c := sdk(t)
	ws := newWorkspace(t, c, hearth.CreateOptions{Name: "contract"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("Go SDK captures by default", func(t *testing.T) {
		res, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"echo", "captured"}})
		if err != nil || res.Stdout != "captured\n" {
			t.Fatalf("exec without Capture: %+v %v", res, err)
		}
	})

	t.Run("logs page by page", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if _, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"true"}}); err != nil {
				t.Fatal(err)
			}
		}
		out, err := c.Invoke(ctx, "workspace_logs", &api.LogsRequest{Workspace: "contract", Offset: 1, Limit: 2}, hearth.Streams{})
		if err != nil {
			t.Fatal(err)
		}
		l := out.(*api.CommandList)
		if len(l.Commands) != 2 || l.Total < 4 || l.NextOffset != 3 {
			t.Fatalf("page: %d commands, total %d, next %d", len(l.Commands), l.Total, l.NextOffset)
		}
		all, err := ws.Logs(ctx, hearth.LogsOptions{})
		if err != nil || len(all) != l.Total {
			t.Fatalf("all pages: %d of %d (%v)", len(all), l.Total, err)
		}
	})

	srv := httptest.NewServer(httpapi.New(httpapi.FromClient(c), httpapi.Options{}))
	defer srv.Close()
	rc, err := hearth.New(hearth.WithRemote(srv.URL, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("binary stdin over the remote engine", func(t *testing.T) {
		in := []byte{0, 0xff, 1, '\n', 0xfe}
		res, err := rc.Workspace("contract").Exec(ctx, hearth.ExecOptions{Argv: []string{"cat"}, Stdin: bytes.NewReader(in)})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := base64.StdEncoding.DecodeString(res.Stdout)
		if res.StdoutEncoding != "base64" || !bytes.Equal(out, in) {
			t.Fatalf("stdout %q (%s), want the bytes %v", res.Stdout, res.StdoutEncoding, in)
		}
	})
	t.Run("shell_close is idempotent on every engine", func(t *testing.T) {
		for name, w := range map[string]*hearth.Workspace{"local": ws, "remote": rc.Workspace("contract")} {
			sh, err := w.ShellOpen(ctx, hearth.ShellOpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if _, err := w.ShellClose(ctx, sh.ID); err != nil {
					t.Fatalf("%s: close %d: %v", name, i+1, err)
				}
			}
		}
	})
	t.Run("list shape over HTTP", func(t *testing.T) {
		l, err := rc.ListWorkspaces(ctx)
		if err != nil || len(l) == 0 {
			t.Fatalf("remote list: %v %v", l, err)
		}
	})
	t.Run("boot failure is unavailable on create", func(t *testing.T) {
		r := env.Hearth(nil, "image", "import", "broken-kernel-c", "--kernel", "/bin/true", "--rootfs", filepath.Join(env.Home, "images", "debian-12", "rootfs.ext4"))
		if r.Code != 0 {
			t.Fatalf("import: %s", r.Stderr)
		}
		defer env.Hearth(nil, "image", "rm", "broken-kernel-c")
		_, err := c.CreateWorkspace(ctx, hearth.CreateOptions{Name: "contract-broken", Image: "broken-kernel-c", MemoryMiB: 256})
		defer c.Workspace("contract-broken").Delete(context.Background(), true)
		if !errors.Is(err, hearth.ErrUnavailable) {
			t.Fatalf("create with a broken kernel: %v, want unavailable", err)
		}
		r = env.Hearth(nil, "workspace", "create", "--name", "contract-broken2", "--image", "broken-kernel-c")
		defer env.Hearth(nil, "workspace", "delete", "--force", "contract-broken2")
		if r.Code != 5 {
			t.Fatalf("CLI create with a broken kernel exits %d, want 5 (unavailable): %s", r.Code, r.Stderr)
		}
	})
}
