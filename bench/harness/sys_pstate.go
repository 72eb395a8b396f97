package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/internal/workload"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// Data dir layout, as the daemon keeps it.
const (
	walDir  = "wal"
	snapDir = "snapshots"
)

// toPstate converts a workload event.
func toPstate(e *workload.Event) pstate.Event {
	return pstate.Event{Type: e.Type, ID: e.ID, Time: e.Time, JobID: e.JobID, Name: e.Name,
		Labels: e.Labels, Steps: e.Steps, Worker: e.Worker, Step: e.Step, Attempt: e.Attempt,
		Status: e.Status, ExitCode: e.ExitCode, Reason: e.Reason, WorkspaceID: e.WorkspaceID,
		Path: e.Path}
}

// pstateSys is pstate in-process: an Engine over a wal.Log in a directory
// laid out like the daemon's, with the checkpointer.
type pstateSys struct {
	dir string
	log *wal.Log
	eng *pstate.Engine
	cp  *checkpoint.Checkpointer

	// Set before Load by benchmarks that look inside: onSync sees every
	// fdatasync of the log, snapFS carries the checkpointer's file
	// operations (default vfs.OS).
	onSync func(d time.Duration, err error)
	snapFS vfs.FS
	share  float64 // checkpoint.Config.Share
	// keepLog, when set, turns the checkpointer's log truncations into
	// no-ops.
	keepLog bool
}

// keptLog is a log whose truncation does nothing.
type keptLog struct{ *wal.Log }

func (keptLog) TruncateBefore(uint64) error { return nil }

func newPstate(dir string) *pstateSys { return &pstateSys{dir: dir} }

func (p *pstateSys) Name() string { return "pstate" }

// seedPstateDir writes st as the snapshot of a new data dir.
func seedPstateDir(dir string, st *pstate.State) error {
	seq, counts := st.Meta()
	meta := checkpoint.Meta{Seq: seq, Time: time.Now(), Counts: counts}
	for _, d := range []string{walDir, snapDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	_, err := checkpoint.Write(vfs.OS, filepath.Join(dir, snapDir), meta, st.EncodeSnapshot)
	return err
}

func (p *pstateSys) Load(ctx context.Context, ls *LoadSet) error {
	st, err := buildPstateState(ls)
	if err != nil {
		return err
	}
	if err := seedPstateDir(p.dir, st); err != nil {
		return err
	}
	return p.start(st)
}

// start opens the log, bases it after root and starts engine and
// checkpointer. Checkpoints run only when the harness asks.
func (p *pstateSys) start(root *pstate.State) error {
	log, err := wal.Open(filepath.Join(p.dir, walDir),
		wal.Options{Sync: wal.SyncAlways, OnSync: p.onSync})
	if err != nil {
		return err
	}
	if log.NextSeq() <= root.Seq() {
		if err := log.TruncateBefore(root.Seq() + 1); err != nil {
			log.Close()
			return err
		}
	}
	p.log = log
	p.eng = pstate.Start(root, log, pstate.Options{})
	p.startCheckpointer()
	return nil
}

// startCheckpointer starts the checkpointer with p's settings.
func (p *pstateSys) startCheckpointer() {
	var log checkpoint.Truncator = p.log
	if p.keepLog {
		log = keptLog{p.log}
	}
	p.cp = checkpoint.Start(checkpoint.Config{
		FS:       p.snapFS,
		Share:    p.share,
		Dir:      filepath.Join(p.dir, snapDir),
		Interval: 1000 * time.Hour,
		WALBytes: math.MaxInt64,
		Capture: func() checkpoint.Capture {
			s := p.eng.Root()
			seq, counts := s.Meta()
			return checkpoint.Capture{Meta: checkpoint.Meta{Seq: seq, Time: time.Now(), Counts: counts},
				Encode: s.EncodeSnapshot}
		},
		Log: log,
	})
}

// setShare restarts the checkpointer with Config.Share set to share.
func (p *pstateSys) setShare(share float64) {
	p.cp.Close()
	p.share = share
	p.startCheckpointer()
}

func (p *pstateSys) Submit(ctx context.Context, batch []workload.Event) error {
	evs := make([]pstate.Event, len(batch))
	for i := range batch {
		evs[i] = toPstate(&batch[i])
	}
	_, err := p.eng.Submit(ctx, evs)
	return err
}

func (p *pstateSys) Read(ctx context.Context, jobID string) error {
	p.eng.Root().Job(jobID)
	return nil
}

func (p *pstateSys) Checkpoint(ctx context.Context) error {
	_, err := p.cp.Checkpoint(ctx)
	return err
}

func (p *pstateSys) Footprint() (int64, int64, error) { return -1, dirSize(p.dir), nil }

// Recover closes engine, checkpointer and log without a final checkpoint
// (what a crash leaves, less the torn record) and recovers as the daemon
// does: newest snapshot, then the log after it.
func (p *pstateSys) Recover(ctx context.Context, firstJob string) (time.Duration, error) {
	p.stop()
	start := time.Now()
	log, err := wal.Open(filepath.Join(p.dir, walDir), wal.Options{Sync: wal.SyncAlways})
	if err != nil {
		return 0, err
	}
	var st *pstate.State
	covers := func(seq uint64) bool { return log.FirstSeq() <= seq+1 }
	_, _, err = checkpoint.Load(vfs.OS, filepath.Join(p.dir, snapDir), covers,
		func(meta checkpoint.Meta, body io.Reader) error {
			s, err := pstate.DecodeSnapshot(body, meta.Seq)
			st = s
			return err
		})
	if err == nil && st == nil {
		err = errors.New("no snapshot")
	}
	if err == nil {
		err = log.Replay(st.Seq()+1, func(seq uint64, payload []byte) error {
			s, err := pstate.Replay(st, seq, payload)
			st = s
			return err
		})
	}
	log.Close()
	if err != nil {
		return 0, fmt.Errorf("recover: %w", err)
	}
	if _, ok := st.Job(firstJob); !ok {
		return 0, fmt.Errorf("recover: job %s missing", firstJob)
	}
	d := time.Since(start)
	return d, p.start(st)
}

func (p *pstateSys) stop() {
	if p.eng != nil {
		p.eng.Close()
		p.cp.Close()
		p.log.Close()
		p.eng, p.cp, p.log = nil, nil, nil
	}
}

func (p *pstateSys) Close() error {
	p.stop()
	return nil
}
