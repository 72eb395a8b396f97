package baseline

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pstate/pstate/internal/workload"
)

// Options tune an engine. The zero value works.
type Options struct {
	// NoSync skips the fsync of log records (to fill a log fast in tests);
	// snapshots and truncations are synced regardless.
	NoSync bool
	// Clock stamps events that come without a time (default: time.Now in
	// UTC, which survives the JSON of the log unchanged).
	Clock func() time.Time
	// OnTruncateLock reports how long a truncation held the log lock.
	OnTruncateLock func(d time.Duration)
	// OnCloneLock reports how long a checkpoint held both locks.
	OnCloneLock func(d time.Duration)
}

// Result is the outcome of one event of a batch.
type Result struct {
	Seq       uint64
	Duplicate bool
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("baseline: closed")

const (
	logName      = "log"
	snapshotName = "snapshot.gob"
)

// Engine is the baseline engine. Its methods are safe for concurrent use.
type Engine struct {
	opts Options
	dir  string

	mu     sync.Mutex // the state lock; taken before log.mu
	st     *state
	closed bool

	log *wlog

	ckMu sync.Mutex // one checkpoint or truncation at a time
}

// Open loads dir's snapshot, replays the log after it and returns the
// engine.
func Open(dir string, opts Options) (*Engine, error) {
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return time.Now().UTC() }
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create dir: %w", err)
	}
	st, err := readSnapshot(filepath.Join(dir, snapshotName))
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, logName)
	l, err := openLog(logPath, !opts.NoSync, func(seq uint64, payload []byte) error {
		return replay(st, logPath, seq, payload)
	})
	if err != nil {
		return nil, err
	}
	return &Engine{opts: opts, dir: dir, st: st, log: l}, nil
}

// replay applies one record if the snapshot does not already hold it.
func replay(st *state, file string, seq uint64, payload []byte) error {
	if seq <= st.Seq {
		return nil
	}
	if seq != st.Seq+1 {
		return &CorruptionError{File: file, Kind: fmt.Sprintf("record seq %d after %d", seq, st.Seq)}
	}
	var evs []workload.Event
	if err := json.Unmarshal(payload, &evs); err != nil {
		return &CorruptionError{File: file, Kind: "undecodable record", Err: err}
	}
	t := newTxn(st)
	for i := range evs {
		if _, _, err := t.apply(&evs[i]); err != nil {
			return &CorruptionError{File: file, Kind: "record does not apply", Err: err}
		}
	}
	t.commit()
	return nil
}

// Submit validates and applies a batch atomically, logs it as one record
// and returns once that record is fsynced. On a refusal nothing changes.
func (e *Engine) Submit(events []workload.Event) ([]Result, error) {
	now := e.opts.Clock()
	evs := make([]workload.Event, len(events))
	for i, ev := range events {
		if ev.Time.IsZero() {
			ev.Time = now
		}
		evs[i] = ev
	}
	payload, err := json.Marshal(evs)
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	res, first, err := e.applyLocked(evs)
	if err != nil || first == 0 {
		e.mu.Unlock()
		return res, err
	}

	// Hand the state lock over to the log lock, so records reach the log
	// in seq order; the fsync is paid under the log lock alone.
	e.log.mu.Lock()
	e.mu.Unlock()
	err = e.log.writeLocked(appendRecord(nil, first, payload))
	e.log.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return res, nil
}

// applyLocked applies evs; first is the seq of the first new event, 0 when
// every event was a duplicate. The caller holds e.mu.
func (e *Engine) applyLocked(evs []workload.Event) (res []Result, first uint64, err error) {
	t := newTxn(e.st)
	res = make([]Result, len(evs))
	for i := range evs {
		seq, dup, err := t.apply(&evs[i])
		if err != nil {
			t.rollback()
			return nil, 0, fmt.Errorf("event %d: %w", i, err)
		}
		res[i] = Result{Seq: seq, Duplicate: dup}
		if !dup && first == 0 {
			first = seq
		}
	}
	t.commit()
	return res, first, nil
}

// Job returns a copy of a job, read under the state lock.
func (e *Engine) Job(id string) (Job, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, ok := e.st.Jobs[id]
	if !ok {
		return Job{}, false
	}
	return *j.clone(), true
}

// Workspace returns a copy of a workspace.
func (e *Engine) Workspace(id string) (Workspace, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	w, ok := e.st.Workspaces[id]
	if !ok {
		return Workspace{}, false
	}
	return *w, true
}

// Counts returns the number of jobs by state and the seq.
func (e *Engine) Counts() (jobs map[string]int, seq uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	jobs = map[string]int{}
	for _, j := range e.st.Jobs {
		jobs[j.State]++
	}
	return jobs, e.st.Seq
}

// LogSize reports the log file's size in bytes.
func (e *Engine) LogSize() int64 {
	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	return e.log.size
}

// Close stops the engine; later calls return ErrClosed.
func (e *Engine) Close() error {
	e.ckMu.Lock()
	defer e.ckMu.Unlock()
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return e.log.close()
}

// Import adds finished history without logging it, for bulk loads before a
// benchmark; Checkpoint then makes it durable. The jobs and workspaces are
// copied; seq becomes the state's seq when it is higher.
func (e *Engine) Import(jobs []*Job, workspaces [][]Workspace, seq uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	for i, j := range jobs {
		if _, ok := e.st.Jobs[j.ID]; ok {
			return conflict("job %s exists", j.ID)
		}
		e.st.Jobs[j.ID] = j.clone()
		if i < len(workspaces) {
			for _, w := range workspaces[i] {
				w := w
				e.st.Workspaces[w.ID] = &w
			}
		}
	}
	e.st.Seq = max(e.st.Seq, seq)
	return nil
}
