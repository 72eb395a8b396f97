package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pstate/pstate/bench/baseline"
	"github.com/pstate/pstate/internal/workload"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
)

// runTruncation is scenario 2: how long a log truncation holds the log
// lock, by log size. Each log is filled to the size, then truncated before
// the record where it crossed half the size, as a checkpoint taken then
// would: the second half was written while the snapshot was being written.
func runTruncation(ctx context.Context, cfg Config, res *Results, g *workload.Generator,
	disk Disk) error {
	for _, size := range cfg.LogSizes {
		label := fmt.Sprintf("2 truncation lock hold @%d MiB log", size>>20)
		// Copying the kept half and syncing it cannot beat the disk's
		// synced bandwidth.
		res.Add(label, "disk", "whole truncation", float64(size/2)/(1<<20)/disk.SyncedMBps*1000, "ms")
		if cfg.wants("pstate") {
			hold, total, err := truncatePstate(filepath.Join(cfg.Dir, "trunc-pstate"), g, size)
			if err != nil {
				return fmt.Errorf("pstate log of %d MiB: %w", size>>20, err)
			}
			res.Add(label, "pstate", "log lock held", ms(hold), "ms")
			res.Add(label, "pstate", "whole truncation", ms(total), "ms")
		}
		if cfg.wants("baseline") {
			hold, total, err := truncateBaseline(filepath.Join(cfg.Dir, "trunc-baseline"), g, size)
			if err != nil {
				return fmt.Errorf("baseline log of %d MiB: %w", size>>20, err)
			}
			res.Add(label, "baseline", "log lock held", ms(hold), "ms")
			res.Add(label, "baseline", "whole truncation", ms(total), "ms")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func truncatePstate(dir string, g *workload.Generator, size int64,
) (hold, total time.Duration, err error) {
	defer os.RemoveAll(dir)
	log, err := wal.Open(dir, wal.Options{Sync: wal.SyncAlways,
		OnTruncateLock: func(d time.Duration) { hold = d }})
	if err != nil {
		return 0, 0, err
	}
	defer log.Close()
	s := g.Stream(0, 1<<30, 64)
	mid, last := uint64(0), uint64(0)
	now := time.Now()
	payloads := make([][]byte, 1000)
	for log.Size() < size {
		for i := range payloads {
			e, _ := s.Next()
			pe := toPstate(&e)
			pe.Time = now
			payloads[i] = pstate.AppendEvent(payloads[i][:0], &pe)
		}
		if _, last, err = log.Write(payloads); err != nil {
			return 0, 0, err
		}
		if mid == 0 && log.Size() >= size/2 {
			mid = last + 1
		}
	}
	if err := log.WaitDurable(last); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := log.TruncateBefore(mid); err != nil {
		return 0, 0, err
	}
	return hold, time.Since(t0), nil
}

func truncateBaseline(dir string, g *workload.Generator, size int64,
) (hold, total time.Duration, err error) {
	defer os.RemoveAll(dir)
	eng, err := baseline.Open(dir, baseline.Options{NoSync: true})
	if err != nil {
		return 0, 0, err
	}
	defer eng.Close()
	// The same events in the same batches; one record per batch.
	s := g.Stream(0, 1<<30, 64)
	mid := uint64(0)
	batch := make([]workload.Event, 1000)
	for eng.LogSize() < size {
		for i := range batch {
			batch[i], _ = s.Next()
		}
		r, err := eng.Submit(batch)
		if err != nil {
			return 0, 0, err
		}
		if mid == 0 && eng.LogSize() >= size/2 {
			mid = r[len(r)-1].Seq + 1
		}
	}
	t0 := time.Now()
	hold, err = eng.TruncateLog(mid)
	return hold, time.Since(t0), err
}
