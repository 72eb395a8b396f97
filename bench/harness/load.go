package harness

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pstate/pstate/internal/workload"
)

// writeResult is what a write load measured.
type writeResult struct {
	lat    []time.Duration // one per batch
	events int64
	dur    time.Duration
	err    error
}

// writeLoad runs writers goroutines, each taking the next unused job number
// from next and submitting that job's events one batch of one event at a
// time, as workers report, until stop returns true (checked before each
// batch, given the events written so far) or a write fails.
func writeLoad(ctx context.Context, sys System, g *workload.Generator, next *atomic.Int64,
	writers int, stopAt func(events int64) bool) writeResult {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lats := make([][]time.Duration, writers)
	var events atomic.Int64
	var once sync.Once
	var firstErr error
	var wg sync.WaitGroup
	stop := func() bool { return stopAt(events.Load()) }
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			var evs []workload.Event
			for ctx.Err() == nil && !stop() {
				evs = g.AppendJob(evs[:0], int(next.Add(1)-1))
				for i := range evs {
					if ctx.Err() != nil || stop() {
						return
					}
					t0 := time.Now()
					if err := sys.Submit(ctx, evs[i:i+1]); err != nil {
						once.Do(func() { firstErr = err; cancel() })
						return
					}
					lats[w] = append(lats[w], time.Since(t0))
					events.Add(1)
				}
			}
		})
	}
	wg.Wait()
	res := writeResult{events: events.Load(), dur: time.Since(start), err: firstErr}
	for _, l := range lats {
		res.lat = append(res.lat, l...)
	}
	return res
}

// readLoad runs readers goroutines reading random loaded jobs until stop.
func readLoad(ctx context.Context, sys System, ls *LoadSet, readers int,
	stopAt func(int64) bool) ([]time.Duration, error) {
	stop := func() bool { return stopAt(0) }
	lats := make([][]time.Duration, readers)
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 99))
			for ctx.Err() == nil && !stop() {
				id := ls.Jobs[rng.IntN(len(ls.Jobs))].ID
				t0 := time.Now()
				if err := sys.Read(ctx, id); err != nil {
					errs[r] = err
					return
				}
				lats[r] = append(lats[r], time.Since(t0))
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	for r, l := range lats {
		if errs[r] != nil {
			return nil, errs[r]
		}
		all = append(all, l...)
	}
	return all, nil
}

// checkpointLoop takes checkpoints back to back, starting each while the
// window (until end) lasts, and always at least one; it returns their
// durations.
func checkpointLoop(ctx context.Context, sys System, end time.Time) ([]time.Duration, error) {
	var ds []time.Duration
	for len(ds) == 0 || time.Now().Before(end) {
		t0 := time.Now()
		if err := sys.Checkpoint(ctx); err != nil {
			return ds, err
		}
		ds = append(ds, time.Since(t0))
	}
	return ds, nil
}

func deadline(d time.Duration) func(int64) bool {
	end := time.Now().Add(d)
	return func(int64) bool { return time.Now().After(end) }
}

func count(n int64) func(int64) bool {
	return func(events int64) bool { return events >= n }
}
