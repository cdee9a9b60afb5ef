// Command example walks hearth's central workflow with the Go SDK: create a
// workspace seeded from a host directory, run a command, push newer host
// files in, diff against the baseline, export the result, and delete the
// workspace, printing each step.
//
//	make build && HEARTH_BIN=$PWD/bin/hearth HEARTH_AGENT=$PWD/bin/hearth-agent go run ./examples/go
//
// It uses the state directory $HEARTH_HOME (the guest image must be built:
// `hearth image build debian-12`).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/hearthvm/hearth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "hearth-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// A host project to seed /workspace with.
	seed := filepath.Join(tmp, "seed")
	if err := writeFiles(seed, map[string]string{"hello.txt": "hello\n", "notes/todo.md": "- try hearth\n"}); err != nil {
		return err
	}

	c, err := hearth.New()
	if err != nil {
		return fmt.Errorf("open hearth: %w", err)
	}
	start := time.Now()
	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{
		Name:     fmt.Sprintf("example-%d", os.Getpid()),
		Seed:     seed,
		Progress: func(step string) { fmt.Println("  ...", step) },
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	fmt.Printf("1. created %s (%s, %s/%s) in %s\n", ws.Info.Name, ws.Info.ID, ws.Info.Backend, ws.Info.Accel, time.Since(start).Round(time.Millisecond))
	defer func() {
		if _, err := ws.Delete(context.Background(), true); err == nil {
			fmt.Println("6. deleted", ws.Info.Name)
		}
	}()

	res, err := ws.Exec(ctx, hearth.ExecOptions{Shell: "cat hello.txt; uname -sr"})
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	fmt.Printf("2. exec (exit %d):\n%s", res.ExitCode, res.Stdout)

	// Change the project on the host, then push what is newer.
	push := filepath.Join(tmp, "push")
	if err := writeFiles(push, map[string]string{"hello.txt": "hello, world\n", "new.txt": "made on the host\n"}); err != nil {
		return err
	}
	sp, err := ws.SyncPush(ctx, push, hearth.SyncOptions{})
	if err != nil {
		return fmt.Errorf("sync push: %w", err)
	}
	fmt.Printf("3. sync push: %d of %d files sent (%d bytes)\n", sp.Sent, sp.Scanned, sp.Bytes)

	d, err := ws.Diff(ctx, hearth.DiffOptions{})
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	fmt.Printf("4. diff against the baseline: %d changed (+%d -%d)\n", len(d.Files), d.Summary.Insertions, d.Summary.Deletions)
	for _, f := range d.Files {
		fmt.Printf("   %-9s %s\n", f.Status, f.Path)
		if f.Patch != "" {
			fmt.Print(indent(f.Patch))
		}
	}

	out := filepath.Join(tmp, "export")
	ex, err := ws.Export(ctx, "/workspace", out, hearth.ExportOptions{})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "hello.txt"))
	if err != nil {
		return err
	}
	fmt.Printf("5. exported %d files (%d bytes) to %s; hello.txt = %q\n", ex.Files, ex.Bytes, ex.HostPath, b)
	return nil
}

func writeFiles(dir string, files map[string]string) error {
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		b.WriteString("     " + l + "\n")
	}
	return b.String()
}
