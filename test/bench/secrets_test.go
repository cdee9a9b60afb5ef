package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hearthvm/hearth"
	"github.com/hearthvm/hearth/internal/secrets"
)

// BenchmarkSecretsRedaction prints the cost of redaction on 50 MB of
// command output: one workspace, the same command with 3 secrets exposed
// against none (target ≤ 1.1), alternating runs; and the redacting writer
// alone on the host against a plain copy.
func BenchmarkSecretsRedaction(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	c := client(b, e)
	ws, err := c.CreateWorkspace(ctx, hearth.CreateOptions{MemoryMiB: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Delete(context.Background(), true)
	var names []string
	for i := range 3 {
		name := fmt.Sprintf("BENCH_%s_%d", ws.Info.ID[3:], i)
		if _, err := c.SecretSet(ctx, name, []byte(fmt.Sprintf("sk-bench-%d-9f8e7d6c5b4a39281706", i)), hearth.SecretSetOptions{}); err != nil {
			b.Fatal(err)
		}
		names = append(names, name)
		defer c.SecretRemove(context.Background(), name)
	}
	const size = 50 << 20
	script := fmt.Sprintf("yes 'the quick brown fox jumps over the lazy dog 0123456789' | head -c %d", size)
	once := func() time.Duration {
		start := time.Now()
		r, err := ws.Exec(ctx, hearth.ExecOptions{Shell: script, Stdout: io.Discard, Stderr: io.Discard})
		if err != nil || r.StdoutBytes != size {
			b.Fatalf("exec: %v %+v", err, r)
		}
		return time.Since(start)
	}
	const n = 3
	var none, three []time.Duration
	for range n {
		none = append(none, once())
		for _, name := range names {
			if _, err := ws.SecretAdd(ctx, name, hearth.SecretExposure{Mode: "env"}); err != nil {
				b.Fatal(err)
			}
		}
		three = append(three, once())
		for _, name := range names {
			if _, err := ws.SecretRemove(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
	}
	// The writer alone: 50 MB in 32 KiB chunks.
	chunk := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog 0123456789\n"), 32<<10/55)
	var secs []secrets.Secret
	for i := range 3 {
		secs = append(secs, secrets.Secret{Name: fmt.Sprintf("S%d", i), Value: []byte(fmt.Sprintf("sk-bench-%d-9f8e7d6c5b4a39281706", i))})
	}
	host := func(r *secrets.Redactor) time.Duration {
		w := r.NewWriter(io.Discard)
		start := time.Now()
		for sent := 0; sent < size; sent += len(chunk) {
			w.Write(chunk)
		}
		w.Flush()
		return time.Since(start)
	}
	var hNone, hThree []time.Duration
	for range 5 {
		hNone = append(hNone, host(nil))
		hThree = append(hThree, host(secrets.NewRedactor(secs)))
	}
	mn, m3 := median(none), median(three)
	fmt.Printf("\nsecrets redaction, 50 MB of output (medians of %d, alternating):\n  exec, no secrets       %v (%.0f MB/s)\n  exec, 3 secrets        %v (%.0f MB/s)\n  ratio 3/none           %.3f (target ≤ 1.1)\n  host writer alone      %v (3 secrets; %.0f MB/s) against %v for none\n",
		n, mn.Round(time.Millisecond), 50/mn.Seconds(), m3.Round(time.Millisecond), 50/m3.Seconds(), float64(m3)/float64(mn),
		median(hThree).Round(time.Microsecond), 50/median(hThree).Seconds(), median(hNone).Round(time.Microsecond))
}
