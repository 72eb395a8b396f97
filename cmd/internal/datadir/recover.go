package datadir

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// RecoverOptions tunes Recover. The zero value works.
type RecoverOptions struct {
	// FS is the filesystem; default vfs.OS. It overrides WAL.FS.
	FS vfs.FS
	// WAL are the options the log is opened with (sync mode, hooks).
	WAL wal.Options
	// Progress, when set, is called about every ProgressEvery while the log
	// is replayed, and once at the end.
	Progress func(Progress)
	// ProgressEvery is the time between Progress calls; default 1s.
	ProgressEvery time.Duration
	// SnapshotProgress, when set, is called while a snapshot is read, with
	// its path, the bytes read so far and its size (every few MiB and at
	// the end): loading a big snapshot takes a while too.
	SnapshotProgress func(path string, read, size int64)
}

// Phases of a recovery in Progress.
const (
	PhaseSnapshot = "snapshot" // reading the snapshot
	PhaseLog      = "log"      // replaying the log
)

// Progress reports how far a recovery has come.
type Progress struct {
	Phase   string        // PhaseSnapshot or PhaseLog
	Bytes   int64         // PhaseSnapshot: bytes of the snapshot read so far
	Size    int64         // PhaseSnapshot: the snapshot's size
	Records uint64        // PhaseLog: records replayed so far
	Seq     uint64        // seq of the last record replayed
	Elapsed time.Duration // since the replay began
	Done    bool          // the last report of the replay
}

// Rate returns the records replayed per second.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Records) / p.Elapsed.Seconds()
}

// Recovered is an opened data directory: the log, ready for writes, and
// the state it and the snapshot hold.
type Recovered struct {
	Log          *wal.Log
	State        *pstate.State
	Snapshot     checkpoint.Info // the snapshot used; Path is "" when none
	SnapshotTime time.Time       // when that snapshot was taken
	Damaged      []error         // snapshots skipped as damaged, newest first
	Records      uint64          // log records replayed after the snapshot
	Duration     time.Duration   // of the whole recovery
	ReplayTime   time.Duration   // of the log replay alone
}

// Recover opens a data directory for the daemon: it removes the temporary
// files a crash left, opens the log (which cuts a torn last record), loads
// the newest sound snapshot the log continues (falling back to an older one
// when the newest is damaged and the log still covers the gap), replays the
// log after the snapshot's seq and, when the log ends before the snapshot,
// bases it right after it. Locking the directory is the caller's business.
//
// Every error names the file and, where there is one, the byte offset and
// kind of the damage (*wal.CorruptionError, *checkpoint.CorruptionError).
// On error nothing is left open.
func Recover(dir string, opts RecoverOptions) (*Recovered, error) {
	start := time.Now()
	fsys := opts.FS
	if fsys == nil {
		fsys = vfs.OS
	}
	walDir := filepath.Join(dir, WALDir)
	snapDir := filepath.Join(dir, SnapshotDir)
	if err := makeDurableDir(fsys, snapDir); err != nil {
		return nil, fmt.Errorf("make snapshot dir: %w", err)
	}
	if err := checkpoint.RemoveTemp(fsys, snapDir); err != nil {
		return nil, fmt.Errorf("remove temporary snapshots: %w", err)
	}
	wopts := opts.WAL
	wopts.FS = fsys
	log, err := wal.Open(walDir, wopts)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	rec, err := recoverLog(fsys, snapDir, walDir, log, opts)
	if err != nil {
		_ = log.Close()
		return nil, err
	}
	rec.Duration = time.Since(start)
	return rec, nil
}

// recoverLog does the part of Recover that runs with the log open.
func recoverLog(fsys vfs.FS, snapDir, walDir string, log *wal.Log,
	opts RecoverOptions) (*Recovered, error) {
	rec := &Recovered{Log: log}

	// A snapshot at S is usable when the log holds every record after S:
	// its first record is at most S+1 (an empty log based at S+1 counts).
	covers := func(seq uint64) bool { return log.FirstSeq() <= seq+1 }
	// The snapshot is decoded into a Recovery: the log is replayed into
	// the same mutable maps and the immutable state is built once, at the
	// end.
	built := map[uint64]*pstate.Recovery{}
	used, damaged, err := checkpoint.LoadWith(fsys, snapDir, covers,
		func(meta checkpoint.Meta, body io.Reader) error {
			r, err := pstate.DecodeRecovery(body, meta.Seq)
			if err != nil {
				return err
			}
			built[meta.Seq] = r
			rec.SnapshotTime = meta.Time
			return nil
		}, checkpoint.LoadOptions{Progress: opts.SnapshotProgress})
	rec.Damaged = damaged
	if err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	r := pstate.NewRecovery(nil)
	if used.Path != "" {
		var ok bool
		if r, ok = built[used.Seq]; !ok {
			return nil, fmt.Errorf("load snapshot %s: no state was decoded", used.Path)
		}
		rec.Snapshot = used
	}
	clear(built) // the damaged ones' maps may go
	if first := log.FirstSeq(); first > used.Seq+1 {
		return nil, fmt.Errorf("log %s starts at seq %d but the snapshot ends at seq %d: "+
			"records %d to %d are missing", walDir, first, used.Seq, used.Seq+1, first-1)
	}

	if err := replay(fsys, walDir, log, r, rec, opts); err != nil {
		return nil, err
	}

	// The log ends at or before the snapshot (it was lost or truncated
	// past it): base it after the snapshot, durably, so that the next
	// write never reuses a seq the snapshot already holds.
	if next := used.Seq + 1; log.NextSeq() < next {
		if err := log.TruncateBefore(next); err != nil {
			return nil, fmt.Errorf("base log after snapshot seq %d: %w", used.Seq, err)
		}
	}
	log.SetProcessed(rec.State.Seq())
	return rec, nil
}

// replay applies the log's records after the snapshot to r and sets
// rec.State to the state built, reporting progress.
func replay(fsys vfs.FS, walDir string, log *wal.Log, r *pstate.Recovery, rec *Recovered,
	opts RecoverOptions) error {
	every := opts.ProgressEvery
	if every <= 0 {
		every = time.Second
	}
	start := time.Now()
	last := start
	var n, lastSeq uint64
	// The log holds records from..next-1 to replay: the recovery sizes
	// its index of event ids for them once.
	if from, next := max(r.Seq()+1, log.FirstSeq()), log.NextSeq(); next > from {
		r.Expect(next - from)
	}
	// ReplayAll decodes the records on a goroutine of its own (the one
	// that runs log.Replay and this progress count) while it applies the
	// ones before; n and lastSeq are read only after it returns.
	err := r.ReplayAll(func(fn func(seq uint64, payload []byte) error) error {
		return log.Replay(r.Seq()+1, func(seq uint64, payload []byte) error {
			if err := fn(seq, payload); err != nil {
				return err
			}
			lastSeq = seq
			n++
			if opts.Progress != nil && n%1024 == 0 {
				if now := time.Now(); now.Sub(last) >= every {
					last = now
					opts.Progress(Progress{Phase: PhaseLog, Records: n, Seq: seq,
						Elapsed: now.Sub(start)})
				}
			}
			return nil
		})
	})
	if err == nil {
		rec.State = r.State() // builds the immutable maps: part of the replay's time
	}
	rec.ReplayTime = time.Since(start)
	if err != nil {
		var re *pstate.RecordError
		if errors.As(err, &re) {
			file, off := locate(fsys, walDir, re.Seq)
			return &wal.CorruptionError{File: file, Offset: off, Kind: "event",
				Err: fmt.Errorf("replay record seq %d: %w", re.Seq, re.Err)}
		}
		return fmt.Errorf("replay log %s: %w", walDir, err)
	}
	rec.Records = n
	if opts.Progress != nil {
		opts.Progress(Progress{Phase: PhaseLog, Records: n, Seq: lastSeq,
			Elapsed: rec.ReplayTime, Done: true})
	}
	return nil
}

// makeDurableDir makes dir and its missing parents and syncs every
// directory from dir's parent up to the root, so that a crash right after
// the first start cannot lose the data dir's own entry (a new directory is
// durable only once its parent is synced).
func makeDurableDir(fsys vfs.FS, dir string) error {
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for d := filepath.Clean(dir); ; {
		parent := filepath.Dir(d)
		if parent == d {
			return nil
		}
		if err := fsys.SyncDir(parent); err != nil {
			return fmt.Errorf("sync dir %s: %w", parent, err)
		}
		d = parent
	}
}

// locate finds the file and byte offset of a record by scanning the log
// read-only; ("DIR", -1) when it cannot.
func locate(fsys vfs.FS, walDir string, seq uint64) (string, int64) {
	file, off := walDir, int64(-1)
	info, _ := wal.Scan(fsys, walDir, func(s uint64, o int64, _ []byte) error {
		if s == seq {
			off = o
			return errStop
		}
		return nil
	})
	if info.File != "" {
		file = info.File
	}
	return file, off
}

var errStop = errors.New("stop")
