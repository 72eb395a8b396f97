package harness

import (
	"context"
	"os/exec"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pstate/pstate/bench/baseline"
	"github.com/pstate/pstate/internal/workload"
	"github.com/pstate/pstate/pstate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func testGen(t *testing.T) *workload.Generator {
	t.Helper()
	g, err := workload.New(workload.Config{Seed: 5, FailRate: 0.15, CancelRate: 0.1, PurgeRate: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// memLog is a pstate.Log that keeps nothing and is durable at once.
type memLog struct {
	mu   sync.Mutex
	next uint64
}

func (l *memLog) Write(p [][]byte) (uint64, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.next
	l.next += uint64(len(p))
	return first, l.next - 1, nil
}
func (l *memLog) WaitDurable(uint64) error { return nil }
func (l *memLog) SetProcessed(uint64)      {}

// TestFoldMatchesBaseline checks the bulk loader's fold against the
// baseline engine fed the same events one by one.
func TestFoldMatchesBaseline(t *testing.T) {
	g := testGen(t)
	eng, err := baseline.Open(t.TempDir(), baseline.Options{NoSync: true,
		Clock: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	const n = 300
	for i := range n {
		for _, e := range g.Job(i) {
			if _, err := eng.Submit([]workload.Event{e}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ls, err := buildLoadSet(g, n, t0)
	if err != nil {
		t.Fatal(err)
	}
	counts, _ := eng.Counts()
	live := 0
	for _, c := range counts {
		live += c
	}
	if live != len(ls.Jobs) {
		t.Fatalf("engine holds %d jobs, fold %d", live, len(ls.Jobs))
	}
	for i, j := range ls.Jobs {
		got, ok := eng.Job(j.ID)
		if !ok || !reflect.DeepEqual(&got, j) {
			t.Fatalf("job %s: fold %+v\nengine %+v", j.ID, j, got)
		}
		for _, w := range ls.Workspaces[i] {
			if got, _ := eng.Workspace(w.ID); got != w {
				t.Fatalf("workspace %s: fold %+v, engine %+v", w.ID, w, got)
			}
		}
	}
}

// TestPstateImageMatchesEngine checks that the state built from the
// synthetic snapshot body is the one pstate's engine builds from the
// events, seq included.
func TestPstateImageMatchesEngine(t *testing.T) {
	g := testGen(t)
	eng := pstate.Start(nil, &memLog{next: 1}, pstate.Options{Clock: func() time.Time { return t0 }})
	const n = 300
	for i := range n {
		for _, e := range g.Job(i) {
			if _, err := eng.Submit(context.Background(), []pstate.Event{toPstate(&e)}); err != nil {
				t.Fatalf("job %d %s: %v", i, e.Type, err)
			}
		}
	}
	want := eng.Root()
	eng.Close()

	ls, err := buildLoadSet(g, n, t0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := buildPstateState(ls)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq() != want.Seq() {
		t.Fatalf("seq %d, engine's %d", got.Seq(), want.Seq())
	}
	if !reflect.DeepEqual(got.Counts(), want.Counts()) {
		t.Fatalf("counts %+v, engine's %+v", got.Counts(), want.Counts())
	}
	for i := range n {
		id := g.JobID(i)
		a, okA := got.Job(id)
		b, okB := want.Job(id)
		if okA != okB || !reflect.DeepEqual(a, b) {
			t.Fatalf("job %s:\nimage  %+v\nengine %+v", id, a, b)
		}
		for _, w := range a.Workspaces {
			x, _ := got.Workspace(w)
			y, _ := want.Workspace(w)
			if !reflect.DeepEqual(x, y) {
				t.Fatalf("workspace %s: image %+v, engine %+v", w, x, y)
			}
		}
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 1000; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(ds)
	if s.N != 1000 || s.P50 != 500*time.Millisecond || s.P99 != 990*time.Millisecond ||
		s.P999 != 999*time.Millisecond || s.Max != time.Second {
		t.Fatalf("summary %+v", s)
	}
	if (Summarize(nil) != Summary{}) {
		t.Fatal("summary of nothing is not zero")
	}
}

// TestRunSmall runs every scenario at a tiny size on the in-process
// systems (and Redis when installed) and checks that each one reported.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario")
	}
	cfg := QuickConfig()
	cfg.Dir = t.TempDir()
	cfg.Sizes = []int{60}
	cfg.Window, cfg.TputWindow = 100*time.Millisecond, 100*time.Millisecond
	cfg.TputWriters = []int{1, 8}
	cfg.LogSizes = []int64{1 << 20}
	cfg.DiskTime = 50 * time.Millisecond
	cfg.Tail = 50
	cfg.Systems = []string{"pstate", "baseline", "sqlite", "redis"}
	if p, err := exec.LookPath("redis-server"); err == nil {
		cfg.RedisServer = p
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range res.Notes {
		if cfg.RedisServer != "" || n[:5] != "redis" {
			t.Errorf("note: %s", n)
		}
	}
	for _, sys := range []string{"pstate", "baseline", "sqlite"} {
		for _, m := range [][2]string{
			{"1 write latency @60", "during checkpoints p99.9"},
			{"3 durable events/s @60", "8 writers"},
			{"4 recovery @60", "restart to first answer (50-event tail)"},
			{"5 reads under write load @60", "read p99"},
			{"6 footprint @60", "disk per job"},
		} {
			if v, ok := res.Value(m[0], sys, m[1]); !ok || v <= 0 {
				t.Errorf("%s %s %s: %v %v", m[0], sys, m[1], v, ok)
			}
		}
	}
	if _, ok := res.Value("2 truncation lock hold @1 MiB log", "baseline", "log lock held"); !ok {
		t.Error("no truncation row for the baseline")
	}
}
