package pstate

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// benchLog encodes records step events over the jobs of benchState(n), each
// with an id, as the daemon logs them: job i starts and fails attempt r+2 of
// step i%20 in round r.
func benchLog(n, records int) [][]byte {
	out := make([][]byte, 0, records)
	var buf []byte
	for k := 0; len(out) < records; k++ {
		i, r := (k/2)%n, k/(2*n)
		id, step := benchJobID(i), benchStepNames[i%benchSteps]
		e := stepStart(id, step, r+2)
		if k%2 == 1 {
			e = stepEnd(id, step, r+2, StatusFailed)
			e.ExitCode = 1
		}
		e.ID, e.Time = fmt.Sprintf("ev-%d", k), t0
		n0 := len(buf)
		buf = AppendEvent(buf, &e)
		out = append(out, buf[n0:len(buf):len(buf)])
	}
	return out
}

// BenchmarkRecover decodes a snapshot of n jobs (20-attempt histories) and
// replays 1M records after it through a Recovery, reporting the decoded
// snapshot bytes and the records per CPU second and per wall second, and
// apart the CPU time State takes to build the immutable maps at the end.
func BenchmarkRecover(b *testing.B) {
	const records = 1_000_000
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			if n > 100_000 && testing.Short() {
				b.Skip("1M jobs: not under -short")
			}
			var snap bytes.Buffer
			if err := benchState(n).EncodeSnapshot(&snap); err != nil {
				b.Fatal(err)
			}
			log := benchLog(n, records)
			b.ResetTimer()
			var decCPU, repCPU, decWall, repWall, buildCPU time.Duration
			for range b.N {
				cpu0, t0 := cpuTime(), time.Now()
				r, err := DecodeRecovery(bytes.NewReader(snap.Bytes()), 1)
				if err != nil {
					b.Fatal(err)
				}
				cpu1, t1 := cpuTime(), time.Now()
				for i, rec := range log {
					if err := r.Replay(uint64(i+2), rec); err != nil {
						b.Fatal(err)
					}
				}
				cpu2, t2 := cpuTime(), time.Now()
				s := r.State()
				decCPU, repCPU = decCPU+cpu1-cpu0, repCPU+cpu2-cpu1
				decWall, repWall = decWall+t1.Sub(t0), repWall+t2.Sub(t1)
				buildCPU += cpuTime() - cpu2
				if s.Seq() != records+1 {
					b.Fatalf("seq %d", s.Seq())
				}
			}
			mb := float64(snap.Len()) * float64(b.N) / 1e6
			recs := float64(records) * float64(b.N)
			b.ReportMetric(mb/decCPU.Seconds(), "decode-MB/cpu-s")
			b.ReportMetric(mb/decWall.Seconds(), "decode-MB/s")
			b.ReportMetric(recs/repCPU.Seconds(), "records/cpu-s")
			b.ReportMetric(recs/repWall.Seconds(), "records/s")
			// State: the immutable maps built once from the Go maps.
			b.ReportMetric(buildCPU.Seconds()/float64(b.N), "build-cpu-s")
		})
	}
}

// BenchmarkApplyGroup applies step events as the loop does: groups of 4096
// events (two per job) in one draft, committed; records/s per event.
func BenchmarkApplyGroup(b *testing.B) {
	const group = 4096
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			if n > 100_000 && testing.Short() {
				b.Skip("1M jobs: not under -short")
			}
			base := cachedBenchState(n)
			ids := make([]string, n)
			for i := range ids {
				ids[i] = benchJobID(i)
			}
			d := newDraft(base, base.ids.indexIDs())
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			var ms0 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			s, k := base, 0
			for i := 0; i < b.N; {
				d.reset(s)
				for g := 0; g < group && i < b.N; g, i = g+1, i+1 {
					if k == 2*n {
						s, k = d.commit(), 0
						d.reset(base)
					}
					e := stepPair(ids, k, t0)
					if _, err := conflict(d, &e); err != nil {
						b.Fatal(err)
					}
					d.apply(&e, d.seq+1)
					k++
				}
				s = d.commit()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
			// The collector's share, which GOGC and GOMEMLIMIT move.
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.NumGC-ms0.NumGC)*1e6/float64(b.N), "gcs/M-events")
			b.ReportMetric(ms.GCCPUFraction, "gc-cpu-fraction")
		})
		benchStates.Clear()
	}
}
