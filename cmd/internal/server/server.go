package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// Config configures a Server. The zero value works: ./data on the real
// filesystem, sync always, the contract's defaults.
type Config struct {
	DataDir            string       // default "./data"
	FS                 vfs.FS       // default vfs.OS
	Sync               wal.SyncMode // default SyncAlways
	SyncInterval       time.Duration
	CheckpointInterval time.Duration // default 60s
	CheckpointWALBytes int64         // default 64 MiB; negative disables
	SnapshotsKeep      int           // default 2
	RetainFinished     time.Duration // 0 keeps finished jobs
	Token              []byte        // bearer token; nil disables auth
	Version            string
	Logger             *zap.Logger           // default zap.NewNop()
	Registerer         prometheus.Registerer // default a new registry
	Clock              func() time.Time      // default time.Now
	// MaxWait caps the wait= of reads; default 60s.
	MaxWait time.Duration
	// OnProgress is called during a long recovery (besides the log line).
	OnProgress func(datadir.Progress)
}

func (c *Config) fill() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.FS == nil {
		c.FS = vfs.OS
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = 60 * time.Second
	}
	if c.CheckpointWALBytes == 0 {
		c.CheckpointWALBytes = 64 << 20
	}
	if c.SnapshotsKeep <= 0 {
		c.SnapshotsKeep = 2
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 60 * time.Second
	}
}

// Phases of a Server.
const (
	phaseRecovering int32 = iota
	phaseReady
	phaseStopping
	phaseStopped
)

// Server is the daemon's core. Its handlers are safe for concurrent use.
type Server struct {
	cfg  Config
	log  *zap.Logger
	m    *metrics
	mux  http.Handler
	auth http.Handler // mux behind the token check; == mux without a token

	phase atomic.Int32
	// rt is set once by Open and never changes after; handlers load it
	// only when phase >= phaseReady.
	rt atomic.Pointer[runtime]
	// failure is the reason writes are refused besides the log's own
	// error (a checkpoint that hit a full disk); nil while writable.
	failure atomic.Pointer[string]

	snapLogged atomic.Int64 // unix nanos of the last snapshot progress line

	// stopCtx is canceled by BeginStop: reads waiting for a min_seq end.
	stopCtx    context.Context
	cancelStop context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// runtime is what Open builds: fixed after publication.
type runtime struct {
	wal      *wal.Log
	engine   *pstate.Engine
	ckpt     *checkpoint.Checkpointer
	snapshot checkpoint.Info // the snapshot recovery used
	snapTime time.Time
}

// New builds a Server; it answers the probes at once and everything else
// with 503 until Open has recovered.
func New(cfg Config) *Server {
	cfg.fill()
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.stopCtx, s.cancelStop = context.WithCancel(context.Background())
	s.m = newMetrics(cfg.Registerer, s)
	s.mux = s.routes()
	s.auth = s.mux
	if cfg.Token != nil {
		s.auth = requireToken(cfg.Token, s.mux)
	}
	return s
}

// Open recovers the data directory and starts the engine and the
// checkpointer. The caller holds the data dir's lock. An error names the
// file, offset and kind of what is wrong; the Server then stays unready.
func (s *Server) Open() error {
	if s.phase.Load() != phaseRecovering || s.rt.Load() != nil {
		return errors.New("server: Open after Open or Close")
	}
	cfg := s.cfg
	rec, err := datadir.Recover(cfg.DataDir, datadir.RecoverOptions{
		FS: cfg.FS,
		WAL: wal.Options{
			Sync:           cfg.Sync,
			SyncInterval:   cfg.SyncInterval,
			OnSync:         s.onSync,
			OnTruncateLock: func(d time.Duration) { s.m.truncateLock.Observe(d.Seconds()) },
			OnRepair:       s.onRepair,
		},
		Progress:         s.onProgress,
		SnapshotProgress: s.onSnapshotProgress,
	})
	if err != nil {
		return err
	}
	for _, d := range rec.Damaged {
		s.log.Warn("damaged snapshot skipped", zap.Error(d))
	}
	s.m.recoveryDuration.Set(rec.Duration.Seconds())
	s.m.recoveryRecords.Set(float64(rec.Records))
	s.m.lastCheckpointSeq.Set(float64(rec.Snapshot.Seq))
	s.m.checkpointBytes.Set(float64(rec.Snapshot.Bytes))
	rate := 0.0
	if rec.ReplayTime > 0 {
		rate = float64(rec.Records) / rec.ReplayTime.Seconds()
	}
	s.log.Info("recovered",
		zap.Uint64(keySeq, rec.State.Seq()),
		zap.Uint64(keyRecords, rec.Records),
		zap.Float64(keyRecordsPerSec, rate),
		zap.Duration(keyDuration, rec.Duration),
		zap.String(keySnapshot, rec.Snapshot.Path),
		zap.Uint64(keySnapshotSeq, rec.Snapshot.Seq))

	rt := &runtime{wal: rec.Log, snapshot: rec.Snapshot, snapTime: rec.SnapshotTime}
	rt.engine = pstate.Start(rec.State, rec.Log, pstate.Options{
		Clock:          cfg.Clock,
		RetainFinished: cfg.RetainFinished,
		OnApply: func(events int, d time.Duration) {
			if events > 0 { // refused requests and liveness probes apply nothing
				s.m.eventsApplied.Add(float64(events))
				s.m.applyDuration.Observe(d.Seconds())
			}
		},
		OnReadOnly: func(err error) {
			s.log.Error("read-only: writes are refused until a restart", zap.Error(err))
		},
	})
	rt.ckpt = checkpoint.Start(checkpoint.Config{
		FS:       cfg.FS,
		Dir:      filepath.Join(cfg.DataDir, datadir.SnapshotDir),
		Keep:     cfg.SnapshotsKeep,
		Interval: cfg.CheckpointInterval,
		WALBytes: cfg.CheckpointWALBytes,
		Capture:  func() checkpoint.Capture { return capture(rt.engine.Root(), cfg.Clock()) },
		Log:      rec.Log,
		OnDone:   s.onCheckpoint,
		OnError:  s.onCheckpointError,
	})
	s.rt.Store(rt)
	s.phase.CompareAndSwap(phaseRecovering, phaseReady)
	return nil
}

// capture takes a checkpoint's view of one root: its seq and time, its
// encoder, and its counts, taken by the checkpointer after it has timed the
// capture (the root never changes).
func capture(root *pstate.State, now time.Time) checkpoint.Capture {
	return checkpoint.Capture{
		Meta:   checkpoint.Meta{Seq: root.Seq(), Time: now},
		Encode: root.EncodeSnapshot,
		Counts: func() map[string]uint64 { _, c := root.Meta(); return c },
	}
}

// Close stops the engine (in-flight writes finish), takes a final
// checkpoint and closes the log. Stop the HTTP servers first so that no new
// request arrives. It is safe to call more than once and before Open.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

// BeginStop marks the server as stopping: /readyz answers 503 and reads
// waiting for a min_seq give up at once (503), so that draining the HTTP
// servers does not wait for them. Requests in flight go on.
func (s *Server) BeginStop() {
	s.phase.Store(phaseStopping)
	s.cancelStop()
}

func (s *Server) close(ctx context.Context) error {
	s.BeginStop()
	defer s.phase.Store(phaseStopped)
	rt := s.rt.Load()
	if rt == nil {
		return nil
	}
	rt.engine.Close()

	var errs []error
	if reason := s.readOnlyReason(); reason != "" {
		// The log refuses writes; a snapshot could still be written, but
		// it could not truncate the log. Recovery from the log is exact,
		// so leave the files as they are for the operator.
		errs = append(errs, fmt.Errorf("final checkpoint skipped: read-only: %s", reason))
	} else if res, err := rt.ckpt.Checkpoint(ctx); err != nil {
		errs = append(errs, fmt.Errorf("final checkpoint: %w", err))
	} else {
		s.log.Info("final checkpoint", zap.Uint64(keySeq, res.Seq),
			zap.Int64(keyBytes, res.Bytes), zap.Duration(keyDuration, res.Duration))
	}
	if err := rt.ckpt.Close(); err != nil {
		errs = append(errs, fmt.Errorf("stop checkpointer: %w", err))
	}
	if err := rt.wal.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close log: %w", err))
	}
	return errors.Join(errs...)
}

// Ready reports whether the server is recovered and writable.
func (s *Server) Ready() bool {
	return s.phase.Load() == phaseReady && s.readOnlyReason() == ""
}

// readOnlyReason returns why writes are refused, "" while writable.
func (s *Server) readOnlyReason() string {
	if p := s.failure.Load(); p != nil {
		return *p
	}
	if rt := s.rt.Load(); rt != nil {
		if err := rt.wal.Err(); err != nil {
			return err.Error()
		}
		if err := rt.engine.Err(); err != nil {
			return err.Error()
		}
	}
	return ""
}

// setReadOnly records a failure outside the log that must stop writes.
func (s *Server) setReadOnly(reason string) {
	if s.failure.CompareAndSwap(nil, &reason) {
		s.log.Error("read-only: writes are refused until a restart", zap.String(keyReason, reason))
	}
}

// Alive checks that the engine's event loop still turns, for the systemd
// watchdog: it submits a request the loop refuses before it touches the
// state or the log (an event marked as an engine effect), so the answer
// proves a round trip through the loop and changes nothing. A read-only
// engine counts as alive: it still serves reads, by design.
func (s *Server) Alive(ctx context.Context) error {
	rt := s.rt.Load()
	if rt == nil {
		return errors.New("not recovered")
	}
	_, err := rt.engine.Submit(ctx, []pstate.Event{{Effect: true}})
	var ie *pstate.InputError
	switch {
	case errors.As(err, &ie) && ie.Field == "effect":
		return nil
	case errors.Is(err, pstate.ErrReadOnly):
		return nil
	case err == nil:
		return errors.New("liveness probe was accepted by the engine")
	default:
		return fmt.Errorf("liveness probe: %w", err)
	}
}

func (s *Server) onSync(d time.Duration, err error) {
	s.m.fsyncDuration.Observe(d.Seconds())
	if err != nil {
		s.m.fsyncErrors.Inc()
		s.log.Error("log fsync failed: read-only until a restart", zap.Error(err),
			zap.Duration(keyDuration, d))
	}
}

func (s *Server) onRepair(file string, offset int64, reason string) {
	s.m.walRepairs.Inc()
	s.log.Warn("torn log tail cut", zap.String(keyFile, file), zap.Int64(keyOffset, offset),
		zap.String(keyReason, reason))
}

func (s *Server) onProgress(p datadir.Progress) {
	if !p.Done {
		s.log.Info("recovering", zap.Uint64(keyRecords, p.Records), zap.Uint64(keySeq, p.Seq),
			zap.Float64(keyRecordsPerSec, p.Rate()), zap.Duration(keyElapsed, p.Elapsed))
	}
	if s.cfg.OnProgress != nil {
		s.cfg.OnProgress(p)
	}
}

// onSnapshotProgress logs the loading of a big snapshot, at most about
// once a second, and reports it like log replay progress.
func (s *Server) onSnapshotProgress(path string, read, size int64) {
	now := time.Now()
	if last := s.snapLogged.Load(); last != 0 && now.Sub(time.Unix(0, last)) < time.Second &&
		read < size {
		return
	}
	s.snapLogged.Store(now.UnixNano())
	s.log.Info("loading snapshot", zap.String(keyFile, path), zap.Int64(keyBytes, read),
		zap.Int64(keySize, size))
	if s.cfg.OnProgress != nil {
		s.cfg.OnProgress(datadir.Progress{Phase: datadir.PhaseSnapshot, Bytes: read, Size: size})
	}
}

func (s *Server) onCheckpoint(r checkpoint.Result) {
	s.m.checkpointDuration.Observe(r.Duration.Seconds())
	s.m.checkpointCapture.Observe(r.Capture.Seconds())
	s.m.lastCheckpointSeq.Set(float64(r.Seq))
	s.m.checkpointBytes.Set(float64(r.Bytes))
	s.log.Info("checkpoint", zap.Uint64(keySeq, r.Seq), zap.Int64(keyBytes, r.Bytes),
		zap.Duration(keyDuration, r.Duration), zap.Duration(keyCapture, r.Capture),
		zap.String(keyFile, r.Path))
}

func (s *Server) onCheckpointError(err error) {
	s.m.checkpointErrors.Inc()
	s.log.Error("checkpoint failed", zap.Error(err))
	// The contract's promise: a failed fsync or a full disk turns the daemon
	// read-only. The log is still sound here, but a disk that answers EIO to
	// a snapshot will fail the log next; refusing writes now keeps the rule
	// simple for operators (one metric, one remedy: fix the disk, restart).
	switch {
	case errors.Is(err, syscall.ENOSPC):
		s.setReadOnly("checkpoint: disk full: " + err.Error())
	case errors.Is(err, syscall.EIO):
		s.setReadOnly("checkpoint: I/O error: " + err.Error())
	}
}
