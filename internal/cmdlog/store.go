// Package cmdlog is a workspace's command log: every exec with its full
// output (up to a cap), kept on the host in the workspace's logs/ directory
// and surviving restarts.
//
// A log directory holds:
//
//	commands.jsonl      the journal: one JSON line per state change of a
//	                    command (append only; the newest line of an id wins)
//	commands.idx        an index of the newest line of each id (see index.go)
//	cmd-NNNNNN.stdout   each command's output, at most the output cap
//	cmd-NNNNNN.stderr   per stream
//	seq                 the last id allocated, replaced atomically (temporary
//	                    file, fsync, rename)
//	usage               a running tally of the bytes the log takes, to check
//	                    the quota without a stat of every file
//	lock                flock held by every writer
//
// Ids are never reused: a new id is one past the highest of seq and the
// journal, and its output files are created exclusively, so neither a
// damaged seq, nor a journal that lost its tail, nor a damaged index can
// make a later command take an earlier one's id or overwrite its output.
//
// Writers are the CLI or SDK process running a foreground command and the
// workspace's supervisor running a detached one; readers need no lock
// unless the index is behind the journal.
package cmdlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// Defaults of Options.
const (
	// DefaultOutputCap is how much of each stream of one command is kept.
	DefaultOutputCap = 64 << 20
	// DefaultQuota bounds a workspace's whole log on the host.
	DefaultQuota = 1 << 30
)

const (
	journalName = "commands.jsonl"
	indexName   = "commands.idx"
	lockName    = "lock"
	seqName     = "seq"
	tallyName   = "usage"
	idPrefix    = "cmd-"
	lockTimeout = 30 * time.Second
)

// Options configure a Store.
type Options struct {
	// OutputCap is the most bytes of each stream (stdout, stderr) of one
	// command kept on the host (default DefaultOutputCap, at most half the
	// quota). Bytes past it are counted, not kept, and the command's record
	// says how many were dropped.
	OutputCap int64
	// Quota bounds the log's disk use (default DefaultQuota). When a
	// command begins or ends past it, the outputs of the oldest finished
	// commands are pruned until the log fits; their entries stay, marked
	// pruned.
	Quota int64
	// Alive reports whether the process that runs a command still lives
	// (default ProcessAlive). A running command whose runner is gone is
	// reported, and recorded, as lost.
	Alive AliveFunc
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store is one workspace's command log.
type Store struct {
	dir string
	o   Options
}

// Open returns the log in dir; nothing is read or created until used.
func Open(dir string, o Options) *Store {
	if o.Quota <= 0 {
		o.Quota = DefaultQuota
	}
	if o.OutputCap <= 0 {
		o.OutputCap = DefaultOutputCap
	}
	o.OutputCap = min(o.OutputCap, o.Quota/2)
	if o.Alive == nil {
		o.Alive = ProcessAlive
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{dir: dir, o: o}
}

// Dir returns the log directory.
func (s *Store) Dir() string { return s.dir }

// OutputCap returns the per-stream cap in effect.
func (s *Store) OutputCap() int64 { return s.o.OutputCap }

// Quota returns the log quota in effect.
func (s *Store) Quota() int64 { return s.o.Quota }

func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

// OutputPath is where a command's stream ("stdout", "stderr") is kept.
func (s *Store) OutputPath(id, stream string) string { return s.path(id + "." + stream) }

// entry is a journal line: the public record plus the runner's identity,
// which guards the pid in HostPID against reuse.
type entry struct {
	api.Command
	RunnerStart uint64 `json:"host_pid_start,omitempty"`
	RunnerBoot  string `json:"host_boot_id,omitempty"`
}

func (e *entry) runner() Runner {
	return Runner{PID: e.HostPID, Start: e.RunnerStart, BootID: e.RunnerBoot}
}

// normalize maps the free-text reasons older versions wrote onto the
// fixed set, moving the text to Message.
func (e *entry) normalize() {
	for prefix, reason := range map[string]string{"lost: ": api.ReasonLost, "did not start: ": api.ReasonStartFailed} {
		if rest, ok := strings.CutPrefix(e.Reason, prefix); ok {
			e.Reason = reason
			if e.Message == "" {
				e.Message = rest
			}
		}
	}
	if e.Status == api.CommandLost && e.Reason == "" {
		e.Reason = api.ReasonLost
	}
}

// FormatID returns the id of command number n.
func FormatID(n int64) string { return fmt.Sprintf("%s%06d", idPrefix, n) }

// parseID accepts exactly the ids FormatID makes.
func parseID(id string) (int64, bool) {
	digits, ok := strings.CutPrefix(id, idPrefix)
	if !ok || len(digits) < 6 {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 || FormatID(n) != id {
		return 0, false
	}
	return n, true
}

// ValidID reports whether id is a well-formed command id.
func ValidID(id string) bool { _, ok := parseID(id); return ok }

// procLocks queue the callers of one process in front of a log's flock:
// a process serving many calls at once (hearth serve, an SDK user) would
// otherwise have them all poll the flock, and polling is not fair: under
// load (measured: 100 concurrent execs in each of 20 workspaces) some
// callers lost every round for the whole lockTimeout and failed with
// conflict although each holder kept the lock only briefly. A sync.Mutex
// hands the lock over in order once it is contended, so only one caller
// of a process at a time polls the flock, and the timeout then measures
// what it says: another process holding the lock.
var procLocks sync.Map // lock path -> *sync.Mutex

// withLock runs fn holding the log's writer lock.
func (s *Store) withLock(fn func() error) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("command log: %w", err)
	}
	mu, _ := procLocks.LoadOrStore(s.path(lockName), new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	f, err := os.OpenFile(s.path(lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("command log: %w", err)
	}
	defer f.Close()
	deadline := time.Now().Add(lockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("command log lock: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("another process has held the command log lock %s for %s: %w", s.path(lockName), lockTimeout, errdefs.ErrConflict)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// syncLocked returns the index brought up to the journal's end: a partial
// last line (a writer killed mid-line) is terminated so that it is
// skipped, and an index that does not match the journal is rebuilt. The
// caller holds the lock and closes the index.
func (s *Store) syncLocked() (*index, error) {
	if err := s.terminateJournal(); err != nil {
		return nil, err
	}
	x, err := openIndex(s.path(indexName), true)
	if err != nil {
		return nil, err
	}
	err = x.catchUp(s.path(journalName))
	if errors.Is(err, errStale) {
		err = s.rebuildLocked(x)
	}
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("command log index: %w", err)
	}
	return x, nil
}

func (s *Store) terminateJournal() error {
	f, err := os.OpenFile(s.path(journalName), os.O_RDWR|os.O_APPEND, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], st.Size()-1); err != nil {
		return err
	}
	if last[0] != '\n' {
		_, err = f.Write([]byte{'\n'})
	}
	return err
}

// appendLocked writes e as the newest line of its id and indexes it. The
// caller holds the lock and x is synced.
func (s *Store) appendLocked(x *index, e *entry) error {
	n, ok := parseID(e.ID)
	if !ok {
		return fmt.Errorf("command log: bad id %q", e.ID)
	}
	f, err := os.OpenFile(s.path(journalName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	body, err := marshalEntry(e)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(body, '\n')); err != nil {
		return fmt.Errorf("command log: %w", err)
	}
	off := st.Size()
	if err := x.setSlot(n, slotFor(off, body)); err != nil {
		return err
	}
	return x.setCovered(off + int64(len(body)) + 1)
}

// readView runs fn over the index and the journal. Without the lock when
// the index is current; otherwise, or when fn finds the index stale, under
// the lock with the index synced (rebuilt if need be). j and x are nil when
// there is no journal yet.
func (s *Store) readView(fn func(x *index, j *os.File) error) error {
	err := s.readUnlocked(fn)
	if !errors.Is(err, errStale) {
		return err
	}
	return s.withLock(func() error {
		for attempt := 0; ; attempt++ {
			x, err := s.syncLocked()
			if err != nil {
				return err
			}
			if attempt > 0 {
				err = s.rebuildLocked(x)
			}
			if err == nil {
				err = s.withJournal(x, fn)
			}
			x.Close()
			if !errors.Is(err, errStale) {
				return err
			}
			if attempt > 0 {
				return fmt.Errorf("command log %s is damaged: %w: %w", s.dir, err, errdefs.ErrInternal)
			}
		}
	})
}

func (s *Store) readUnlocked(fn func(x *index, j *os.File) error) error {
	// The journal is opened first and the index must account for exactly
	// its length: a prune that replaces both meanwhile shows as stale.
	j, err := os.Open(s.path(journalName))
	if errors.Is(err, os.ErrNotExist) {
		return fn(nil, nil)
	}
	if err != nil {
		return err
	}
	defer j.Close()
	st, err := j.Stat()
	if err != nil {
		return err
	}
	x, err := openIndex(s.path(indexName), false)
	if errors.Is(err, os.ErrNotExist) {
		return errStale
	}
	if err != nil {
		return err
	}
	defer x.Close()
	cov, err := x.covered()
	if err != nil {
		return err
	}
	if cov != st.Size() {
		return errStale
	}
	return fn(x, j)
}

func (s *Store) withJournal(x *index, fn func(x *index, j *os.File) error) error {
	j, err := os.Open(s.path(journalName))
	if errors.Is(err, os.ErrNotExist) {
		return fn(nil, nil)
	}
	if err != nil {
		return err
	}
	defer j.Close()
	return fn(x, j)
}

// lookup returns the newest entry of id, or nil.
func (s *Store) lookup(id string) (*entry, error) {
	n, ok := parseID(id)
	if !ok {
		return nil, nil
	}
	var e *entry
	err := s.readView(func(x *index, j *os.File) error {
		e = nil
		if x == nil {
			return nil
		}
		sl, err := x.slot(n)
		if err != nil {
			return err
		}
		e, err = readLine(j, sl, n)
		return err
	})
	return e, err
}

// entries returns the newest entry of each command, oldest first; with
// tail > 0 only the last tail commands.
func (s *Store) entries(tail int) ([]*entry, error) {
	var out []*entry
	err := s.readView(func(x *index, j *os.File) error {
		var err error
		out, err = scan(x, j, tail)
		return err
	})
	return out, err
}

// scan reads the newest entry of each command from the index, oldest
// first; with tail > 0 only the last tail commands.
func scan(x *index, j *os.File, tail int) ([]*entry, error) {
	var out []*entry
	if x == nil {
		return nil, nil
	}
	top, err := x.maxID()
	if err != nil {
		return nil, err
	}
	for n := top; n > 0 && (tail <= 0 || len(out) < tail); n-- {
		sl, err := x.slot(n)
		if err != nil {
			return nil, err
		}
		e, err := readLine(j, sl, n)
		if err != nil {
			return nil, err
		}
		if e != nil {
			out = append(out, e)
		}
	}
	for i, k := 0, len(out)-1; i < k; i, k = i+1, k-1 {
		out[i], out[k] = out[k], out[i]
	}
	return out, nil
}

// Get returns one command, reconciled: a running command whose runner is
// gone is recorded as lost. It is not_found when the log has no such id.
func (s *Store) Get(id string) (*api.Command, error) {
	e, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, fmt.Errorf("no command %q in the command log: %w", id, errdefs.ErrNotFound)
	}
	if err := s.reconcile([]*entry{e}); err != nil {
		return nil, err
	}
	return &e.Command, nil
}

// List returns the commands, oldest first (with tail > 0 the last tail),
// reconciled like Get.
func (s *Store) List(tail int) ([]api.Command, error) {
	es, err := s.entries(tail)
	if err != nil {
		return nil, err
	}
	if err := s.reconcile(es); err != nil {
		return nil, err
	}
	out := make([]api.Command, len(es))
	for i, e := range es {
		out[i] = e.Command
	}
	return out, nil
}

// reconcile normalizes entries and records as lost the running ones whose
// runner is gone, with the output their runner wrote before it went.
func (s *Store) reconcile(es []*entry) error {
	if !s.anyGone(es) {
		return nil
	}
	return s.withLock(func() error {
		x, err := s.syncLocked()
		if err != nil {
			return err
		}
		defer x.Close()
		return s.reconcileLocked(x, es)
	})
}

func (s *Store) anyGone(es []*entry) bool {
	gone := false
	for _, e := range es {
		e.normalize()
		if e.Status == api.CommandRunning && e.HostPID > 0 && !s.o.Alive(e.runner()) {
			gone = true
		}
	}
	return gone
}

// reconcileLocked is reconcile under the lock: each entry is read again,
// and recorded lost only if it still runs under the same dead runner.
func (s *Store) reconcileLocked(x *index, es []*entry) error {
	j, err := os.Open(s.path(journalName))
	if err != nil {
		return err
	}
	defer j.Close()
	for _, e := range es {
		if e.Status != api.CommandRunning || e.HostPID <= 0 || s.o.Alive(e.runner()) {
			continue
		}
		n, _ := parseID(e.ID)
		sl, err := x.slot(n)
		if err != nil {
			return err
		}
		cur, err := readLine(j, sl, n)
		if err != nil {
			return err
		}
		if cur == nil {
			continue
		}
		cur.normalize()
		if cur.Status == api.CommandRunning && cur.runner() == e.runner() {
			s.markLost(cur)
			if err := s.appendLocked(x, cur); err != nil {
				return err
			}
		}
		*e = *cur // recorded lost now, or its end was recorded meanwhile
	}
	return nil
}

// markLost turns a running entry whose runner died into a lost one. Its
// output files say how much it wrote and, by their last change, about
// when it ended.
func (s *Store) markLost(e *entry) {
	e.Status, e.Reason = api.CommandLost, api.ReasonLost
	who := fmt.Sprintf("the host process (pid %d) that ran it in the foreground", e.HostPID)
	if e.Detached {
		who = fmt.Sprintf("the workspace's supervisor (pid %d) that ran it", e.HostPID)
	}
	e.Message = who + " is gone (killed, or the host restarted); the output it logged until then is kept"
	end := e.StartedAt
	for _, p := range []struct {
		stream string
		n      *int64
	}{{"stdout", &e.StdoutBytes}, {"stderr", &e.StderrBytes}} {
		if st, err := os.Stat(s.OutputPath(e.ID, p.stream)); err == nil {
			*p.n = st.Size()
			if st.ModTime().After(end) {
				end = st.ModTime()
			}
		}
	}
	e.DurationMS = end.Sub(e.StartedAt).Milliseconds()
}

// OpenOutput opens a command's kept stream ("stdout" or "stderr").
func (s *Store) OpenOutput(id, stream string) (*os.File, *api.Command, error) {
	if stream != "stdout" && stream != "stderr" {
		return nil, nil, fmt.Errorf("stream %q: want stdout or stderr: %w", stream, errdefs.ErrInvalidArgument)
	}
	c, err := s.Get(id)
	if err != nil {
		return nil, nil, err
	}
	if c.Pruned {
		return nil, c, fmt.Errorf("the output of %s was pruned from the command log (its entry is kept): %w", id, errdefs.ErrNotFound)
	}
	f, err := os.Open(s.OutputPath(id, stream))
	if err != nil {
		return nil, c, fmt.Errorf("output of %s: %w", id, err)
	}
	return f, c, nil
}

// Usage returns the bytes the log directory holds.
func (s *Store) Usage() (int64, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n int64
	for _, d := range ents {
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n, nil
}

// seq reads the sequence file (0 if missing or damaged).
func (s *Store) seq() int64 {
	b, _ := os.ReadFile(s.path(seqName))
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// Begin records a new command as running under runner r: it allocates the
// id, creates the output files and appends the entry. Fields of c other
// than the command itself (argv, shell, cwd, detached) are set here.
func (s *Store) Begin(c api.Command, r Runner) (*Run, error) {
	var run *Run
	err := s.withLock(func() error {
		x, err := s.syncLocked()
		if err != nil {
			return err
		}
		defer x.Close()
		top, err := x.maxID()
		if err != nil {
			return err
		}
		n := max(top, s.seq()) + 1
		var outF, errF *os.File
		for tries := 0; ; tries, n = tries+1, n+1 {
			if tries == 1000 {
				return fmt.Errorf("command log %s: 1000 ids in a row already have output files: %w", s.dir, errdefs.ErrInternal)
			}
			outF, errF, err = s.createOutputs(FormatID(n))
			if errors.Is(err, os.ErrExist) {
				continue
			}
			if err != nil {
				return err
			}
			break
		}
		id := FormatID(n)
		if err := atomicfile.Write(s.path(seqName), []byte(strconv.FormatInt(n, 10)+"\n"), 0o600); err != nil {
			outF.Close()
			errF.Close()
			os.Remove(s.OutputPath(id, "stdout"))
			os.Remove(s.OutputPath(id, "stderr"))
			return err
		}
		c.ID, c.Status, c.StartedAt, c.HostPID = id, api.CommandRunning, s.o.Now().UTC(), r.PID
		c.ExitCode, c.Reason, c.Message, c.Signal = nil, "", "", ""
		e := &entry{Command: c, RunnerStart: r.Start, RunnerBoot: r.BootID}
		if err := s.appendLocked(x, e); err != nil {
			outF.Close()
			errF.Close()
			os.Remove(s.OutputPath(id, "stdout"))
			os.Remove(s.OutputPath(id, "stderr"))
			return err
		}
		run = s.newRun(e, outF, errF, 0, 0)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("command log: %w", err)
	}
	return run, nil
}

// createOutputs creates both output files of id exclusively; os.ErrExist
// when either exists (then neither is left created by this call).
func (s *Store) createOutputs(id string) (*os.File, *os.File, error) {
	create := func(stream string) (*os.File, error) {
		return os.OpenFile(s.OutputPath(id, stream), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	}
	outF, err := create("stdout")
	if err != nil {
		return nil, nil, err
	}
	errF, err := create("stderr")
	if err != nil {
		outF.Close()
		os.Remove(s.OutputPath(id, "stdout"))
		return nil, nil, err
	}
	return outF, errF, nil
}

// Attach opens the output of a begun command for the process that runs it
// from now on (a workspace's supervisor, for a detached command). Output
// is appended, never truncated. Call Running once the command started.
func (s *Store) Attach(c api.Command) (*Run, error) {
	if !ValidID(c.ID) {
		return nil, fmt.Errorf("command id %q: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	open := func(stream string) (*os.File, int64, error) {
		f, err := os.OpenFile(s.OutputPath(c.ID, stream), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, 0, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, st.Size(), nil
	}
	outF, outN, err := open("stdout")
	if err != nil {
		return nil, fmt.Errorf("command log: %w", err)
	}
	errF, errN, err := open("stderr")
	if err != nil {
		outF.Close()
		return nil, fmt.Errorf("command log: %w", err)
	}
	return s.newRun(&entry{Command: c}, outF, errF, outN, errN), nil
}

func (s *Store) newRun(e *entry, outF, errF *os.File, outN, errN int64) *Run {
	return &Run{s: s, e: e, Cmd: &e.Command,
		Stdout: &Output{f: outF, base: outN, room: s.o.OutputCap - outN},
		Stderr: &Output{f: errF, base: errN, room: s.o.OutputCap - errN}}
}

// Run is a command being run and logged. Set Cmd's outcome fields, then
// call End.
type Run struct {
	s   *Store
	e   *entry
	Cmd *api.Command
	// Stdout and Stderr keep the command's output up to the cap.
	Stdout, Stderr *Output
}

// ID returns the command's id.
func (r *Run) ID() string { return r.Cmd.ID }

// Close closes the output files without recording anything (the command
// is handed to another runner).
func (r *Run) Close() {
	r.Stdout.close()
	r.Stderr.close()
}

// Running records that runner rn now runs the command.
func (r *Run) Running(rn Runner) error {
	r.Cmd.Status, r.Cmd.HostPID = api.CommandRunning, rn.PID
	r.e.RunnerStart, r.e.RunnerBoot = rn.Start, rn.BootID
	return r.s.append(r.e)
}

// End closes the output and records the command's outcome as set in Cmd,
// with the byte counts of its output: StdoutBytes is all the command
// wrote, StdoutDroppedBytes what the cap kept off the host.
func (r *Run) End() error {
	r.Close()
	c := r.Cmd
	c.StdoutBytes, c.StdoutDroppedBytes = r.Stdout.base+r.Stdout.Total(), r.Stdout.Dropped()
	c.StderrBytes, c.StderrDroppedBytes = r.Stderr.base+r.Stderr.Total(), r.Stderr.Dropped()
	if c.Message == "" {
		for _, o := range []*Output{r.Stdout, r.Stderr} {
			if err := o.Err(); err != nil {
				c.Message = "output not fully kept on the host: " + err.Error()
				break
			}
		}
	}
	r.e.RunnerStart, r.e.RunnerBoot = 0, ""
	return r.s.withLock(func() error {
		x, err := r.s.syncLocked()
		if err != nil {
			return err
		}
		defer x.Close()
		st, err := os.Stat(r.s.path(journalName))
		if err != nil {
			return err
		}
		before := st.Size()
		if err := r.s.appendLocked(x, r.e); err != nil {
			return err
		}
		// What this command added: its kept output, and its journal lines
		// (about twice the last one).
		added := r.Stdout.base + r.Stdout.written + r.Stderr.base + r.Stderr.written
		if st, err := os.Stat(r.s.path(journalName)); err == nil {
			added += 2 * (st.Size() - before)
		}
		r.s.checkQuotaLocked(x, c.ID, added)
		return nil
	})
}

func (s *Store) append(e *entry) error {
	return s.withLock(func() error {
		x, err := s.syncLocked()
		if err != nil {
			return err
		}
		defer x.Close()
		return s.appendLocked(x, e)
	})
}

// Output is one stream of a command: it keeps the bytes up to the cap in
// the log and counts all of them. It never fails a write, so a full host
// disk or the cap never stops the command; the loss is recorded instead.
type Output struct {
	mu      sync.Mutex
	f       *os.File
	base    int64 // bytes the file held when opened
	room    int64 // bytes that may still go to the file
	total   int64 // bytes the command wrote
	written int64 // of which kept
	err     error
}

var _ io.Writer = (*Output)(nil)

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.total += int64(len(p))
	if o.f != nil && o.err == nil && o.room > 0 {
		n, err := o.f.Write(p[:min(int64(len(p)), o.room)])
		o.written += int64(n)
		o.room -= int64(n)
		o.err = err
	}
	return len(p), nil
}

// Total returns the bytes written to the stream.
func (o *Output) Total() int64 { o.mu.Lock(); defer o.mu.Unlock(); return o.total }

// Dropped returns the bytes written but not kept.
func (o *Output) Dropped() int64 { o.mu.Lock(); defer o.mu.Unlock(); return o.total - o.written }

// Err returns the error that stopped keeping the output, if any.
func (o *Output) Err() error { o.mu.Lock(); defer o.mu.Unlock(); return o.err }

func (o *Output) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f != nil {
		o.f.Close()
		o.f = nil
	}
}

func marshalEntry(e *entry) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("command log: %w", err)
	}
	return b, nil
}

func slotFor(off int64, body []byte) slot {
	return slot{off: off, n: uint32(len(body)), crc: crc32.ChecksumIEEE(body)}
}

// rebuildLocked indexes the whole journal again into a new file that
// replaces the index at once, so that a reader without the lock sees the
// old index or the new one, never one half built; x then uses the new one.
func (s *Store) rebuildLocked(x *index) error {
	tmp := s.path(indexName + ".tmp")
	nx, err := openIndex(tmp, true)
	if err != nil {
		return err
	}
	err = nx.rebuild(s.path(journalName))
	if err == nil {
		err = os.Rename(tmp, s.path(indexName))
	}
	if err != nil {
		nx.Close()
		os.Remove(tmp)
		return err
	}
	x.f.Close()
	x.f = nx.f
	return nil
}
