package hearth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/hearthvm/hearth"
)

// A workspace's life: create it seeded from a host directory, run a
// command, push more files, see what changed, take results out, delete it.
func Example() {
	ctx := context.Background()
	c, err := hearth.New()
	if err != nil {
		log.Fatal(err)
	}
	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{Name: "demo", Seed: "./project"})
	if err != nil {
		log.Fatal(err)
	}
	defer ws.Delete(ctx, true)
	res, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"make", "test"}, Timeout: 5 * time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit", res.ExitCode, res.Reason)
	if _, err := ws.SyncPush(ctx, "./project", hearth.SyncOptions{}); err != nil {
		log.Fatal(err)
	}
	d, err := ws.Diff(ctx, hearth.DiffOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range d.Files {
		fmt.Println(f.Status, f.Path)
	}
	if _, err := ws.Export(ctx, "/workspace/dist", "./dist", hearth.ExportOptions{}); err != nil {
		log.Fatal(err)
	}
}

// Errors carry a kind that errors.Is tests, the same on every surface.
func ExampleClient_Workspace() {
	ctx := context.Background()
	c, err := hearth.New()
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Workspace("no-such-workspace").Show(ctx)
	if errors.Is(err, hearth.ErrNotFound) {
		fmt.Println("not found:", err)
	}
}

// Stream a command's output as it arrives, with its exit code.
func ExampleWorkspace_Exec() {
	ctx := context.Background()
	c, _ := hearth.New()
	ws := c.Workspace("demo")
	res, err := ws.Exec(ctx, hearth.ExecOptions{Shell: "for i in 1 2 3; do echo $i; sleep 1; done", Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		log.Fatal(err)
	}
	os.Exit(res.ExitCode)
}

// Long commands: start detached (or with a Yield), then wait, read, kill.
func ExampleWorkspace_CommandWait() {
	ctx := context.Background()
	c, _ := hearth.New()
	ws := c.Workspace("demo")
	res, err := ws.Exec(ctx, hearth.ExecOptions{Argv: []string{"make", "build"}, Yield: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	for res.Status == "running" {
		out, _ := ws.CommandRead(ctx, res.CommandID, "stdout", res.StdoutBytes, 64<<10)
		fmt.Print(out.Data)
		if res, err = ws.CommandWait(ctx, res.CommandID, 30*time.Second); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("exit", res.ExitCode)
}

// A persistent shell keeps its state between calls.
func ExampleWorkspace_ShellOpen() {
	ctx := context.Background()
	c, _ := hearth.New()
	ws := c.Workspace("demo")
	sh, err := ws.ShellOpen(ctx, hearth.ShellOpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer ws.ShellClose(ctx, sh.ID)
	ws.ShellWrite(ctx, sh.ID, []byte("cd /tmp && export X=42\n"))
	ws.ShellWrite(ctx, sh.ID, []byte("echo $PWD:$X\n"))
	out, _ := ws.ShellRead(ctx, sh.ID, hearth.ShellReadOptions{Wait: 2 * time.Second, Plain: true})
	fmt.Print(out.Output)
}

func ExampleParseSize() {
	n, _ := hearth.ParseSize("8G")
	fmt.Println(n)
	// Output: 8589934592
}
