package cmdlog

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// PruneOptions select the commands whose output Prune removes: finished
// (or lost) commands, oldest first; a running command is never pruned.
type PruneOptions struct {
	// KeepLast keeps the output of the last N commands.
	KeepLast int
	// OlderThan prunes only commands started longer ago than this.
	OlderThan time.Duration
	// MaxBytes stops pruning once the whole log takes at most this many
	// bytes (0: prune every command selected).
	MaxBytes int64
}

// PruneResult says what Prune removed.
type PruneResult struct {
	// Pruned are the ids whose output was removed, oldest first.
	Pruned []string `json:"pruned"`
	// FreedBytes is the output removed.
	FreedBytes int64 `json:"freed_bytes"`
	// LogBytes is what the log takes on the host afterwards.
	LogBytes int64 `json:"log_bytes"`
	// QuotaBytes is the log's quota.
	QuotaBytes int64 `json:"quota_bytes"`
}

// Prune removes the output of the selected commands; their entries stay,
// marked pruned. The journal is then rewritten with only the newest line
// of each command.
func (s *Store) Prune(o PruneOptions) (*PruneResult, error) {
	if o.KeepLast < 0 || o.OlderThan < 0 || o.MaxBytes < 0 {
		return nil, fmt.Errorf("prune: keep-last, older-than and max-bytes must not be negative: %w", errdefs.ErrInvalidArgument)
	}
	if _, err := os.Stat(s.path(journalName)); errors.Is(err, os.ErrNotExist) {
		used, err := s.Usage()
		return &PruneResult{Pruned: []string{}, LogBytes: used, QuotaBytes: s.o.Quota}, err
	}
	var res *PruneResult
	err := s.withLock(func() error {
		x, err := s.syncLocked()
		if err != nil {
			return err
		}
		defer x.Close()
		res, err = s.pruneLocked(x, o, "")
		if err == nil {
			s.writeTally(res.LogBytes)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prune the command log: %w", err)
	}
	return res, nil
}

// checkQuotaLocked adds the bytes a command added to the log's usage
// tally and, when the log may be over its quota, measures it and prunes
// the oldest outputs (never id's) until it fits. The tally is derived: a
// missing or damaged one, and every 256th command, measure the directory
// again. A failure is logged, not returned: the command that triggered the
// check is already recorded.
func (s *Store) checkQuotaLocked(x *index, id string, added int64) {
	n, _ := parseID(id)
	if tally, ok := s.readTally(); ok && n%256 != 0 {
		if tally += added; tally <= s.o.Quota {
			s.writeTally(tally)
			return
		}
	}
	used, err := s.Usage()
	if err != nil {
		slog.Warn("command log: measure its size", "dir", s.dir, "err", err)
		return
	}
	if used > s.o.Quota {
		res, err := s.pruneLocked(x, PruneOptions{MaxBytes: s.o.Quota}, id)
		if err != nil {
			slog.Warn("command log over its quota and pruning failed", "dir", s.dir, "err", err)
			os.Remove(s.path(tallyName))
			return
		}
		used = res.LogBytes
	}
	s.writeTally(used)
}

func (s *Store) readTally() (int64, bool) {
	b, err := os.ReadFile(s.path(tallyName))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil && n >= 0
}

func (s *Store) writeTally(n int64) {
	os.WriteFile(s.path(tallyName), []byte(strconv.FormatInt(n, 10)+"\n"), 0o600)
}

func (s *Store) pruneLocked(x *index, o PruneOptions, exclude string) (*PruneResult, error) {
	j, err := os.Open(s.path(journalName))
	if err != nil {
		return nil, err
	}
	es, err := scan(x, j, 0)
	j.Close()
	if err != nil {
		return nil, err
	}
	if s.anyGone(es) {
		if err := s.reconcileLocked(x, es); err != nil {
			return nil, err
		}
	}
	used, err := s.Usage()
	if err != nil {
		return nil, err
	}
	res := &PruneResult{Pruned: []string{}, QuotaBytes: s.o.Quota}
	cutoff := s.o.Now().Add(-o.OlderThan)
	changed := false
	for i, e := range es {
		if o.MaxBytes > 0 && used <= o.MaxBytes {
			break
		}
		size := s.outputSize(e.ID)
		if e.Pruned {
			if size > 0 { // a prune that stopped between record and removal
				s.removeOutputs(e.ID)
				used -= size
			}
			continue
		}
		if e.Status == api.CommandRunning || e.ID == exclude || i >= len(es)-o.KeepLast ||
			(o.OlderThan > 0 && !e.StartedAt.Before(cutoff)) {
			continue
		}
		e.Pruned = true
		if err := s.appendLocked(x, e); err != nil {
			return nil, err
		}
		s.removeOutputs(e.ID)
		used -= size
		res.Pruned = append(res.Pruned, e.ID)
		res.FreedBytes += size
		changed = true
	}
	if changed {
		if err := s.compactLocked(x, es); err != nil {
			return nil, err
		}
	}
	res.LogBytes, err = s.Usage()
	return res, err
}

func (s *Store) outputSize(id string) int64 {
	var n int64
	for _, stream := range []string{"stdout", "stderr"} {
		if st, err := os.Stat(s.OutputPath(id, stream)); err == nil {
			n += st.Size()
		}
	}
	return n
}

func (s *Store) removeOutputs(id string) {
	for _, stream := range []string{"stdout", "stderr"} {
		os.Remove(s.OutputPath(id, stream))
	}
}

// compactLocked rewrites the journal with one line per command (es, the
// newest entries) and indexes it anew. Each file is replaced whole; a
// reader that opened the old journal finds the index stale and retries
// under the lock.
func (s *Store) compactLocked(x *index, es []*entry) error {
	tmp := s.path(journalName + ".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, e := range es {
		b, err := marshalEntry(e)
		if err == nil {
			w.Write(b)
			err = w.WriteByte('\n')
		}
		if err != nil {
			f.Close()
			os.Remove(tmp)
			return err
		}
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path(journalName))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return s.rebuildLocked(x)
}
