package baseline

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// CheckpointResult describes one checkpoint.
type CheckpointResult struct {
	Seq       uint64
	Bytes     int64         // snapshot size
	CloneLock time.Duration // both locks held for the deep clone
	TruncLock time.Duration // log lock held for the truncation
	Duration  time.Duration
}

// Checkpoint clones the state under both locks, writes the clone as the
// snapshot and truncates the log to the records after it.
func (e *Engine) Checkpoint() (CheckpointResult, error) {
	e.ckMu.Lock()
	defer e.ckMu.Unlock()
	start := time.Now()

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return CheckpointResult{}, ErrClosed
	}
	e.log.mu.Lock()
	clone := e.st.clone()
	off := e.log.size
	e.log.mu.Unlock()
	e.mu.Unlock()
	res := CheckpointResult{Seq: clone.Seq, CloneLock: time.Since(start)}
	if e.opts.OnCloneLock != nil {
		e.opts.OnCloneLock(res.CloneLock)
	}

	n, err := writeSnapshot(filepath.Join(e.dir, snapshotName), clone)
	if err != nil {
		return res, err
	}
	res.Bytes = n

	res.TruncLock, err = e.truncate(off)
	res.Duration = time.Since(start)
	return res, err
}

func (e *Engine) truncate(off int64) (time.Duration, error) {
	e.log.mu.Lock()
	t0 := time.Now()
	err := e.log.truncateLocked(off)
	d := time.Since(t0)
	e.log.mu.Unlock()
	if e.opts.OnTruncateLock != nil {
		e.opts.OnTruncateLock(d)
	}
	return d, err
}

// TruncateLog drops the records before seq the way a checkpoint at seq-1
// would, and returns how long it held the log lock. The offset is found by
// scanning the log before the lock is taken.
func (e *Engine) TruncateLog(seq uint64) (time.Duration, error) {
	e.ckMu.Lock()
	defer e.ckMu.Unlock()
	data, err := os.ReadFile(e.log.path)
	if err != nil {
		return 0, fmt.Errorf("read log: %w", err)
	}
	off := int64(-1)
	errFound := errors.New("found")
	_, err = scanRecords(e.log.path, data, func(o int64, s uint64, _ []byte) error {
		if s >= seq {
			off = o
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return 0, err
	}
	if off < 0 {
		off = int64(len(data))
	}
	return e.truncate(off)
}

// writeSnapshot writes st with gob to path via a synced temp file.
func writeSnapshot(path string, st *state) (int64, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, fmt.Errorf("create snapshot: %w", err)
	}
	n, err := writeSnapshotTo(f, st)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	return n, nil
}

// writeSnapshotTo encodes st to w and returns the bytes written.
func writeSnapshotTo(w io.Writer, st *state) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<20)
	if err := gob.NewEncoder(bw).Encode(st); err != nil {
		return cw.n, err
	}
	err := bw.Flush()
	return cw.n, err
}

// readSnapshot loads path, or returns an empty state when it is missing.
func readSnapshot(path string) (*state, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	defer f.Close()
	return decodeSnapshot(path, bufio.NewReaderSize(f, 1<<20))
}

func decodeSnapshot(path string, r io.Reader) (*state, error) {
	st := newState()
	if err := gob.NewDecoder(r).Decode(st); err != nil {
		return nil, &CorruptionError{File: path, Kind: "undecodable snapshot", Err: err}
	}
	if st.Jobs == nil || st.Workspaces == nil || st.IDs == nil {
		st.Jobs, st.Workspaces, st.IDs = ifNil(st.Jobs), ifNil(st.Workspaces), ifNil(st.IDs)
	}
	for id, j := range st.Jobs {
		if j == nil || j.ID != id {
			return nil, &CorruptionError{File: path, Kind: "job entry does not match its key"}
		}
	}
	for id, w := range st.Workspaces {
		if w == nil || w.ID != id {
			return nil, &CorruptionError{File: path, Kind: "workspace entry does not match its key"}
		}
	}
	return st, nil
}

func ifNil[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
