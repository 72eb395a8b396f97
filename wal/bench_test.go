package wal

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pstate/pstate/wal/vfs"
)

// The benchmarks run on the real disk: b.TempDir is under the system's
// temporary directory. The Disk benchmarks measure the disk itself with
// the same fdatasync the log uses, so the log's numbers can be read
// against them.

const benchRecord = 4 << 10

// BenchmarkDiskSync appends a chunk and fdatasyncs, in a loop: the raw
// fdatasync rate (4KiB) and the synced write bandwidth (1MiB).
func BenchmarkDiskSync(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("chunk=%s", sizeName(int64(size))), func(b *testing.B) {
			f, err := vfs.OS.Create(filepath.Join(b.TempDir(), "raw"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fdatasyncs/s")
		})
	}
}

// syncedBandwidth measures the disk's synced write bandwidth in bytes/s
// with 1 MiB appends and fdatasync, like BenchmarkDiskSync, for about d
// and at least 16 MiB.
func syncedBandwidth(b *testing.B, d time.Duration) float64 {
	f, err := vfs.OS.Create(filepath.Join(b.TempDir(), "calibrate"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	start := time.Now()
	n := 0
	for ; n < 16 || time.Since(start) < d; n++ {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) * float64(len(buf)) / time.Since(start).Seconds()
}

// BenchmarkAppend measures durable appends (SyncAlways, group commit) of
// 4 KiB records by 1, 16 and 256 concurrent appenders, and reports the
// bandwidth as a share of the disk's synced bandwidth, measured right
// after the appends for as long as they ran (outside the timer), because
// a shared disk drifts and a short burst flatters it.
func BenchmarkAppend(b *testing.B) {
	for _, conc := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("appenders=%d", conc), func(b *testing.B) {
			var syncs atomic.Int64
			l, err := Open(b.TempDir(), Options{OnSync: func(time.Duration, error) { syncs.Add(1) }})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			payload := make([]byte, benchRecord)
			var left atomic.Int64
			left.Store(int64(b.N))
			b.SetBytes(benchRecord)
			syncs.Store(0)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for left.Add(-1) >= 0 {
						if _, _, err := l.Append([][]byte{payload}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			disk := syncedBandwidth(b, b.Elapsed())
			secs := b.Elapsed().Seconds()
			bw := float64(b.N) * benchRecord / secs
			b.ReportMetric(float64(b.N)/secs, "appends/s")
			b.ReportMetric(float64(syncs.Load())/secs, "fdatasyncs/s")
			b.ReportMetric(float64(b.N)/float64(max(syncs.Load(), 1)), "records/fdatasync")
			b.ReportMetric(disk/1e6, "disk-MB/s")
			b.ReportMetric(100*bw/disk, "%disk-bw")
		})
	}
}

// BenchmarkTruncateLock truncates a log of 1 MiB, 64 MiB and 512 MiB while
// 16 appenders append 4 KiB records durably; each truncation keeps the
// size, dropping what was appended since the last. It reports how long
// each hold of the log's lock by the truncation lasted.
func BenchmarkTruncateLock(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20, 512 << 20} {
		if size > 64<<20 && testing.Short() {
			continue
		}
		dir := b.TempDir()
		buildLog(b, dir, size)
		var mu sync.Mutex
		var holds []time.Duration
		l, err := Open(dir, Options{OnTruncateLock: func(d time.Duration) {
			mu.Lock()
			holds = append(holds, d)
			mu.Unlock()
		}})
		if err != nil {
			b.Fatal(err)
		}
		keep := uint64(size / (benchRecord + recordHeaderSize))
		b.Run("log="+sizeName(size), func(b *testing.B) {
			mu.Lock()
			holds = holds[:0]
			mu.Unlock()
			stop := runAppenders(b, l, 16)
			b.ResetTimer()
			for range b.N {
				if err := l.TruncateBefore(l.NextSeq() - keep); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			appended := stop()
			mu.Lock()
			defer mu.Unlock()
			slices.Sort(holds)
			µs := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			q := func(p float64) float64 { return µs(holds[int(p*float64(len(holds)-1))]) }
			b.ReportMetric(q(0.5), "lock-p50-µs")
			b.ReportMetric(q(0.99), "lock-p99-µs")
			b.ReportMetric(µs(holds[len(holds)-1]), "lock-max-µs")
			b.ReportMetric(float64(len(holds)), "lock-holds")
			b.ReportMetric(float64(appended)/b.Elapsed().Seconds(), "appends/s")
		})
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// buildLog writes a log of about size bytes of 4 KiB records.
func buildLog(b *testing.B, dir string, size int64) {
	l, err := Open(dir, Options{Sync: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([][]byte, 256)
	for i := range batch {
		batch[i] = make([]byte, benchRecord)
	}
	for l.Size() < size {
		if _, _, err := l.Write(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}

// runAppenders starts n appenders; the returned func stops them and
// returns how many records they appended.
func runAppenders(b *testing.B, l *Log, n int) func() int64 {
	var count atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	payload := make([]byte, benchRecord)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := l.Append([][]byte{payload}); err != nil {
					b.Error(err)
					return
				}
				count.Add(1)
			}
		}()
	}
	return func() int64 {
		close(stop)
		wg.Wait()
		return count.Load()
	}
}

func sizeName(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}
