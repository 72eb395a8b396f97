package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/internal/workload"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// The crash matrix. A seeded workload runs through the real engine, log
// and checkpointer on a vfs.Mem under sync always: workers submit the
// events of generated jobs in small batches while checkpoints (snapshot,
// log truncation, prune) run beside them; half-way the process "dies"
// (the run goes on from the crash state of the filesystem) and recovers.
// Before every fsync, directory fsync and rename of the run the test takes
// the crash clone of the filesystem and the number of events answered so
// far. Each clone is then recovered with datadir.Recover, as the daemon
// does, and must hold every answered event with its seq, equal a fresh
// replay of a prefix of what was written, leave no temporary file, take the
// next write at the next seq and recover again after it.
//
// Durable state changes only at an fsync or a directory fsync, so the
// clone taken just before one is the durable state of the whole stretch
// since the previous one, checked against every event answered in it.

// dataDir is the data directory on the in-memory filesystems.
const dataDir = "/data"

// crashSeeds are seeds that once failed (see docs/RELIABILITY.md); they
// run in every normal run, ahead of the sampled ones.
var crashSeeds = []uint64{
	1, // lost the data dir: its entry in / was never fsync'd
}

// crashPoint is the state a crash just before one operation would leave.
type crashPoint struct {
	index    int // of the operation among the run's fsyncs and renames
	op       vfs.Op
	path     string
	answered int // events answered before it
	fs       *vfs.Mem
}

// crashRun is one seeded workload and the crash points taken during it.
type crashRun struct {
	seed    uint64
	workers int
	jobs    int
	// ckptEvery: a worker asks for a checkpoint every ckptEvery batches.
	ckptEvery int
	stride    int // every stride-th point is kept (1: all)
	gen       *workload.Generator
	// sync is the log's sync mode while the workload runs; the promises
	// hold under SyncAlways (recovery always uses it).
	sync wal.SyncMode
	// hold: between a truncation's rename of the log and its directory
	// fsync, wait for a write to be answered (up to holdFor), then take a
	// crash point there. No write may be answered in that window.
	hold    bool
	renamed atomic.Bool
	held    atomic.Int64 // windows held

	hist  *history
	led   *ledger
	total atomic.Int64 // fsyncs and renames seen

	mu     sync.Mutex
	points []crashPoint
}

func newCrashRun(seed uint64, stride int) (*crashRun, error) {
	gen, err := workload.New(workload.Config{Seed: seed, Prefix: "c", MinSteps: 2,
		MaxSteps: 6, FailRate: 0.2, CancelRate: 0.1, PurgeRate: 0.3})
	if err != nil {
		return nil, err
	}
	return &crashRun{seed: seed, workers: 1 + int(seed%3), jobs: 24,
		ckptEvery: 4 + int(seed%7), stride: stride, gen: gen,
		hist: newHistory(), led: newLedger()}, nil
}

// hook takes a crash clone before every fsync, directory fsync and rename
// the sample keeps.
func (r *crashRun) hook(m *vfs.Mem) func(op vfs.Op, path string) error {
	offset := int(r.seed % uint64(r.stride))
	return func(op vfs.Op, path string) error {
		if r.hold {
			r.holdWindow(m, op, path)
		}
		if op != vfs.OpSync && op != vfs.OpSyncDir && op != vfs.OpRename {
			return nil
		}
		i := int(r.total.Add(1) - 1)
		if i%r.stride != offset {
			return nil
		}
		// NB: count first, clone second: every event counted was durable
		// before it was answered, so before the clone.
		n := r.led.len()
		c := m.Crash()
		r.mu.Lock()
		r.points = append(r.points, crashPoint{index: i, op: op, path: path, answered: n, fs: c})
		r.mu.Unlock()
		return nil
	}
}

// holdFor bounds how long a truncation is held between its rename and its
// directory fsync, waiting for an answer that must not come. It paces the
// test; nothing is asserted about time.
const holdFor = 50 * time.Millisecond

// holdWindow holds the directory fsync that follows a rename of the log
// until a write is answered or holdFor has passed, then records the crash
// state there: the rename is not durable yet.
func (r *crashRun) holdWindow(m *vfs.Mem, op vfs.Op, path string) {
	switch {
	case op == vfs.OpRename && strings.HasSuffix(path, "/wal/pstate.wal.tmp"):
		r.renamed.Store(true)
		return
	case op != vfs.OpSyncDir || path != dataDir+"/wal" || !r.renamed.Swap(false):
		return
	}
	n := r.led.len()
	select {
	case <-r.led.added: // a stale signal of an earlier answer
	default:
	}
	timer := time.NewTimer(holdFor)
	defer timer.Stop()
wait:
	for r.led.len() == n {
		select {
		case <-r.led.added:
		case <-timer.C:
			break wait
		}
	}
	r.held.Add(1)
	answered := r.led.len()
	c := m.Crash()
	r.mu.Lock()
	r.points = append(r.points, crashPoint{index: -2, op: op, path: "held after rename",
		answered: answered, fs: c})
	r.mu.Unlock()
}

// addFinal records the state of m at the end of a phase as a crash point.
func (r *crashRun) addFinal(m *vfs.Mem, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.points = append(r.points, crashPoint{index: -1, path: what,
		answered: r.led.len(), fs: m.Crash()})
}

// stack is the daemon's core on one filesystem, wired as the server does.
type stack struct {
	log    *wal.Log
	engine *pstate.Engine
	ckpt   *checkpoint.Checkpointer
}

func openStack(m vfs.FS, dir string, hist *history, mode wal.SyncMode) (*stack, error) {
	rec, err := datadir.Recover(dir, datadir.RecoverOptions{FS: m,
		WAL: wal.Options{Sync: mode}})
	if err != nil {
		return nil, err
	}
	s := &stack{log: rec.Log}
	s.engine = pstate.Start(rec.State, &recLog{Log: rec.Log, hist: hist}, pstate.Options{})
	s.ckpt = checkpoint.Start(checkpoint.Config{FS: m, Dir: dir + "/snapshots",
		Keep: 2, Interval: -1, WALBytes: -1, Log: rec.Log,
		Capture: func() checkpoint.Capture {
			root := s.engine.Root()
			seq, counts := root.Meta()
			return checkpoint.Capture{Meta: checkpoint.Meta{Seq: seq, Counts: counts},
				Encode: root.EncodeSnapshot}
		}})
	return s, nil
}

func (s *stack) close() {
	s.engine.Close()
	_ = s.ckpt.Close()
	_ = s.log.Close()
}

// drive submits the events of jobs [from, to) from r.workers workers and
// runs the checkpoints they ask for, until all are answered.
func (r *crashRun) drive(s *stack, from, to int) error {
	ctx := context.Background()
	kick := make(chan struct{}, 1)
	stop := make(chan struct{})
	errc := make(chan error, r.workers+1)
	ckDone := make(chan struct{})
	go func() {
		defer close(ckDone)
		for {
			select {
			case <-stop:
				return
			case <-kick:
				if _, err := s.ckpt.Checkpoint(ctx); err != nil {
					errc <- fmt.Errorf("checkpoint: %w", err)
					return
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range r.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(r.seed, uint64(w)))
			batches := 0
			for j := from + w; j < to; j += r.workers {
				evs := r.gen.Job(j)
				for len(evs) > 0 {
					k := min(1+rng.IntN(4), len(evs))
					batch := make([]pstate.Event, k)
					for i := range batch {
						batch[i] = toEvent(evs[i])
					}
					evs = evs[k:]
					res, err := s.engine.Submit(ctx, batch)
					if err != nil {
						errc <- fmt.Errorf("submit %s: %w", batch[0].ID, err)
						return
					}
					r.led.add(batch, res)
					if batches++; batches%r.ckptEvery == 0 {
						select {
						case kick <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-ckDone
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// run runs both phases and collects the crash points.
func (r *crashRun) run() error {
	m := vfs.NewMem()
	m.SetOnOp(r.hook(m))
	s, err := openStack(m, dataDir, r.hist, r.sync)
	if err != nil {
		return fmt.Errorf("first start: %w", err)
	}
	half := r.jobs / 2
	err = r.drive(s, 0, half)
	// The process dies here: the run goes on from what a crash leaves.
	m.SetOnOp(nil)
	r.addFinal(m, "kill after phase 1")
	next := m.Crash()
	s.close()
	if err != nil {
		return err
	}

	next.SetOnOp(r.hook(next))
	s, err = openStack(next, dataDir, r.hist, r.sync)
	if err != nil {
		return fmt.Errorf("start after the crash: %w", err)
	}
	err = r.drive(s, half, r.jobs)
	if err == nil {
		_, err = s.ckpt.Checkpoint(context.Background())
	}
	s.close()
	next.SetOnOp(nil)
	r.addFinal(next, "clean stop")
	return err
}

// check recovers one crash point and checks the promises on it.
func (r *crashRun) check(cp crashPoint) error {
	answered := r.led.upTo(cp.answered)

	// The offline check must find nothing but what recovery repairs.
	if findings, err := datadir.VerifyFS(cp.fs, dataDir); err == nil {
		for _, f := range findings {
			if f.Fault() {
				return fmt.Errorf("verify reports a fault on a crash state: %s", f)
			}
		}
	} else if len(answered) > 0 {
		return fmt.Errorf("verify: %w", err)
	}

	rec, err := datadir.Recover(dataDir, datadir.RecoverOptions{FS: cp.fs,
		WAL: wal.Options{Sync: wal.SyncAlways}})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	st := rec.State
	if err := r.checkState(st, answered); err != nil {
		_ = rec.Log.Close()
		return err
	}
	if tmp := tempFiles(cp.fs, dataDir); len(tmp) > 0 {
		_ = rec.Log.Close()
		return fmt.Errorf("temporary files left after recovery: %v", tmp)
	}
	return r.checkNextStart(cp.fs, rec, st.Seq())
}

// checkState checks a recovered state against the answered events and the
// history written.
func (r *crashRun) checkState(st *pstate.State, answered []answer) error {
	seq := st.Seq()
	var lost []answer
	for _, a := range answered {
		if _, ok := st.Applied(a.id); !ok {
			lost = append(lost, a)
		}
	}
	if len(lost) > 0 {
		return &lostError{n: len(lost), err: fmt.Errorf(
			"%d answered events lost, first %s (seq %d); recovered seq %d",
			len(lost), lost[0].id, lost[0].seq, seq)}
	}
	for _, a := range answered {
		got, _ := st.Applied(a.id)
		if got != a.seq {
			return fmt.Errorf("answered event %s: seq %d after recovery, answered %d",
				a.id, got, a.seq)
		}
		if seq < a.seq {
			return fmt.Errorf("seq went back: recovered %d, answered %d", seq, a.seq)
		}
	}
	fresh, err := r.hist.replayPrefix(seq)
	if err != nil {
		return fmt.Errorf("recovered seq %d is not a prefix of what was written: %w", seq, err)
	}
	same, err := sameState(st, fresh)
	if err != nil {
		return err
	}
	if !same {
		return fmt.Errorf("recovered state at seq %d differs from a fresh replay of "+
			"records 1..%d (applied twice or lost)", seq, seq)
	}
	return nil
}

// checkNextStart writes one event after recovery, stops, starts again and
// checks the event is there at the next seq and no temporary file is left.
func (r *crashRun) checkNextStart(m *vfs.Mem, rec *datadir.Recovered, seq uint64) error {
	e := pstate.Start(rec.State, rec.Log, pstate.Options{})
	ev := pstate.Event{Type: pstate.TypeJobSubmitted, ID: "after-crash",
		JobID: "after-crash", Name: "after", Steps: []string{"s"}}
	res, err := e.Submit(context.Background(), []pstate.Event{ev})
	e.Close()
	if cerr := rec.Log.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write after recovery: %w", err)
	}
	if res[0].Seq != seq+1 || res[0].Duplicate {
		return fmt.Errorf("write after recovery got seq %d (dup %v), want %d",
			res[0].Seq, res[0].Duplicate, seq+1)
	}
	again, err := datadir.Recover(dataDir, datadir.RecoverOptions{FS: m,
		WAL: wal.Options{Sync: wal.SyncAlways}})
	if err != nil {
		return fmt.Errorf("second recovery: %w", err)
	}
	defer again.Log.Close()
	if got, ok := again.State.Applied(ev.ID); !ok || got != seq+1 {
		return fmt.Errorf("second recovery: the event written after recovery is at %d, %v",
			got, ok)
	}
	if tmp := tempFiles(m, dataDir); len(tmp) > 0 {
		return fmt.Errorf("temporary files left after the second start: %v", tmp)
	}
	return nil
}

// crashStats are the totals a matrix run prints.
type crashStats struct {
	seeds, ops, points, answered, lost int
}

// runCrashSeed runs one seed and checks its crash points; it returns the
// failures, each naming the seed and the point.
func runCrashSeed(t *testing.T, seed uint64, stride int, mode wal.SyncMode,
	st *crashStats) []error {
	t.Helper()
	r, err := newCrashRun(seed, stride)
	if err != nil {
		t.Fatal(err)
	}
	r.sync = mode
	if err := r.run(); err != nil {
		return []error{fmt.Errorf("seed %d: run: %w", seed, err)}
	}
	var errs []error
	for _, cp := range r.points {
		if err := r.check(cp); err != nil {
			var lost *lostError
			if errors.As(err, &lost) {
				st.lost += lost.n
			}
			errs = append(errs, fmt.Errorf("seed %d, crash before op %d (%v %s, %d answered): %w",
				seed, cp.index, cp.op, cp.path, cp.answered, err))
		}
		st.answered += cp.answered
	}
	st.seeds++
	st.ops += int(r.total.Load())
	st.points += len(r.points)
	return errs
}

// lostError is a check that found answered events missing.
type lostError struct {
	n   int
	err error
}

func (e *lostError) Error() string { return e.err.Error() }

func TestCrashMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("crash matrix: not in -short")
	}
	seeds := append([]uint64(nil), crashSeeds...)
	stride := 7
	extra := 3
	if soak() {
		stride, extra = 1, envInt("PSTATE_SOAK_SEEDS", 40)
	}
	for i := range extra {
		seeds = append(seeds, 1000+uint64(i))
	}

	var st crashStats
	var failures []error
	for _, seed := range seeds {
		failures = append(failures, runCrashSeed(t, seed, stride, wal.SyncAlways, &st)...)
	}
	for i, err := range failures {
		if i == 20 {
			t.Errorf("... and %d more", len(failures)-20)
			break
		}
		t.Error(err)
	}
	t.Logf("SUMMARY crash matrix: %d seeds, %d fsync/rename ops, %d crash points recovered, "+
		"%d answered events checked, %d answered events lost, %d failures", st.seeds, st.ops,
		st.points, st.answered, st.lost, len(failures))
}

// TestCrashMatrixSeesLoss runs the matrix on a log that never fsyncs:
// answered events then die with the crash, and the checks must say so.
func TestCrashMatrixSeesLoss(t *testing.T) {
	var st crashStats
	failures := runCrashSeed(t, 7, 3, wal.SyncNone, &st)
	if len(failures) == 0 || st.lost == 0 {
		t.Fatalf("no loss found without fsync: %d failures, %d lost", len(failures), st.lost)
	}
	t.Logf("without fsync: %d of %d crash points lose answered events (%d events)",
		len(failures), st.points, st.lost)
}

// TestCrashHeldRename holds every truncation between the rename of the
// log and its directory fsync, the one window where a crash brings the old
// file back, while writers go on: a write answered in it (before the
// directory holds the rename) is lost in the crash state taken there.
func TestCrashHeldRename(t *testing.T) {
	if testing.Short() {
		t.Skip("crash matrix: not in -short")
	}
	var st crashStats
	var failures []error
	held := 0
	for _, seed := range []uint64{2, 5, 8} { // two and three workers
		r, err := newCrashRun(seed, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		r.hold = true
		if err := r.run(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for _, cp := range r.points {
			if err := r.check(cp); err != nil {
				failures = append(failures, fmt.Errorf("seed %d, %s (%d answered): %w",
					seed, cp.path, cp.answered, err))
			}
			st.points++
		}
		held += int(r.held.Load())
	}
	for _, err := range failures {
		t.Error(err)
	}
	if held == 0 {
		t.Fatal("no truncation was held: the workload took no checkpoint")
	}
	t.Logf("SUMMARY held renames: %d truncations held between rename and directory "+
		"fsync, %d crash states recovered, %d failures", held, st.points, len(failures))
}
