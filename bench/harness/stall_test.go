package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pstate/pstate/internal/workload"
	"github.com/pstate/pstate/wal/vfs"
)

// BenchmarkCheckpointStall measures what checkpoints cost the writers of
// in-process pstate: the write latency of scenario 1 (16 writers, one event
// a batch) in windows without checkpoints and in windows with checkpoints
// back to back, alternated over several rounds of one run so that all see
// the same machine. Each checkpoint pacing (checkpoint.Config.Share) listed
// gets its own windows. It reports the p99.9s and their ratio to the quiet
// one (the target is at most 1.2), and beside them what explains a
// difference: the log's fdatasync latency, the snapshot file's fsyncs,
// collections, and the checkpoint's duration, CPU and allocations.
//
//	go test ./bench/harness -run '^$' -bench 'CheckpointStall/jobs=100000$' -benchtime 1x
//
// The pooled p99.9s of all windows of a mode give the p99.9-ratio; each
// round's ratio gives p99.9-ratio-median (for an odd number of rounds the
// middle one).
//
// Environment: PSTATE_STALL_SHARES (default "0": the default pacing; e.g.
// "-1,1,0.5" compares none, yielding only and half a core),
// PSTATE_STALL_ROUNDS (default 5) rounds of windows, PSTATE_STALL_WINDOW
// (default 3s) each, PSTATE_STALL_TRACE=FILE writes a runtime trace of the
// first window with checkpoints. To take parts of a checkpoint away:
// PSTATE_STALL_SNAPDIR=DIR puts the snapshots in DIR (a tmpfs such as
// /dev/shm: no snapshot I/O on the log's disk), PSTATE_STALL_KEEPLOG=1
// makes the log truncations no-ops.
func BenchmarkCheckpointStall(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			for b.Loop() {
				stall(b, n)
			}
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envShares(b *testing.B) []float64 {
	v := os.Getenv("PSTATE_STALL_SHARES")
	if v == "" {
		return []float64{0}
	}
	var shares []float64
	for _, f := range strings.Split(v, ",") {
		x, err := strconv.ParseFloat(f, 64)
		if err != nil {
			b.Fatalf("PSTATE_STALL_SHARES: %v", err)
		}
		shares = append(shares, x)
	}
	return shares
}

// stallWindows is what one mode measured over all its windows.
type stallWindows struct {
	name         string
	share        float64
	quiet        bool
	lat, logSync []time.Duration
	snapSync     []time.Duration
	ckDur        []time.Duration
	roundP999    []time.Duration // each round's p99.9
	gcs          uint32
	dur          time.Duration
}

func stall(b *testing.B, jobs int) {
	ctx := context.Background()
	rounds := envInt("PSTATE_STALL_ROUNDS", 5)
	window := 3 * time.Second
	if d, err := time.ParseDuration(os.Getenv("PSTATE_STALL_WINDOW")); err == nil && d > 0 {
		window = d
	}
	modes := []*stallWindows{{name: "quiet", quiet: true}}
	for _, sh := range envShares(b) {
		name := "ckpt"
		if os.Getenv("PSTATE_STALL_SHARES") != "" {
			name = fmt.Sprintf("share=%g", sh)
		}
		modes = append(modes, &stallWindows{name: name, share: sh})
	}

	g, err := workload.New(workload.Config{Seed: 1, MinSteps: 20, MaxSteps: 20})
	if err != nil {
		b.Fatal(err)
	}
	ls, err := buildLoadSet(g, jobs, time.Now().UTC())
	if err != nil {
		b.Fatal(err)
	}
	var syncs syncRecorder
	snapFS := &syncTimingFS{FS: vfs.OS}
	p := newPstate(b.TempDir())
	p.onSync, p.snapFS, p.share = syncs.add, snapFS, modes[1].share
	p.keepLog = os.Getenv("PSTATE_STALL_KEEPLOG") != ""
	if d := os.Getenv("PSTATE_STALL_SNAPDIR"); d != "" {
		// The snapshots on another filesystem (a tmpfs, say): what is left
		// of the stall is not their I/O.
		other, err := os.MkdirTemp(d, "snapshots-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(other)
		if err := os.Symlink(other, filepath.Join(p.dir, snapDir)); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Load(ctx, ls); err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	next := &atomic.Int64{}
	next.Store(int64(jobs))

	// One checkpoint alone first: its allocations and CPU, and a warm page
	// cache for the windows.
	alloc, cpu, err := lone(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(alloc)/float64(len(ls.Jobs)), "ckpt-alloc-B/job")
	b.ReportMetric(cpu.Seconds(), "ckpt-cpu-s")

	traced := false
	for r := range rounds {
		// Rotate the order of the modes each round, so that none always
		// follows another's after-effects (dirty pages, a collection due).
		for k := range modes {
			w := modes[(r+k)%len(modes)]
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			syncs.reset()
			snapFS.take()
			t0 := time.Now()
			var res writeResult
			if w.quiet {
				res = writeLoad(ctx, p, g, next, 16, deadline(window))
				err = res.err
			} else {
				p.setShare(w.share)
				stopTrace := startTrace(b, !traced)
				traced = true
				var ds []time.Duration
				res, ds, err = writesDuringCheckpoints(ctx, p, g, next, window)
				stopTrace()
				w.ckDur = append(w.ckDur, ds...)
			}
			if err != nil {
				b.Fatal(err)
			}
			w.dur += time.Since(t0)
			runtime.ReadMemStats(&ms1)
			w.roundP999 = append(w.roundP999, Summarize(res.lat).P999)
			w.lat = append(w.lat, res.lat...)
			w.logSync = append(w.logSync, syncs.take()...)
			w.snapSync = append(w.snapSync, snapFS.take()...)
			w.gcs += ms1.NumGC - ms0.NumGC
		}
	}
	report(b, modes)
}

// report reports each mode's numbers, named after it.
func report(b *testing.B, modes []*stallWindows) {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	q := Summarize(modes[0].lat)
	for _, w := range modes {
		s := Summarize(w.lat)
		b.ReportMetric(ms(s.P50), w.name+"-p50-ms")
		b.ReportMetric(ms(s.P99), w.name+"-p99-ms")
		b.ReportMetric(ms(s.P999), w.name+"-p99.9-ms")
		b.ReportMetric(float64(s.N)/w.dur.Seconds(), w.name+"-writes/s")
		b.ReportMetric(ms(Summarize(w.logSync).P999), w.name+"-log-fsync-p99.9-ms")
		b.ReportMetric(float64(w.gcs)/w.dur.Seconds(), w.name+"-gc/s")
		if w.quiet {
			continue
		}
		b.ReportMetric(float64(s.P999)/float64(q.P999), w.name+"-p99.9-ratio")
		// Each round's ratio to the quiet window of the same round, and
		// their median: steadier than the pooled ratio when a neighbour's
		// burst hits one window.
		ratios := make([]float64, len(w.roundP999))
		for r, x := range w.roundP999 {
			ratios[r] = float64(x) / float64(modes[0].roundP999[r])
		}
		slices.Sort(ratios)
		b.ReportMetric(ratios[len(ratios)/2], w.name+"-p99.9-ratio-median")
		var sum time.Duration
		for _, x := range w.ckDur {
			sum += x
		}
		b.ReportMetric(float64(len(w.ckDur)), w.name+"-checkpoints")
		b.ReportMetric((sum / time.Duration(max(len(w.ckDur), 1))).Seconds(), w.name+"-ckpt-s")
		b.ReportMetric(ms(Summarize(w.snapSync).Max), w.name+"-snap-fsync-max-ms")
	}
}

// lone takes one checkpoint with no writer and returns the bytes it
// allocated and the CPU time the process spent. A checkpoint is taken
// first, unmeasured, as back-to-back checkpoints find one just done.
func lone(ctx context.Context, p *pstateSys) (uint64, time.Duration, error) {
	if err := p.Checkpoint(ctx); err != nil {
		return 0, 0, err
	}
	p.setShare(p.share) // a new checkpointer: the state is written again
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	c0 := cpuTime()
	err := p.Checkpoint(ctx)
	c1 := cpuTime()
	runtime.ReadMemStats(&ms1)
	return ms1.TotalAlloc - ms0.TotalAlloc, c1 - c0, err
}

// writesDuringCheckpoints is latencyDuringCheckpoints without the result
// rows: checkpoints start back to back while the window lasts, and the
// writers go on until the last one ends.
func writesDuringCheckpoints(ctx context.Context, p *pstateSys, g *workload.Generator,
	next *atomic.Int64, window time.Duration) (writeResult, []time.Duration, error) {
	var ds []time.Duration
	var ckErr error
	done := make(chan struct{})
	end := time.Now().Add(window)
	go func() {
		defer close(done)
		ds, ckErr = checkpointLoop(ctx, p, end)
	}()
	res := writeLoad(ctx, p, g, next, 16, func(int64) bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	<-done
	if ckErr == nil {
		ckErr = res.err
	}
	return res, ds, ckErr
}

// startTrace starts a runtime trace into $PSTATE_STALL_TRACE when on is
// set and the variable is, and returns what stops it.
func startTrace(b *testing.B, on bool) func() {
	path := os.Getenv("PSTATE_STALL_TRACE")
	if !on || path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		trace.Stop()
		f.Close()
	}
}

// syncRecorder keeps the durations of the log's fdatasyncs.
type syncRecorder struct {
	mu sync.Mutex
	ds []time.Duration
}

func (s *syncRecorder) add(d time.Duration, _ error) {
	s.mu.Lock()
	s.ds = append(s.ds, d)
	s.mu.Unlock()
}

func (s *syncRecorder) reset() { s.take() }

func (s *syncRecorder) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := s.ds
	s.ds = nil
	return ds
}

// syncTimingFS times the Sync of every file it creates.
type syncTimingFS struct {
	vfs.FS
	rec syncRecorder
}

func (f *syncTimingFS) Create(name string) (vfs.File, error) {
	file, err := f.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &syncTimingFile{File: file, rec: &f.rec}, nil
}

func (f *syncTimingFS) take() []time.Duration { return f.rec.take() }

type syncTimingFile struct {
	vfs.File
	rec *syncRecorder
}

func (f *syncTimingFile) Sync() error {
	t0 := time.Now()
	err := f.File.Sync()
	f.rec.add(time.Since(t0), err)
	return err
}

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
