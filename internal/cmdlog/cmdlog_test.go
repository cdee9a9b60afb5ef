package cmdlog

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// finish begins a command, writes its output and records it finished.
func finish(t *testing.T, s *Store, stdout, stderr string) string {
	t.Helper()
	r, err := s.Begin(api.Command{Argv: []string{"echo"}}, Self())
	if err != nil {
		t.Fatal(err)
	}
	r.Stdout.Write([]byte(stdout))
	r.Stderr.Write([]byte(stderr))
	code := 0
	r.Cmd.Status, r.Cmd.Reason, r.Cmd.ExitCode = api.CommandFinished, api.ReasonExited, &code
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	return r.ID()
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func ids(cs []api.Command) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// TestIDsNeverReused damages the log the way a kill (or a power cut) in
// the middle of a write can, then begins a command: it must get an id no
// earlier command had, and no earlier output may change.
func TestIDsNeverReused(t *testing.T) {
	journalLines := func(t *testing.T, dir string) []string {
		return strings.SplitAfter(strings.TrimSuffix(readFile(t, filepath.Join(dir, journalName)), "\n"), "\n")
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		// listed are the ids List must show after the damage.
		listed []string
		// taken are ids the damage left claimed besides cmd-1..3.
		taken []string
	}{
		{name: "garbage seq", damage: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, seqName), []byte("\x00\xffgarbage"), 0o600)
		}},
		{name: "empty seq", damage: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, seqName), nil, 0o600)
		}},
		{name: "seq behind the log", damage: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, seqName), []byte("1"), 0o600)
		}},
		{name: "seq removed", damage: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, seqName))
		}},
		{name: "half-written journal line", damage: func(t *testing.T, dir string) {
			appendFile(t, filepath.Join(dir, journalName), `{"id":"cmd-000003","status":"fini`)
		}},
		{name: "garbage journal line", damage: func(t *testing.T, dir string) {
			appendFile(t, filepath.Join(dir, journalName), "\x00\x01{not json\n")
		}},
		{name: "garbage index", damage: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, indexName), bytes.Repeat([]byte{0xa5}, 100), 0o600)
		}},
		{name: "truncated index", damage: func(t *testing.T, dir string) {
			os.Truncate(filepath.Join(dir, indexName), 20)
		}},
		{name: "index removed and seq garbage", damage: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, indexName))
			os.WriteFile(filepath.Join(dir, seqName), []byte("x"), 0o600)
		}},
		{name: "index emptied with a valid header, seq removed", damage: func(t *testing.T, dir string) {
			st, _ := os.Stat(filepath.Join(dir, journalName))
			x, err := openIndex(filepath.Join(dir, indexName), true)
			if err != nil {
				t.Fatal(err)
			}
			x.reset()
			x.setCovered(st.Size())
			x.Close()
			os.Remove(filepath.Join(dir, seqName))
		}, listed: []string{}},
		{name: "killed after appending, before indexing", damage: func(t *testing.T, dir string) {
			appendFile(t, filepath.Join(dir, journalName), `{"id":"cmd-000004","started_at":"2026-01-01T00:00:00Z","status":"finished","exit_code":0}`+"\n")
			os.WriteFile(filepath.Join(dir, seqName), []byte("4"), 0o600)
		}, listed: []string{"cmd-000001", "cmd-000002", "cmd-000003", "cmd-000004"}, taken: []string{"cmd-000004"}},
		{name: "killed after creating outputs, before seq", damage: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "cmd-000004.stdout"), []byte("orphan"), 0o600)
			os.WriteFile(filepath.Join(dir, "cmd-000004.stderr"), nil, 0o600)
		}, taken: []string{"cmd-000004"}},
		{name: "journal tail lost", damage: func(t *testing.T, dir string) {
			l := journalLines(t, dir)
			os.WriteFile(filepath.Join(dir, journalName), []byte(strings.Join(l[:4], "")), 0o600)
		}, listed: []string{"cmd-000001", "cmd-000002"}},
		{name: "journal tail and seq lost", damage: func(t *testing.T, dir string) {
			l := journalLines(t, dir)
			os.WriteFile(filepath.Join(dir, journalName), []byte(strings.Join(l[:4], "")), 0o600)
			os.Remove(filepath.Join(dir, seqName))
		}, listed: []string{"cmd-000001", "cmd-000002"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := Open(dir, Options{})
			for i := 1; i <= 3; i++ {
				if id := finish(t, s, "out-"+FormatID(int64(i)), "err"); id != FormatID(int64(i)) {
					t.Fatalf("id %s, want %s", id, FormatID(int64(i)))
				}
			}
			outputs := map[string]string{}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".stdout") || strings.HasSuffix(e.Name(), ".stderr") {
					outputs[e.Name()] = readFile(t, filepath.Join(dir, e.Name()))
				}
			}
			tc.damage(t, dir)

			s = Open(dir, Options{})
			listed, err := s.List(0)
			if err != nil {
				t.Fatalf("list after damage: %v", err)
			}
			want := tc.listed
			if want == nil {
				want = []string{"cmd-000001", "cmd-000002", "cmd-000003"}
			}
			if got := ids(listed); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("listed %v, want %v", got, want)
			}
			r, err := s.Begin(api.Command{Shell: "new"}, Self())
			if err != nil {
				t.Fatal(err)
			}
			id := r.ID()
			// Its first line is whole: the index rebuilt from the journal
			// alone has it.
			os.Remove(filepath.Join(dir, indexName))
			if c, err := s.Get(id); err != nil || c.Status != api.CommandRunning {
				t.Fatalf("begun command from the journal alone: %+v %v", c, err)
			}
			r.Stdout.Write([]byte("new"))
			code := 0
			r.Cmd.Status, r.Cmd.ExitCode = api.CommandFinished, &code
			if err := r.End(); err != nil {
				t.Fatal(err)
			}
			for _, old := range append([]string{"cmd-000001", "cmd-000002", "cmd-000003"}, tc.taken...) {
				if id == old {
					t.Fatalf("new command got the id %s again", id)
				}
			}
			for name, content := range outputs {
				if got := readFile(t, filepath.Join(dir, name)); got != content {
					t.Errorf("%s: %q, want %q (an earlier output changed)", name, got, content)
				}
			}
			if got := readFile(t, s.OutputPath(id, "stdout")); got != "new" {
				t.Errorf("new output %q", got)
			}
			c, err := s.Get(id)
			if err != nil || c.Status != api.CommandFinished {
				t.Fatalf("get %s: %+v %v", id, c, err)
			}
			// A second begin after the repair continues from there.
			id2 := finish(t, s, "", "")
			if id2 <= id {
				t.Errorf("next id %s after %s", id2, id)
			}
			// The journal alone (the index rebuilt from it) has both.
			os.Remove(filepath.Join(dir, indexName))
			after, err := Open(dir, Options{}).List(2)
			if err != nil || strings.Join(ids(after), ",") != id+","+id2 {
				t.Errorf("from the journal alone: %v %v, want %s,%s", ids(after), err, id, id2)
			}
		})
	}
}

// TestReadsUseIndex: with the index current, reads parse no journal line;
// a line appended without indexing (a writer killed in between) costs one.
func TestReadsUseIndex(t *testing.T) {
	s := Open(t.TempDir(), Options{})
	for i := 0; i < 50; i++ {
		finish(t, s, strings.Repeat("x", i), "")
	}
	if _, err := s.List(0); err != nil {
		t.Fatal(err)
	}
	before := linesIndexed.Load()
	reads := []struct {
		name string
		read func() (string, error)
		want string
	}{
		{"get", func() (string, error) {
			c, err := s.Get("cmd-000025")
			if err != nil {
				return "", err
			}
			return c.ID + ":" + string(rune('0'+c.StdoutBytes%10)), nil
		}, "cmd-000025:4"},
		{"tail", func() (string, error) {
			cs, err := s.List(3)
			return strings.Join(ids(cs), ","), err
		}, "cmd-000048,cmd-000049,cmd-000050"},
		{"all", func() (string, error) {
			cs, err := s.List(0)
			return strings.Join(ids(cs[:2]), ",") + "…" + cs[len(cs)-1].ID, err
		}, "cmd-000001,cmd-000002…cmd-000050"},
		{"missing", func() (string, error) {
			_, err := s.Get("cmd-000051")
			return "", err
		}, ""},
	}
	for _, r := range reads {
		got, err := r.read()
		if r.name == "missing" {
			if !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("missing: %v, want not found", err)
			}
			continue
		}
		if err != nil || got != r.want {
			t.Errorf("%s: %q %v, want %q", r.name, got, err, r.want)
		}
	}
	if n := linesIndexed.Load() - before; n != 0 {
		t.Errorf("reads of a current index parsed %d journal lines", n)
	}
	for _, bad := range []string{"cmd-25", "cmd-0000025", "../seq", "cmd-000025/../x", ""} {
		if _, err := s.Get(bad); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("get %q: %v, want not found", bad, err)
		}
	}
	appendFile(t, filepath.Join(s.Dir(), journalName), `{"id":"cmd-000051","started_at":"2026-01-01T00:00:00Z","status":"finished","exit_code":3}`+"\n")
	before = linesIndexed.Load()
	c, err := s.Get("cmd-000051")
	if err != nil || c.ExitCode == nil || *c.ExitCode != 3 {
		t.Fatalf("unindexed line: %+v %v", c, err)
	}
	if n := linesIndexed.Load() - before; n != 1 {
		t.Errorf("catching up parsed %d lines, want 1", n)
	}
}

func TestOutputCap(t *testing.T) {
	cases := []struct {
		name        string
		existing    string // already in the file (Attach)
		writes      []string
		wantKept    string
		wantBytes   int64
		wantDropped int64
	}{
		{name: "under", writes: []string{"hello"}, wantKept: "hello", wantBytes: 5},
		{name: "exactly", writes: []string{"0123456789"}, wantKept: "0123456789", wantBytes: 10},
		{name: "across writes", writes: []string{"0123", "456789abc", "def"}, wantKept: "0123456789", wantBytes: 16, wantDropped: 6},
		{name: "one big write", writes: []string{strings.Repeat("y", 25)}, wantKept: strings.Repeat("y", 10), wantBytes: 25, wantDropped: 15},
		{name: "attach to a started file", existing: "01234567", writes: []string{"abcde"}, wantKept: "01234567ab", wantBytes: 13, wantDropped: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Open(t.TempDir(), Options{OutputCap: 10, Quota: 1 << 20})
			r, err := s.Begin(api.Command{Shell: "x", Detached: tc.existing != ""}, Self())
			if err != nil {
				t.Fatal(err)
			}
			if tc.existing != "" {
				r.Close()
				os.WriteFile(s.OutputPath(r.ID(), "stdout"), []byte(tc.existing), 0o600)
				os.WriteFile(s.OutputPath(r.ID(), "stderr"), []byte(tc.existing), 0o600)
				if r, err = s.Attach(*r.Cmd); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range tc.writes {
				if n, err := r.Stdout.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("write: %d %v", n, err)
				}
				r.Stderr.Write([]byte(w))
			}
			code := 0
			r.Cmd.Status, r.Cmd.Reason, r.Cmd.ExitCode = api.CommandFinished, api.ReasonExited, &code
			if err := r.End(); err != nil {
				t.Fatal(err)
			}
			c, err := s.Get(r.ID())
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range []struct {
				name           string
				bytes, dropped int64
			}{{"stdout", c.StdoutBytes, c.StdoutDroppedBytes}, {"stderr", c.StderrBytes, c.StderrDroppedBytes}} {
				if got := readFile(t, s.OutputPath(r.ID(), st.name)); got != tc.wantKept {
					t.Errorf("%s kept %q, want %q", st.name, got, tc.wantKept)
				}
				if st.bytes != tc.wantBytes || st.dropped != tc.wantDropped {
					t.Errorf("%s: bytes %d dropped %d, want %d and %d", st.name, st.bytes, st.dropped, tc.wantBytes, tc.wantDropped)
				}
			}
		})
	}
	if s := Open(t.TempDir(), Options{OutputCap: 1 << 30, Quota: 100}); s.OutputCap() != 50 {
		t.Errorf("cap over half the quota: %d", s.OutputCap())
	}
	if s := Open(t.TempDir(), Options{}); s.OutputCap() != DefaultOutputCap || s.Quota() != DefaultQuota {
		t.Errorf("defaults: cap %d quota %d", s.OutputCap(), s.Quota())
	}
}

// TestQuota: commands that each write a lot keep the log within its
// quota; the oldest outputs go first and their entries stay.
func TestQuota(t *testing.T) {
	const quota, cap = 40_000, 4_000
	s := Open(t.TempDir(), Options{OutputCap: cap, Quota: quota})
	big := strings.Repeat("z", 6_000)
	var all []string
	for i := 0; i < 30; i++ {
		all = append(all, finish(t, s, big, big))
		used, err := s.Usage()
		if err != nil {
			t.Fatal(err)
		}
		if used > quota {
			t.Fatalf("after %d commands the log takes %d bytes, over its quota %d", i+1, used, quota)
		}
	}
	cs, err := s.List(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 30 {
		t.Fatalf("%d entries, want 30 (pruning keeps entries)", len(cs))
	}
	seenKept := false
	for i, c := range cs {
		if c.StdoutBytes != 6_000 || c.StdoutDroppedBytes != 2_000 {
			t.Errorf("%s: bytes %d dropped %d", c.ID, c.StdoutBytes, c.StdoutDroppedBytes)
		}
		_, statErr := os.Stat(s.OutputPath(c.ID, "stdout"))
		if c.Pruned != (statErr != nil) {
			t.Errorf("%s: pruned %v but output file: %v", c.ID, c.Pruned, statErr)
		}
		if !c.Pruned {
			seenKept = true
		} else if seenKept {
			t.Errorf("%s pruned after a newer kept one (not oldest first)", c.ID)
		}
		if i == len(cs)-1 && c.Pruned {
			t.Error("the newest command's output was pruned")
		}
	}
	if !cs[0].Pruned {
		t.Error("the oldest output was kept")
	}
	if _, _, err := s.OpenOutput(cs[0].ID, "stdout"); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "pruned") {
		t.Errorf("reading a pruned output: %v", err)
	}
	_ = all
}

func TestPrune(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	setup := func(t *testing.T) (*Store, *time.Time) {
		now := t0
		s := Open(t.TempDir(), Options{Now: func() time.Time { return now }})
		for i := 1; i <= 5; i++ {
			now = t0.Add(time.Duration(i) * time.Hour)
			finish(t, s, strings.Repeat("o", 1000), "e")
		}
		now = t0.Add(6 * time.Hour)
		r, err := s.Begin(api.Command{Shell: "sleep 1000", Detached: true}, Self())
		if err != nil {
			t.Fatal(err)
		}
		r.Stdout.Write([]byte("running"))
		r.Close()
		now = t0.Add(7 * time.Hour)
		return s, &now
	}
	size := func(s *Store) int64 { n, _ := s.Usage(); return n }
	cases := []struct {
		name    string
		opts    func(s *Store) PruneOptions
		want    []string
		invalid bool
	}{
		{name: "every finished one", opts: func(*Store) PruneOptions { return PruneOptions{} },
			want: []string{"cmd-000001", "cmd-000002", "cmd-000003", "cmd-000004", "cmd-000005"}},
		{name: "keep last 3", opts: func(*Store) PruneOptions { return PruneOptions{KeepLast: 3} },
			want: []string{"cmd-000001", "cmd-000002", "cmd-000003"}},
		{name: "older than 4h30m", opts: func(*Store) PruneOptions { return PruneOptions{OlderThan: 4*time.Hour + 30*time.Minute} },
			want: []string{"cmd-000001", "cmd-000002"}},
		{name: "down to a size", opts: func(s *Store) PruneOptions { return PruneOptions{MaxBytes: size(s) - 1500} },
			want: []string{"cmd-000001", "cmd-000002"}},
		{name: "keep last 4, older than 2h30m", opts: func(*Store) PruneOptions { return PruneOptions{KeepLast: 4, OlderThan: 150 * time.Minute} },
			want: []string{"cmd-000001", "cmd-000002"}},
		{name: "negative", opts: func(*Store) PruneOptions { return PruneOptions{KeepLast: -1} }, invalid: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := setup(t)
			before := size(s)
			res, err := s.Prune(tc.opts(s))
			if tc.invalid {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err %v, want invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(res.Pruned, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("pruned %v, want %v", res.Pruned, tc.want)
			}
			if res.LogBytes >= before || res.FreedBytes != int64(len(tc.want))*1001 || res.QuotaBytes != DefaultQuota {
				t.Errorf("result %+v (log was %d bytes)", res, before)
			}
			cs, err := s.List(0)
			if err != nil || len(cs) != 6 {
				t.Fatalf("entries after prune: %v %v", ids(cs), err)
			}
			pruned := map[string]bool{}
			for _, id := range tc.want {
				pruned[id] = true
			}
			for _, c := range cs {
				_, statErr := os.Stat(s.OutputPath(c.ID, "stdout"))
				if c.Pruned != pruned[c.ID] || (statErr == nil) == pruned[c.ID] {
					t.Errorf("%s: pruned %v, output file %v", c.ID, c.Pruned, statErr)
				}
				if c.ID == "cmd-000006" && c.Status != api.CommandRunning {
					t.Errorf("the running command: %+v", c)
				}
			}
			// The journal was compacted to one line per command.
			if n := strings.Count(readFile(t, filepath.Join(s.Dir(), journalName)), "\n"); n != 6 {
				t.Errorf("journal has %d lines after prune, want 6", n)
			}
			again, err := s.Prune(tc.opts(s))
			if err != nil || (len(again.Pruned) != 0 && tc.name != "down to a size") {
				t.Errorf("second prune: %+v %v", again, err)
			}
		})
	}
}

// TestLostRunner: a running command whose runner is gone is reported and
// recorded lost with its output so far; the liveness check is injected.
func TestLostRunner(t *testing.T) {
	cases := []struct {
		name     string
		detached bool
		wantMsg  string
	}{
		{name: "foreground caller died", wantMsg: "host process (pid 111) that ran it in the foreground is gone"},
		{name: "supervisor died", detached: true, wantMsg: "supervisor (pid 222) that ran it is gone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			alive := map[int]bool{111: true, 222: true}
			fake := func(r Runner) bool { mu.Lock(); defer mu.Unlock(); return alive[r.PID] }
			dir := t.TempDir()
			s := Open(dir, Options{Alive: fake})
			r, err := s.Begin(api.Command{Argv: []string{"make"}, Detached: tc.detached}, Runner{PID: 111, Start: 7})
			if err != nil {
				t.Fatal(err)
			}
			if tc.detached {
				r.Close()
				if r, err = s.Attach(*r.Cmd); err != nil {
					t.Fatal(err)
				}
				if err := r.Running(Runner{PID: 222, Start: 9}); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				alive[111] = false // the CLI that started it exits
				mu.Unlock()
			}
			r.Stdout.Write([]byte("partial out"))
			r.Stderr.Write([]byte("e"))
			if c, err := s.Get(r.ID()); err != nil || c.Status != api.CommandRunning {
				t.Fatalf("with its runner alive: %+v %v", c, err)
			}
			mu.Lock()
			alive[111], alive[222] = false, false
			mu.Unlock()
			for _, read := range []func() (*api.Command, error){
				func() (*api.Command, error) { return s.Get(r.ID()) },
				func() (*api.Command, error) { cs, err := s.List(1); return &cs[0], err },
				// Recorded: a reader that believes every pid alive sees it lost too.
				func() (*api.Command, error) {
					return Open(dir, Options{Alive: func(Runner) bool { return true }}).Get(r.ID())
				},
			} {
				c, err := read()
				if err != nil {
					t.Fatal(err)
				}
				if c.Status != api.CommandLost || c.Reason != api.ReasonLost || c.ExitCode != nil || !strings.Contains(c.Message, tc.wantMsg) {
					t.Errorf("lost command: %+v", c)
				}
				if c.StdoutBytes != 11 || c.StderrBytes != 1 {
					t.Errorf("output so far: %d/%d bytes", c.StdoutBytes, c.StderrBytes)
				}
			}
			if got := readFile(t, s.OutputPath(r.ID(), "stdout")); got != "partial out" {
				t.Errorf("output kept: %q", got)
			}
		})
	}
}

// TestLegacyLog: a log written by an older version (free-text reasons, a
// plain seq counter, no index) reads in the fixed reason set.
func TestLegacyLog(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, journalName), []byte(`{"id":"cmd-000001","started_at":"2026-01-01T00:00:00Z","status":"running","host_pid":1}
{"id":"cmd-000001","started_at":"2026-01-01T00:00:00Z","status":"lost","reason":"lost: read unix: connection reset"}
{"id":"cmd-000002","started_at":"2026-01-01T00:00:00Z","status":"lost","reason":"did not start: no supervisor","detached":true}
{"id":"cmd-000003","started_at":"2026-01-01T00:00:00Z","status":"lost"}
`), 0o600)
	os.WriteFile(filepath.Join(dir, seqName), []byte("7"), 0o600)
	s := Open(dir, Options{})
	cs, err := s.List(0)
	if err != nil || len(cs) != 3 {
		t.Fatalf("%+v %v", cs, err)
	}
	want := []struct{ reason, msg string }{{api.ReasonLost, "read unix: connection reset"}, {api.ReasonStartFailed, "no supervisor"}, {api.ReasonLost, ""}}
	for i, w := range want {
		if cs[i].Reason != w.reason || cs[i].Message != w.msg {
			t.Errorf("%s: reason %q message %q, want %q %q", cs[i].ID, cs[i].Reason, cs[i].Message, w.reason, w.msg)
		}
	}
	if id := finish(t, s, "", ""); id != "cmd-000008" {
		t.Errorf("after a seq of 7: %s", id)
	}
}

// TestConcurrentWriters: writers in parallel (each its own Store, as
// separate processes have) get distinct ids and every entry is kept.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	got := make(chan string, 80)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := Open(dir, Options{})
			for i := 0; i < 10; i++ {
				got <- finish(t, s, "o", "e")
			}
		}()
	}
	wg.Wait()
	close(got)
	seen := map[string]bool{}
	for id := range got {
		if seen[id] {
			t.Fatalf("id %s given twice", id)
		}
		seen[id] = true
	}
	cs, err := Open(dir, Options{}).List(0)
	if err != nil || len(cs) != 80 {
		t.Fatalf("%d entries, %v", len(cs), err)
	}
	for _, c := range cs {
		if c.Status != api.CommandFinished || c.StdoutBytes != 1 {
			t.Errorf("%+v", c)
		}
	}
}

func TestProcessAlive(t *testing.T) {
	self := Self()
	if self.Start == 0 || self.BootID == "" {
		t.Fatalf("Self: %+v", self)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := Runner{PID: cmd.Process.Pid}
	cases := []struct {
		name string
		r    Runner
		want bool
	}{
		{"self", self, true},
		{"self by pid only", Runner{PID: self.PID}, true},
		{"pid reused (other start time)", Runner{PID: self.PID, Start: self.Start + 1, BootID: self.BootID}, false},
		{"other boot", Runner{PID: self.PID, Start: self.Start, BootID: "00000000-0000-0000-0000-000000000000"}, false},
		{"exited child", dead, false},
		{"no pid", Runner{}, false},
	}
	for _, tc := range cases {
		if got := ProcessAlive(tc.r); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
