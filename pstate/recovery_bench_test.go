package pstate

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/pstate/pstate/checkpoint"
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

// BenchmarkRecover measures a recovery of n jobs (20-attempt histories)
// and 1M log records after them, phase by phase, each over the same bytes:
//
//   - unzstd: the snapshot file's decompression and checksums alone;
//   - decode: DecodeRecovery over the decompressed body held in memory;
//   - load: DecodeRecovery over checkpoint.Decode's body, as the daemon
//     loads a snapshot file (decompression and decoding together);
//   - replay: the 1M records through Recovery.Replay;
//   - build: Recovery.State, the immutable maps built once;
//   - all: the 1M records through Recovery.ReplayAll (decoded on a second
//     goroutine), right after a second, untimed load of the snapshot file,
//     as the daemon starts.
//
// Only the decode phase holds the decompressed body in memory: the daemon
// never does, and 742 MB more on the heap would move the collector's
// cycles (their goal is twice the live heap) into the phases after it.
//
// Snapshot rates are MB of decoded body, per CPU second (all goroutines,
// the collector included: the machine is shared, so CPU time is the steadier
// number) and per wall second. total-s is load, replay and build, wall.
// allocs/job counts the decode phase's allocations per job, draft-bytes/job
// the heap the decoded draft holds (after a collection) per job.
func BenchmarkRecover(b *testing.B) {
	const records = 1_000_000
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			if n > 100_000 && testing.Short() {
				b.Skip("1M jobs: not under -short")
			}
			benchRecover(b, n, records)
		})
	}
}

// recoverPhases sums the CPU and wall time of each phase over b's loop.
type recoverPhases struct {
	cpu, wall [6]time.Duration // unzstd, decode, load, replay, build, all
	mallocs   uint64           // decode phase
	live      uint64           // heap bytes the decoded draft holds
}

const (
	phUnzstd = iota
	phDecode
	phLoad
	phReplay
	phBuild
	phAll
)

// time runs fn and adds its CPU and wall time to phase i.
func (p *recoverPhases) time(i int, fn func()) {
	cpu0, t0 := cpuTime(), time.Now()
	fn()
	p.cpu[i] += cpuTime() - cpu0
	p.wall[i] += time.Since(t0)
}

func benchRecover(b *testing.B, n, records int) {
	var body, file bytes.Buffer
	s := benchState(n)
	if err := s.EncodeSnapshot(&body); err != nil {
		b.Fatal(err)
	}
	seq, counts := s.Meta()
	meta := checkpoint.Meta{Seq: seq, Counts: counts}
	if _, err := checkpoint.Encode(&file, meta, s.EncodeSnapshot); err != nil {
		b.Fatal(err)
	}
	s = nil
	bodyLen := body.Len()
	log := benchLog(n, records)
	var p recoverPhases
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if body.Len() == 0 {
			body = unzstdBody(b, file.Bytes())
		}
		runtime.GC()
		b.StartTimer()
		p.time(phUnzstd, func() {
			err := checkpoint.Decode(bytes.NewReader(file.Bytes()),
				func(_ checkpoint.Meta, r io.Reader) error {
					_, err := io.Copy(io.Discard, r)
					return err
				})
			if err != nil {
				b.Fatal(err)
			}
		})
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		var dec *Recovery
		p.time(phDecode, func() {
			var err error
			if dec, err = DecodeRecovery(bytes.NewReader(body.Bytes()), seq); err != nil {
				b.Fatal(err)
			}
		})
		runtime.ReadMemStats(&ms1)
		p.mallocs += ms1.Mallocs - ms0.Mallocs
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&ms1)
		p.live += ms1.HeapAlloc - ms0.HeapAlloc
		runtime.KeepAlive(dec)
		dec = nil
		// The daemon holds no decompressed body: only the decode phase
		// keeps one, so that the collector's work in the phases after it
		// is what a recovery's is.
		body = bytes.Buffer{}
		runtime.GC()
		b.StartTimer()
		var r *Recovery
		p.time(phLoad, func() { r = loadSnapshotFile(b, file.Bytes()) })
		p.time(phReplay, func() {
			for i, rec := range log {
				if err := r.Replay(seq+uint64(i)+1, rec); err != nil {
					b.Fatal(err)
				}
			}
		})
		p.time(phBuild, func() {
			if got := r.State().Seq(); got != seq+uint64(records) {
				b.Fatalf("seq %d", got)
			}
		})
		b.StopTimer()
		r = nil
		runtime.GC()
		// As the daemon starts: the snapshot file loaded, then the log
		// replayed at once (a collection the loading began may run on).
		r = loadSnapshotFile(b, file.Bytes())
		b.StartTimer()
		p.time(phAll, func() {
			if err := replayBenchLog(r, seq, log); err != nil {
				b.Fatal(err)
			}
		})
	}
	mb := float64(bodyLen) * float64(b.N) / 1e6
	recs := float64(records) * float64(b.N)
	for i, name := range []string{"unzstd", "decode", "load"} {
		b.ReportMetric(mb/p.cpu[i].Seconds(), name+"-MB/cpu-s")
		b.ReportMetric(mb/p.wall[i].Seconds(), name+"-MB/s")
	}
	b.ReportMetric(recs/p.cpu[phReplay].Seconds(), "records/cpu-s")
	b.ReportMetric(recs/p.wall[phReplay].Seconds(), "records/s")
	b.ReportMetric(recs/p.cpu[phAll].Seconds(), "all-records/cpu-s")
	b.ReportMetric(recs/p.wall[phAll].Seconds(), "all-records/s")
	b.ReportMetric(p.cpu[phBuild].Seconds()/float64(b.N), "build-cpu-s")
	b.ReportMetric(p.wall[phBuild].Seconds()/float64(b.N), "build-s")
	total := p.wall[phLoad] + p.wall[phReplay] + p.wall[phBuild]
	b.ReportMetric(total.Seconds()/float64(b.N), "total-s")
	b.ReportMetric(float64(p.mallocs)/float64(n)/float64(b.N), "allocs/job")
	b.ReportMetric(float64(p.live)/float64(n)/float64(b.N), "draft-bytes/job")
	b.ReportMetric(float64(bodyLen)/1e6, "body-MB")
}

// replayBenchLog replays log, the records after seq, through ReplayAll with
// its Expect hint, as the daemon starts.
func replayBenchLog(r *Recovery, seq uint64, log [][]byte) error {
	r.Expect(uint64(len(log)))
	return r.ReplayAll(func(fn func(uint64, []byte) error) error {
		for i, rec := range log {
			if err := fn(seq+uint64(i)+1, rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// loadSnapshotFile starts a recovery from a snapshot file held in memory,
// as the daemon loads one (decompression and decoding together).
func loadSnapshotFile(b *testing.B, file []byte) *Recovery {
	var r *Recovery
	err := checkpoint.Decode(bytes.NewReader(file), func(m checkpoint.Meta, body io.Reader) error {
		var err error
		r, err = DecodeRecovery(body, m.Seq)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// unzstdBody returns the body of a snapshot file held in memory.
func unzstdBody(b *testing.B, file []byte) bytes.Buffer {
	var body bytes.Buffer
	err := checkpoint.Decode(bytes.NewReader(file), func(_ checkpoint.Meta, r io.Reader) error {
		_, err := io.Copy(&body, r)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return body
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
			ids := benchJobIDs(n)
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

// BenchmarkReplayAllWindow measures Recovery.ReplayAll alone over the 1M
// records of benchLog after a snapshot of n jobs whose id window holds ids
// (0, or full as the daemon's snapshots are once it has logged a window's
// worth of events: then every record's id evicts the oldest). Each round
// decodes the snapshot untimed; the hint Expect is timed with the replay.
func BenchmarkReplayAllWindow(b *testing.B) {
	const records = 1_000_000
	for _, n := range []int{100_000, 1_000_000} {
		for _, ids := range []int{0, DefaultIDWindow} {
			name := fmt.Sprintf("jobs=%d/ids=%d", n, ids)
			b.Run(name, func(b *testing.B) {
				if n > 100_000 && testing.Short() {
					b.Skip("1M jobs: not under -short")
				}
				benchReplayAll(b, n, ids, records)
			})
		}
	}
}

// withIDWindow returns s holding ids event ids in its window, the last at
// seq s.Seq(), an id a seq, as a daemon that logged only events with ids.
func withIDWindow(s *State, ids int) *State {
	n := *s
	n.seq = max(s.seq, uint64(ids))
	for i := range ids {
		id := fmt.Sprintf("ev-old-%d", i)
		n.ids.push(id, hashID(id), n.seq-uint64(ids-1-i), nil)
	}
	return &n
}

func benchReplayAll(b *testing.B, n, ids, records int) {
	var body bytes.Buffer
	s := withIDWindow(benchState(n), ids)
	if err := s.EncodeSnapshot(&body); err != nil {
		b.Fatal(err)
	}
	seq := s.Seq()
	s = nil
	log := benchLog(n, records)
	var cpu, wall time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		r, err := DecodeRecovery(bytes.NewReader(body.Bytes()), seq)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.StartTimer()
		cpu0, t0 := cpuTime(), time.Now()
		if err := replayBenchLog(r, seq, log); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - cpu0
		wall += time.Since(t0)
		b.StopTimer()
		if got := r.State(); got.Seq() != seq+uint64(records) ||
			got.ids.len() != min(ids+records, DefaultIDWindow) {
			b.Fatalf("seq %d, %d ids", got.Seq(), got.ids.len())
		}
		b.StartTimer()
	}
	recs := float64(records) * float64(b.N)
	b.ReportMetric(recs/cpu.Seconds(), "all-records/cpu-s")
	b.ReportMetric(recs/wall.Seconds(), "all-records/s")
}
