package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pstate/pstate/internal/workload"
)

// Config is one run's plan.
type Config struct {
	Mode        string        // "quick" or "full", recorded in the results
	Dir         string        // scratch directory; every system gets one below it
	Pstated     string        // path of the built daemon; "" leaves pstate-http out
	RedisServer string        // path of redis-server; "" leaves redis out
	Systems     []string      // which systems run (default all)
	Seed        uint64        // workload seed
	Sizes       []int         // jobs loaded before scenarios 1, 4, 5, 6
	Steps       int           // steps of every loaded and written job
	Window      time.Duration // each latency window
	TputWindow  time.Duration // each throughput window
	Writers     int           // writers of the latency windows
	Readers     int           // readers of scenario 5
	TputWriters []int         // writer counts of scenario 3
	LogSizes    []int64       // log sizes of scenario 2
	DiskTime    time.Duration // each disk measurement
	Tail        int64         // events written after the last checkpoint before scenario 4
	Scenarios   string        // which of "123456" run (default all)
	Log         io.Writer     // progress
}

// QuickConfig is `make bench-quick`: every scenario, small, under a minute.
func QuickConfig() Config {
	return Config{Mode: "quick", Seed: 1, Sizes: []int{2000}, Steps: 20,
		Window: 700 * time.Millisecond, TputWindow: 500 * time.Millisecond, Writers: 16,
		Readers: 4, TputWriters: []int{1, 16, 256}, LogSizes: []int64{4 << 20, 16 << 20},
		DiskTime: 300 * time.Millisecond, Tail: 1000}
}

// FullConfig is `make bench`: 100k jobs, which fits in ten minutes on two
// cores. A run at 1M jobs takes `-sizes 1000000` and far longer (see
// docs/BENCHMARKS.md).
func FullConfig() Config {
	return Config{Mode: "full", Seed: 1, Sizes: []int{100_000}, Steps: 20,
		Window: 3 * time.Second, TputWindow: 2 * time.Second, Writers: 16, Readers: 4,
		TputWriters: []int{1, 16, 256}, LogSizes: []int64{8 << 20, 32 << 20, 128 << 20},
		DiskTime: time.Second, Tail: 10_000}
}

// AllSystems lists the systems in the order they run.
var AllSystems = []string{"pstate", "pstate-http", "baseline", "sqlite", "redis"}

func (c *Config) runs(scenario byte) bool {
	return c.Scenarios == "" || strings.IndexByte(c.Scenarios, scenario) >= 0
}

func (c *Config) wants(name string) bool {
	return len(c.Systems) == 0 || slices.Contains(c.Systems, name)
}

// Run runs every scenario and returns the results.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	res := &Results{Mode: cfg.Mode, Started: time.Now().UTC(), log: cfg.Log,
		Machine: describeMachine(cfg.Dir)}
	start := time.Now()
	fmt.Fprintf(cfg.Log, "machine: %+v\n", res.Machine)

	disk, err := measureDisk(cfg.Dir, cfg.DiskTime)
	if err != nil {
		return nil, fmt.Errorf("measure disk: %w", err)
	}
	res.Add("0 disk", "disk", "fdatasync rate (128 B appends)", disk.SyncsPerSec, "ops/s")
	res.Add("0 disk", "disk", "fdatasync rate (4 KiB rewrites in place)", disk.OverwritePerSec,
		"ops/s")
	res.Add("0 disk", "disk", "synced bandwidth (1 MiB appends)", disk.SyncedMBps, "MiB/s")

	g, err := workload.New(workload.Config{Seed: cfg.Seed, MinSteps: cfg.Steps, MaxSteps: cfg.Steps})
	if err != nil {
		return nil, err
	}
	if cfg.RedisServer == "" && cfg.wants("redis") {
		res.Note("redis skipped: redis-server is not installed (make bench installs it)")
	}
	if cfg.Pstated == "" && cfg.wants("pstate-http") {
		res.Note("pstate-http skipped: no pstated binary given")
	}
	for i, size := range cfg.Sizes {
		if err := runSize(ctx, cfg, res, g, size, i == 0, disk); err != nil {
			return res, err
		}
	}
	if cfg.runs('2') {
		if err := runTruncation(ctx, cfg, res, g, disk); err != nil {
			res.Note("truncation scenario failed: %v", err)
		}
	}
	res.Elapsed = time.Since(start).Seconds()
	return res, ctx.Err()
}

func (c *Config) newSystem(name, dir string) System {
	switch name {
	case "pstate":
		return newPstate(dir)
	case "pstate-http":
		if c.Pstated != "" {
			return newHTTP(c.Pstated, dir)
		}
	case "baseline":
		return newBaseline(dir)
	case "sqlite":
		return newSQLite(dir)
	case "redis":
		if c.RedisServer != "" {
			return newRedis(c.RedisServer, dir)
		}
	}
	return nil
}

func heapInUse() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func sizeLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// runSize loads size jobs into each system in turn and runs scenarios 1,
// 5, 6 and 4 on it (and 3 when tput is set).
func runSize(ctx context.Context, cfg Config, res *Results, g *workload.Generator, size int,
	tput bool, disk Disk) error {
	t0 := time.Now()
	ls, err := buildLoadSet(g, size, time.Now().UTC())
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Log, "load set of %d jobs (%d live, %d events of history) built in %v\n",
		size, len(ls.Jobs), ls.Events, time.Since(t0).Round(time.Millisecond))
	if cfg.runs('1') {
		// No durable write can answer before one fdatasync of the log.
		floor := 1000 / disk.SyncsPerSec
		for _, m := range []string{"no checkpoint p50", "during checkpoints p50"} {
			res.Add("1 write latency @"+sizeLabel(size), "disk", m, floor, "ms")
		}
	}
	for _, name := range AllSystems {
		if !cfg.wants(name) {
			continue
		}
		dir := filepath.Join(cfg.Dir, sizeLabel(size), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if need := baselinePeak(size); name == "baseline" && need > memAvailable() {
			res.Note("baseline skipped at %s jobs: its checkpoint needs about %d GiB "+
				"(state, deep clone and gob's whole encoding at once), more than is free",
				sizeLabel(size), need>>30)
			continue
		}
		sys := cfg.newSystem(name, dir)
		if sys == nil {
			continue
		}
		err := runSystem(ctx, cfg, res, g, ls, size, sys, tput, disk)
		if cerr := sys.Close(); err == nil && cerr != nil {
			err = cerr
		}
		os.RemoveAll(dir)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res.Note("%s at %s jobs: %v", name, sizeLabel(size), err)
		}
	}
	return nil
}

func runSystem(ctx context.Context, cfg Config, res *Results, g *workload.Generator,
	ls *LoadSet, size int, sys System, tput bool, disk Disk) error {
	name, at := sys.Name(), " @"+sizeLabel(size)
	fmt.Fprintf(cfg.Log, "== %s, %s jobs\n", name, sizeLabel(size))
	heap0 := heapInUse()
	t0 := time.Now()
	if err := sys.Load(ctx, ls); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	fmt.Fprintf(cfg.Log, "   loaded in %v\n", time.Since(t0).Round(time.Millisecond))

	// 6: footprint, right after the load, when every system holds the same
	// jobs.
	mem, diskBytes, err := sys.Footprint()
	if err != nil {
		return fmt.Errorf("footprint: %w", err)
	}
	if mem < 0 {
		mem = heapInUse() - heap0
	}
	jobs := float64(len(ls.Jobs))
	if mem > 0 {
		res.Add("6 footprint"+at, name, "memory per job", float64(mem)/jobs, "B")
	}
	res.Add("6 footprint"+at, name, "disk per job", float64(diskBytes)/jobs, "B")

	next := &atomic.Int64{}
	next.Store(int64(size))

	// 1: write latency, without and during checkpoints.
	if cfg.runs('1') {
		w := writeLoad(ctx, sys, g, next, cfg.Writers, deadline(cfg.Window))
		if w.err != nil {
			return fmt.Errorf("writes: %w", w.err)
		}
		res.addLatency("1 write latency"+at, name, "no checkpoint ", Summarize(w.lat))
		if err := latencyDuringCheckpoints(ctx, cfg, res, g, next, sys, at); err != nil {
			return err
		}
	}

	// 3: durable events/s by writer count.
	if tput && cfg.runs('3') {
		for _, n := range cfg.TputWriters {
			var size0 int64
			p, isPstate := sys.(*pstateSys)
			if isPstate {
				size0 = p.log.Size()
			}
			w := writeLoad(ctx, sys, g, next, n, deadline(cfg.TputWindow))
			if w.err != nil {
				return fmt.Errorf("throughput with %d writers: %w", n, w.err)
			}
			rate := float64(w.events) / w.dur.Seconds()
			res.Add("3 durable events/s"+at, name, fmt.Sprintf("%d writers", n), rate, "events/s")
			if isPstate && w.events > 0 {
				// The disk's bound for these records: one fdatasync per
				// event for one writer, the synced bandwidth otherwise.
				perEvent := float64(p.log.Size()-size0) / float64(w.events)
				bound := disk.SyncsPerSec
				if n > 1 {
					bound = disk.SyncedMBps * (1 << 20) / perEvent
				}
				res.Add("3 durable events/s"+at, "disk", fmt.Sprintf("%d writers", n), bound, "events/s")
				mibs := float64(p.log.Size()-size0) / w.dur.Seconds() / (1 << 20)
				res.Add("3 durable events/s"+at, name, fmt.Sprintf("log MiB/s, %d writers", n), mibs, "MiB/s")
				res.Add("3 durable events/s"+at, name,
					fmt.Sprintf("share of synced bandwidth, %d writers", n), 100*mibs/disk.SyncedMBps, "%")
			}
		}

	}

	// 5: read latency under full write load.
	if cfg.runs('5') {
		if err := readsUnderLoad(ctx, cfg, res, g, ls, next, sys, at); err != nil {
			return err
		}
	}
	if cfg.runs('4') {
		return recovery(ctx, cfg, res, g, ls, next, sys, at)
	}
	return nil
}

// recovery is scenario 4: a checkpoint, then the same tail of events for
// every system, then a crash (or close) and the time until the first
// query is answered.
func recovery(ctx context.Context, cfg Config, res *Results, g *workload.Generator,
	ls *LoadSet, next *atomic.Int64, sys System, at string) error {
	if err := sys.Checkpoint(ctx); err != nil {
		return fmt.Errorf("checkpoint before the tail: %w", err)
	}
	if w := writeLoad(ctx, sys, g, next, cfg.Writers, count(cfg.Tail)); w.err != nil {
		return fmt.Errorf("tail: %w", w.err)
	}
	d, err := sys.Recover(ctx, ls.Jobs[0].ID)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	name := sys.Name()
	res.Add("4 recovery"+at, name, fmt.Sprintf("restart to first answer (%d-event tail)", cfg.Tail),
		d.Seconds(), "s")
	if s, ok := sys.(*sqliteSys); ok {
		res.Add("4 recovery"+at, name, "then status counts query", s.statusQuery.Seconds(), "s")
	}
	return nil
}

// latencyDuringCheckpoints runs the write load while checkpoints run back
// to back: they start while the window lasts, at least one, and the writes
// go on until the last one ends.
func latencyDuringCheckpoints(ctx context.Context, cfg Config, res *Results,
	g *workload.Generator, next *atomic.Int64, sys System, at string) error {
	end := time.Now().Add(cfg.Window)
	var ckDur []time.Duration
	var ckErr error
	ckDone := make(chan struct{})
	go func() {
		defer close(ckDone)
		ckDur, ckErr = checkpointLoop(ctx, sys, end)
	}()
	// The writers run as long as checkpoints do.
	w := writeLoad(ctx, sys, g, next, cfg.Writers, func(int64) bool {
		select {
		case <-ckDone:
			return true
		default:
			return false
		}
	})
	<-ckDone
	if ckErr != nil {
		return fmt.Errorf("checkpoint: %w", ckErr)
	}
	if w.err != nil {
		return fmt.Errorf("writes during checkpoints: %w", w.err)
	}
	name := sys.Name()
	res.addLatency("1 write latency"+at, name, "during checkpoints ", Summarize(w.lat))
	res.Add("1 write latency"+at, name, "checkpoints taken", float64(len(ckDur)), "")
	if len(ckDur) > 0 {
		var sum time.Duration
		for _, d := range ckDur {
			sum += d
		}
		res.Add("1 write latency"+at, name, "checkpoint duration (mean)",
			(sum / time.Duration(len(ckDur))).Seconds(), "s")
	}
	return nil
}

func readsUnderLoad(ctx context.Context, cfg Config, res *Results, g *workload.Generator,
	ls *LoadSet, next *atomic.Int64, sys System, at string) error {
	stop := deadline(cfg.Window)
	var w writeResult
	wdone := make(chan struct{})
	go func() {
		w = writeLoad(ctx, sys, g, next, cfg.Writers, stop)
		close(wdone)
	}()
	lat, err := readLoad(ctx, sys, ls, cfg.Readers, stop)
	<-wdone
	if err == nil {
		err = w.err
	}
	if err != nil {
		return fmt.Errorf("reads under load: %w", err)
	}
	s := Summarize(lat)
	name := sys.Name()
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	res.Add("5 reads under write load"+at, name, "read p50", ms(s.P50), "ms")
	res.Add("5 reads under write load"+at, name, "read p99", ms(s.P99), "ms")
	res.Add("5 reads under write load"+at, name, "reads/s", float64(s.N)/cfg.Window.Seconds(),
		"reads/s")
	res.Add("5 reads under write load"+at, name, "writes/s meanwhile",
		float64(w.events)/w.dur.Seconds(), "events/s")
	return nil
}

// baselinePeak estimates the baseline's memory at its checkpoint: at 1M
// jobs it reached 23 GB.
func baselinePeak(jobs int) int64 { return int64(jobs) * 24 << 10 }

// memAvailable reads MemAvailable from /proc/meminfo, or returns a very
// large number when it cannot.
func memAvailable() int64 {
	var kb int64
	if v := firstMatch("/proc/meminfo", "MemAvailable"); v != "" {
		fmt.Sscanf(v, "%d", &kb)
	}
	if kb == 0 {
		return 1 << 62
	}
	return kb << 10
}
