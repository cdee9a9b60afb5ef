package reliability

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthvm/hearth/internal/archive"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// TestCorpus checks the hostile inputs are what they claim: hearth's own
// seed validator (no VM) refuses the escaping ones, skips special files,
// sees the bombs' full size and hits the entry limit.
func TestCorpus(t *testing.T) {
	dir := t.TempDir()
	cd := filepath.Join(dir, "canary")
	if _, err := newCanary(cd); err != nil {
		t.Fatal(err)
	}
	cfg := config{BombMiB: 128, Entries: 1001}
	t.Setenv(archive.MaxEntriesEnv, "1000")
	items, err := corpus(dir, cd, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // item name prefix: refused, warned or bytes
		"traversal":                  "refused",
		"traversal-inner":            "refused",
		"absolute-path":              "refused",
		"symlink-out-abs-then-write": "refused",
		"symlink-out-rel-then-write": "refused",
		"symlink-out-abs":            "refused",
		"symlink-out-rel":            "refused",
		"hardlink-out-abs":           "refused",
		"hardlink-out-rel":           "refused",
		"hardlink-then-write":        "refused",
		"device-nodes":               "warned",
		"fifo":                       "warned",
		"huge-file-truncated":        "refused",
		"zip-traversal-absolute":     "refused",
		"zip-symlink-out-then-write": "refused",
		"zip-bomb":                   "bytes",
		"zip-bomb declaring 1 MiB":   "declared",
		"gzip-bomb":                  "bytes",
		"many-entries":               "exhausted",
		"dir symlink-out-abs":        "refused",
		"dir symlink-out-rel":        "refused",
		"dir device-node":            "warned",
		"dir fifo":                   "warned",
		"dir socket":                 "warned",
	}
	for _, it := range items {
		src := it.archive
		if src == "" {
			src = it.dir
		}
		res, err := archive.CheckSeed(context.Background(), src)
		key := strings.SplitN(it.name, " (", 2)[0]
		t.Logf("%-32s err=%v res=%+v", it.name, err, res)
		switch want[key] {
		case "refused":
			if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%s: want an invalid-argument refusal, got %v", it.name, err)
			}
		case "warned":
			if err != nil || len(res.Warnings) == 0 {
				t.Errorf("%s: want accepted with warnings, got %v %+v", it.name, err, res)
			}
		case "bytes":
			if err != nil || res.Bytes != int64(cfg.BombMiB)<<20 {
				t.Errorf("%s: want %d bytes, got %v %+v", it.name, int64(cfg.BombMiB)<<20, err, res)
			}
		case "declared": // the lie passes the check; the read fails (see PackSeed)
			if err != nil || res.Bytes != 1<<20 {
				t.Errorf("%s: want the declared 1 MiB, got %v %+v", it.name, err, res)
			}
			if _, err := archive.PackSeed(context.Background(), src, io.Discard); err == nil {
				t.Errorf("%s: packing the lying zip succeeded", it.name)
			} else {
				t.Logf("packing it: %v", err)
			}
		case "exhausted":
			if !errors.Is(err, errdefs.ErrResourceExhausted) {
				t.Errorf("%s: want resource exhausted, got %v", it.name, err)
			}
		}
	}
}

// TestReportGoals: a goal figure other than 0 is a failure, named in the
// Markdown and the JSON.
func TestReportGoals(t *testing.T) {
	r := &Report{Config: config{Mode: "short", BombMiB: 512}}
	r.goal("faults: orphaned VMM processes", 0)
	r.goal("bad input: escapes", 2)
	if f := r.Failed(); len(f) != 1 || !strings.Contains(f[0], "escapes = 2") {
		t.Fatalf("failed goals: %v", f)
	}
	md := r.Markdown()
	for _, want := range []string{"| faults: orphaned VMM processes | 0 | 0 | ok |", "| bad input: escapes | 2 | 0 | **MISSED** |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || !strings.Contains(string(b), `"figure": "bad input: escapes"`) {
		t.Fatalf("report.json: %v %s", err, b)
	}
}
