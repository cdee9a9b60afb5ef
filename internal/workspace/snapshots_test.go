package workspace

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// stoppedWorkspace is a ready workspace record with a small sparse disk
// whose bytes say which version it is (no VM: these tests boot nothing).
func stoppedWorkspace(t *testing.T, m *Manager, name, content string) *record {
	t.Helper()
	rec := addRecord(t, m, name, true)
	writeDisk(t, m, rec, content)
	return rec
}

func writeDisk(t *testing.T, m *Manager, rec *record, content string) {
	t.Helper()
	p := filepath.Join(m.dir(rec.ID), "disk.ext4")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(64 << 20)
	if _, err := f.WriteAt([]byte(content), 32<<20); err != nil {
		t.Fatal(err)
	}
}

func readDisk(t *testing.T, m *Manager, rec *record) string {
	t.Helper()
	f, err := os.Open(filepath.Join(m.dir(rec.ID), "disk.ext4"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 64)
	f.ReadAt(b, 32<<20)
	return string(bytes.TrimRight(b, "\x00"))
}

func TestSnapshotResetStopped(t *testing.T) {
	m := testManager(t, time.Second, time.Second)
	rec := stoppedWorkspace(t, m, "w", "version-1")
	ctx := context.Background()
	s, err := m.SnapshotCreate(ctx, "w", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != api.SnapshotDisk || s.Running || s.Restore.Image != "debian-12" || s.SizeBytes <= 0 || s.SizeBytes > 1<<20 {
		t.Fatalf("snapshot %+v", s)
	}
	writeDisk(t, m, rec, "version-2")
	w, err := m.Reset(ctx, "w", ResetOptions{To: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := readDisk(t, m, rec); got != "version-1" {
		t.Fatalf("after reset the disk holds %q", got)
	}
	if w.State != api.StateStopped || w.Parent != "s1" || w.Snapshots != 1 || w.SnapshotBytes <= 0 {
		t.Fatalf("after reset: %+v", w)
	}
	// The snapshot is untouched by what happens to the disk afterwards.
	writeDisk(t, m, rec, "version-3")
	if _, err := m.Reset(ctx, "w", ResetOptions{To: "s1"}); err != nil {
		t.Fatal(err)
	}
	if got := readDisk(t, m, rec); got != "version-1" {
		t.Fatalf("second reset: %q", got)
	}
	// The command log has an entry per reset.
	cs, err := m.commandLog(rec.ID).List(0)
	if err != nil || len(cs) != 2 || !strings.Contains(cs[0].Shell, "reset to snapshot s1") || cs[0].Status != api.CommandFinished {
		t.Fatalf("command log %+v, %v", cs, err)
	}
	// No temporary file is left in the workspace.
	ents, _ := os.ReadDir(m.dir(rec.ID))
	for _, e := range ents {
		if strings.Contains(e.Name(), "next") || strings.Contains(e.Name(), "tmp") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestSnapshotBadInput(t *testing.T) {
	m := testManager(t, time.Second, time.Second)
	stoppedWorkspace(t, m, "w", "a")
	stoppedWorkspace(t, m, "other", "b")
	ctx := context.Background()
	if _, err := m.SnapshotCreate(ctx, "w", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SnapshotCreate(ctx, "other", "theirs"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		kind error
		arg  string
		msg  string
	}{
		{"duplicate", func() error { _, err := m.SnapshotCreate(ctx, "w", "s1"); return err }(), errdefs.ErrAlreadyExists, "", "already has a snapshot"},
		{"baseline reserved", func() error { _, err := m.SnapshotCreate(ctx, "w", "baseline"); return err }(), errdefs.ErrInvalidArgument, "name", "baseline"},
		{"bad name", func() error { _, err := m.SnapshotCreate(ctx, "w", "../x"); return err }(), errdefs.ErrInvalidArgument, "name", "1-63"},
		{"unknown", func() error { _, err := m.SnapshotShow(ctx, "w", "nope"); return err }(), errdefs.ErrNotFound, "", "no snapshot \"nope\""},
		{"another workspace's", func() error { _, err := m.Reset(ctx, "w", ResetOptions{To: "theirs"}); return err }(), errdefs.ErrNotFound, "", "other ("},
		{"reset bad name", func() error { _, err := m.Reset(ctx, "w", ResetOptions{To: "a/b"}); return err }(), errdefs.ErrInvalidArgument, "to", ""},
		{"no baseline", func() error { _, err := m.Reset(ctx, "w", ResetOptions{}); return err }(), errdefs.ErrNotFound, "", "no baseline"},
		{"rm baseline", func() error { _, err := m.SnapshotRemove(ctx, "w", "baseline"); return err }(), errdefs.ErrInvalidArgument, "name", ""},
		{"rm unknown", func() error { _, err := m.SnapshotRemove(ctx, "w", "nope"); return err }(), errdefs.ErrNotFound, "", ""},
		{"fork no name", func() error { _, err := m.Fork(ctx, "w", ForkOptions{}); return err }(), errdefs.ErrInvalidArgument, "name", ""},
		{"fork bad count", func() error { _, err := m.Fork(ctx, "w", ForkOptions{Name: "f", Count: 17}); return err }(), errdefs.ErrInvalidArgument, "count", ""},
		{"fork existing name", func() error { _, err := m.Fork(ctx, "w", ForkOptions{Name: "other"}); return err }(), errdefs.ErrAlreadyExists, "", "already exists"},
		{"fork another's snapshot", func() error { _, err := m.Fork(ctx, "w", ForkOptions{Name: "f", From: "theirs"}); return err }(), errdefs.ErrNotFound, "", "other ("},
		{"fork bad from", func() error { _, err := m.Fork(ctx, "w", ForkOptions{Name: "f", From: "A"}); return err }(), errdefs.ErrInvalidArgument, "from_snapshot", ""},
	} {
		if !errors.Is(tc.err, tc.kind) || errdefs.ArgOf(tc.err) != tc.arg || !strings.Contains(tc.err.Error(), tc.msg) {
			t.Errorf("%s: %v (arg %q), want %v, arg %q, saying %q", tc.name, tc.err, errdefs.ArgOf(tc.err), tc.kind, tc.arg, tc.msg)
		}
	}
	// Nothing was lost: the snapshots are all there, the disks unchanged.
	l, err := m.SnapshotList(ctx, "w")
	if err != nil || len(l.Snapshots) != 1 || l.Snapshots[0].Name != "s1" || l.TotalBytes <= 0 {
		t.Fatalf("list %+v, %v", l, err)
	}
	if rs, _ := m.records(); len(rs) != 2 {
		t.Fatalf("records: %d", len(rs))
	}
	// Remove works, and then it is gone.
	if _, err := m.SnapshotRemove(ctx, "w", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SnapshotShow(ctx, "w", "s1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("after rm: %v", err)
	}
}

// TestSnapshotHostDiskFull: with too little free space a snapshot and a
// reset fail before copying and leave nothing half written.
func TestSnapshotHostDiskFull(t *testing.T) {
	m := testManager(t, time.Second, time.Second)
	rec := stoppedWorkspace(t, m, "w", "v1")
	ctx := context.Background()
	if _, err := m.SnapshotCreate(ctx, "w", "s1"); err != nil {
		t.Fatal(err)
	}
	writeDisk(t, m, rec, "v2")
	old := snapshotFree
	snapshotFree = func(string) (int64, error) { return 1 << 20, nil }
	defer func() { snapshotFree = old }()
	if _, err := m.SnapshotCreate(ctx, "w", "s2"); !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "free") {
		t.Fatalf("snapshot on a full disk: %v", err)
	}
	if _, err := m.Reset(ctx, "w", ResetOptions{To: "s1"}); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("reset on a full disk: %v", err)
	}
	if got := readDisk(t, m, rec); got != "v2" {
		t.Fatalf("a refused reset changed the disk: %q", got)
	}
	ents, _ := os.ReadDir(m.snapRoot(rec.ID))
	if len(ents) != 1 || ents[0].Name() != "s1" {
		t.Fatalf("snapshots dir after refusals: %v", ents)
	}
	ents, _ = os.ReadDir(m.dir(rec.ID))
	for _, e := range ents {
		if strings.Contains(e.Name(), "next") || strings.Contains(e.Name(), "tmp") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestSnapshotLeftoversCleaned: what a snapshot or reset killed half-way
// (kill -9) leaves is invisible and removed by the next operation, and
// the disk is the old one.
func TestSnapshotLeftoversCleaned(t *testing.T) {
	m := testManager(t, time.Second, time.Second)
	rec := stoppedWorkspace(t, m, "w", "v1")
	ctx := context.Background()
	os.MkdirAll(m.snapDir(rec.ID, ".tmp-half"), 0o700)
	os.WriteFile(filepath.Join(m.snapDir(rec.ID, ".tmp-half"), "disk.ext4"), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(m.dir(rec.ID), "disk.ext4.next"), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(m.dir(rec.ID), ".disk.ext4.next.tmp-99999"), []byte("partial"), 0o600)
	l, err := m.SnapshotList(ctx, "w")
	if err != nil || len(l.Snapshots) != 0 {
		t.Fatalf("a half snapshot is listed: %+v %v", l, err)
	}
	if got := readDisk(t, m, rec); got != "v1" {
		t.Fatalf("disk %q", got)
	}
	if _, err := m.SnapshotCreate(ctx, "w", "s1"); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(m.snapRoot(rec.ID))
	if len(ents) != 1 {
		t.Fatalf("leftovers not cleaned: %v", ents)
	}
	for _, p := range []string{"disk.ext4.next", ".disk.ext4.next.tmp-99999"} {
		if _, err := os.Stat(filepath.Join(m.dir(rec.ID), p)); err == nil {
			t.Errorf("%s not cleaned", p)
		}
	}
}

// TestDeleteRemovesSnapshots: snapshots go with their workspace.
func TestDeleteRemovesSnapshots(t *testing.T) {
	m := testManager(t, time.Second, time.Second)
	rec := stoppedWorkspace(t, m, "w", "v1")
	ctx := context.Background()
	if _, err := m.SnapshotCreate(ctx, "w", "s1"); err != nil {
		t.Fatal(err)
	}
	w, err := m.Get(ctx, "w")
	if err != nil || w.Snapshots != 1 || w.SnapshotBytes <= 0 {
		t.Fatalf("show: %+v %v", w, err)
	}
	if _, err := m.Delete(ctx, "w", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.snapRoot(rec.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshots left after delete: %v", err)
	}
}
