package pstate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const benchSteps = 20

var benchStepNames = func() []string {
	s := make([]string, benchSteps)
	for i := range s {
		s[i] = fmt.Sprintf("step-%02d", i)
	}
	return s
}()

func benchJobID(i int) string { return fmt.Sprintf("job-%08d", i) }

// benchJobIDs returns the ids of benchState(n)'s jobs, in order.
func benchJobIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = benchJobID(i)
	}
	return ids
}

// benchState builds n running jobs, each with 20 declared steps whose first
// attempt failed (a 20-attempt history), two labels and one workspace, with
// the builders (as a snapshot load does).
func benchState(n int) *State {
	b := newBuildDraft(1, DefaultIDWindow)
	at := t0.UnixNano()
	for i := range n {
		j := &job{
			id: benchJobID(i), name: "build", worker: "worker-1", state: jsRunning,
			labels:    []label{{"pool", fmt.Sprint(i % 8)}, {"team", "core"}},
			steps:     benchStepNames,
			submitted: at, started: at, workspaces: []string{"ws-" + benchJobID(i)},
		}
		j.attempts = make([]attempt, benchSteps)
		for s := range j.attempts {
			j.attempts[s] = attempt{started: at, finished: at + 1, num: 1, exit: 1,
				step: uint16(s), status: asFailed}
		}
		b.addJob(j)
	}
	for i := range n {
		id := benchJobID(i)
		if err := b.addWorkspace(&workspace{id: "ws-" + id, jobID: id, path: "/w/" + id,
			allocated: at}); err != nil {
			panic(err)
		}
	}
	return b.buildState()
}

var benchStates sync.Map // n -> *State: immutable, so runs share it

// cachedBenchState builds benchState(n) once: the benchmark function runs
// several times while b.N is calibrated.
func cachedBenchState(n int) *State {
	if s, ok := benchStates.Load(n); ok {
		return s.(*State)
	}
	s := benchState(n)
	benchStates.Store(n, s)
	return s
}

// stepPair returns the k-th step event of a round over n jobs of the bench
// state: job k/2 starts attempt 2 of a step, then fails it.
func stepPair(ids []string, k int, at time.Time) Event {
	i := (k / 2) % len(ids)
	step := benchStepNames[i%benchSteps]
	if k%2 == 0 {
		return Event{Type: TypeStepStarted, Time: at, JobID: ids[i], Step: step, Attempt: 2}
	}
	return Event{Type: TypeStepFinished, Time: at, JobID: ids[i], Step: step, Attempt: 2,
		Status: StatusFailed, ExitCode: 1}
}

func BenchmarkApply(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			if n > 100_000 && testing.Short() {
				b.Skip("1M jobs: not under -short")
			}
			base := cachedBenchState(n)
			ids := benchJobIDs(n)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			s, k := base, 0
			for i := range b.N {
				if k == 2*n {
					// A round gave every job one more attempt; start over
					// from the base so histories stay at 20-21 attempts.
					s, k = base, 0
				}
				e := stepPair(ids, k, t0)
				s = Apply(s, &e, uint64(i)+2)
				k++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
			runtime.KeepAlive(s)
		})
		benchStates.Clear() // do not make later benchmarks' GC mark 1M jobs
	}
}

// plainCopy holds the same jobs and workspaces in plain Go maps: what the
// state would cost without persistence and indexes.
func plainCopy(s *State) (map[string]*job, map[string]*workspace) {
	jobs := make(map[string]*job)
	it := s.jobs.Iterator()
	for !it.Done() {
		id, j, _ := it.Next()
		c := *j
		c.labels, c.steps = slices.Clone(j.labels), slices.Clone(j.steps)
		c.attempts, c.workspaces = slices.Clone(j.attempts), slices.Clone(j.workspaces)
		jobs[id] = &c
	}
	ws := make(map[string]*workspace)
	wit := s.ws.Iterator()
	for !wit.Done() {
		id, w, _ := wit.Next()
		c := *w
		ws[id] = &c
	}
	return jobs, ws
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMemoryPerJob builds jobs through Apply (as the live state grows)
// and reports the heap per job against the same data in plain maps.
func BenchmarkMemoryPerJob(b *testing.B) {
	n := 20_000
	if !testing.Short() {
		n = 100_000
	}
	for range b.N {
		before := heapAlloc()
		s := NewState()
		seq := uint64(0)
		step := func(e Event) {
			seq++
			e.Time = t0
			s = Apply(s, &e, seq)
		}
		for i := range n {
			id := benchJobID(i)
			step(Event{Type: TypeJobSubmitted, ID: "e-" + id, JobID: id, Name: "build",
				Steps: benchStepNames, Labels: map[string]string{"team": "core",
					"pool": fmt.Sprint(i % 8)}})
			step(start(id))
			step(alloc("ws-"+id, id))
			for _, st := range benchStepNames {
				step(stepStart(id, st, 1))
				step(stepEnd(id, st, 1, StatusFailed))
			}
		}
		state := heapAlloc() - before
		jobs, ws := plainCopy(s)
		plain := heapAlloc() - before - state
		runtime.KeepAlive(s)
		runtime.KeepAlive(jobs)
		runtime.KeepAlive(ws)
		b.ReportMetric(float64(state)/float64(n), "state-bytes/job")
		b.ReportMetric(float64(plain)/float64(n), "plain-bytes/job")
		b.ReportMetric(float64(state)/float64(plain), "ratio")
	}
}

// BenchmarkEngineSubmit: events per second through the whole loop (validate,
// effects, encode, Write, publish) with a log that costs nothing.
func BenchmarkEngineSubmit(b *testing.B) {
	const n, writers, per = 10_000, 4, 100
	e := Start(benchState(n), &nopLog{next: 2}, Options{})
	defer e.Close()
	b.ResetTimer()
	runWriters(b, e, n, writers, per, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// runWriters submits total step events in requests of per events from
// writers goroutines, each owning its own jobs, and stops when stop closes
// (nil: after total).
func runWriters(b *testing.B, e *Engine, n, writers, per, total int) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writerLoop(b, e, n, w, writers, per, total/writers, nil)
		}()
	}
	wg.Wait()
}

// writerLoop cycles over the jobs w, w+writers, ...: each round starts and
// fails the next attempt of one step per job.
func writerLoop(b *testing.B, e *Engine, n, w, writers, per, total int, stop chan struct{}) {
	var mine []string
	for i := w; i < n; i += writers {
		mine = append(mine, benchJobID(i))
	}
	attempt, k, sent := 2, 0, 0
	batch := make([]Event, 0, per)
	for stop != nil || sent < total {
		select {
		case <-stop:
			return
		default:
		}
		batch = batch[:0]
		for len(batch) < per {
			id := mine[k%len(mine)]
			st := benchStepNames[(k/len(mine))%benchSteps]
			batch = append(batch, stepStart(id, st, attempt),
				stepEnd(id, st, attempt, StatusFailed))
			if k++; k%(len(mine)*benchSteps) == 0 {
				attempt++
			}
		}
		if _, err := e.Submit(context.Background(), batch); err != nil {
			b.Error(err)
			return
		}
		sent += len(batch)
	}
}

// BenchmarkReadLatency: p99 of a Job point read and of a 100-job listing
// while writers keep the loop busy.
func BenchmarkReadLatency(b *testing.B) {
	const n = 10_000
	e := Start(benchState(n), &nopLog{next: 2}, Options{})
	defer e.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writerLoop(b, e, n, w, 2, 100, 0, stop)
		}()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	point := make([]time.Duration, 0, b.N)
	list := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		if _, ok := e.Root().Job(benchJobID(rng.IntN(n))); !ok {
			b.Fatal("job missing")
		}
		point = append(point, time.Since(t))
		t = time.Now()
		jobs, _ := e.Root().Jobs(JobQuery{After: benchJobID(rng.IntN(n - 200)), Limit: 100})
		list = append(list, time.Since(t))
		if len(jobs) != 100 {
			b.Fatalf("%d jobs listed", len(jobs))
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(pct(point, 0.99).Nanoseconds()), "job-p99-ns")
	b.ReportMetric(float64(pct(list, 0.99).Nanoseconds()), "list100-p99-ns")
	b.ReportMetric(float64(pct(point, 0.5).Nanoseconds()), "job-p50-ns")
	b.ReportMetric(float64(pct(list, 0.5).Nanoseconds()), "list100-p50-ns")
}

// cpuTime is the CPU time of the whole process (GC included): on a shared
// machine, events per CPU second say more than events per wall second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[int(float64(len(d)-1)*p)]
}

// BenchmarkMapSetFloor is the floor under BenchmarkApply: one bare Set of a
// job into the same hash map at the same size, the least a step event can
// cost with this map. Run it beside BenchmarkApply on the same machine.
func BenchmarkMapSetFloor(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			if n > 100_000 && testing.Short() {
				b.Skip("1M jobs: not under -short")
			}
			base := cachedBenchState(n)
			ids := benchJobIDs(n)
			j, _ := base.jobs.Get(ids[0])
			b.ReportAllocs()
			b.ResetTimer()
			m := base.jobs
			for i := range b.N {
				m = m.Set(ids[i%n], j)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sets/s")
			runtime.KeepAlive(m)
		})
		benchStates.Clear()
	}
}

// BenchmarkCapture measures what a checkpoint's capture costs the daemon:
// one atomic load of the published root and its Meta (seq and counts). It
// must stay flat as the state grows.
func BenchmarkCapture(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			if n > 100_000 && testing.Short() {
				b.Skip("1M jobs: not under -short")
			}
			var root atomic.Pointer[State]
			root.Store(cachedBenchState(n))
			b.ReportAllocs()
			b.ResetTimer()
			var total uint64
			for range b.N {
				_, counts := root.Load().Meta()
				total += counts["jobs.running"]
			}
			if total != uint64(b.N)*uint64(n) {
				b.Fatalf("counted %d running jobs over %d captures of %d", total, b.N, n)
			}
		})
	}
}

// BenchmarkIDWindowGC: the cost a full id window (1M ids, as the event loop
// holds it: the window and its index) adds to each garbage collection.
func BenchmarkIDWindowGC(b *testing.B) {
	const n = 1 << 20
	s := NewStateWithIDWindow(n)
	d := newDraft(s, s.ids.indexIDs())
	for i := range n + n/4 { // past full: evictions too
		d.addID("load-8f3k2-c"+strconv.Itoa(i%64)+"-e"+strconv.Itoa(i), uint64(i+1))
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ResetTimer()
	for range b.N {
		runtime.GC()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/GC")
	b.ReportMetric(float64(ms.HeapObjects), "heap-objects")
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MB")
	runtime.KeepAlive(d)
}
