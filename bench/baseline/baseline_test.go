package baseline

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pstate/pstate/internal/workload"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fixedClock() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func open(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := Open(dir, Options{Clock: fixedClock, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func gen(t *testing.T) *workload.Generator {
	t.Helper()
	g, err := workload.New(workload.Config{Seed: 11, FailRate: 0.15, CancelRate: 0.1, PurgeRate: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestWorkloadIsAccepted drives generated jobs one event at a time through
// the engine: every event fits, and every job ends finished or purged.
func TestWorkloadIsAccepted(t *testing.T) {
	e := open(t, t.TempDir())
	defer e.Close()
	g := gen(t)
	s := g.Stream(0, 300, 20)
	for ev, ok := s.Next(); ok; ev, ok = s.Next() {
		if _, err := e.Submit([]workload.Event{ev}); err != nil {
			t.Fatalf("%s %s: %v", ev.Type, ev.ID, err)
		}
	}
	counts, _ := e.Counts()
	if counts[StateQueued]+counts[StateRunning] != 0 {
		t.Fatalf("unfinished jobs left: %v", counts)
	}
	for n := range 300 {
		j, ok := e.Job(g.JobID(n))
		if !ok {
			continue // purged
		}
		for _, id := range j.Workspaces {
			if w, _ := e.Workspace(id); w.State != StateReleased {
				t.Fatalf("job %s (%s): workspace %s still %s", j.ID, j.State, id, w.State)
			}
		}
	}
}

func TestConflictRollsBackTheBatch(t *testing.T) {
	e := open(t, t.TempDir())
	defer e.Close()
	g := gen(t)
	evs := g.Job(1)
	bad := workload.Event{Type: workload.StepFinished, JobID: evs[0].JobID, Step: evs[0].Steps[0],
		Attempt: 1, Status: workload.StatusSucceeded}
	_, err := e.Submit([]workload.Event{evs[0], evs[1], bad})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("step finished before it started: got %v, want a conflict", err)
	}
	if _, ok := e.Job(evs[0].JobID); ok {
		t.Fatal("a refused batch left its job behind")
	}
	if _, seq := e.Counts(); seq != 0 {
		t.Fatalf("seq %d after a refused batch", seq)
	}
	if _, err := e.Submit([]workload.Event{{Type: workload.JobStarted}}); !errors.Is(err, ErrInput) {
		t.Fatalf("event without job_id: got %v", err)
	}
}

func TestDuplicateAnswersTheOriginalSeq(t *testing.T) {
	e, err := Open(t.TempDir(), Options{}) // synced records
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	evs := gen(t).Job(2)
	r1, err := e.Submit(evs[:2])
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.Submit(evs[1:3])
	if err != nil {
		t.Fatal(err)
	}
	if !r2[0].Duplicate || r2[0].Seq != r1[1].Seq || r2[1].Duplicate || r2[1].Seq != 3 {
		t.Fatalf("results %+v after %+v", r2, r1)
	}
}

func submitAll(t *testing.T, e *Engine, s *workload.Stream, n int) {
	t.Helper()
	for range n {
		ev, ok := s.Next()
		if !ok {
			return
		}
		if _, err := e.Submit([]workload.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
}

func snapshotOf(e *Engine) *state {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.clone()
}

func TestRecoveryFromSnapshotAndLog(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir)
	s := gen(t).Stream(0, 100, 10)
	submitAll(t, e, s, 800)
	res, err := e.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if res.Seq != 800 || res.Bytes == 0 {
		t.Fatalf("checkpoint %+v", res)
	}
	submitAll(t, e, s, 500)
	want := snapshotOf(e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e2 := open(t, dir)
	defer e2.Close()
	if got := snapshotOf(e2); !reflect.DeepEqual(got, want) {
		t.Fatalf("recovered state differs: seq %d, want %d", got.Seq, want.Seq)
	}
	submitAll(t, e2, s, 100)
}

func TestTornTailIsCutAndDamageIsReported(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir)
	submitAll(t, e, gen(t).Stream(0, 10, 2), 50)
	e.Close()
	path := filepath.Join(dir, logName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(path, data[:len(data)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	e2 := open(t, dir)
	if _, seq := e2.Counts(); seq != 49 {
		t.Fatalf("after a torn last record seq is %d, want 49", seq)
	}
	e2.Close()

	data[40] ^= 0xff // inside the first record's payload
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{})
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Offset != 0 || ce.Kind != "checksum mismatch" {
		t.Fatalf("damaged first record: got %v", err)
	}
}

func TestTruncateLogKeepsLaterRecords(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir)
	submitAll(t, e, gen(t).Stream(0, 20, 4), 200)
	before := e.LogSize()
	if _, err := e.TruncateLog(151); err != nil {
		t.Fatal(err)
	}
	if after := e.LogSize(); after <= 0 || after >= before {
		t.Fatalf("log size %d after truncation, %d before", after, before)
	}
	var seqs []uint64
	data, _ := os.ReadFile(filepath.Join(dir, logName))
	if _, err := scanRecords("log", data, func(_ int64, s uint64, _ []byte) error {
		seqs = append(seqs, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 50 || seqs[0] != 151 {
		t.Fatalf("records left: %d starting at %v", len(seqs), seqs[:1])
	}
	e.Close()
}

func TestConcurrentWritersReadersAndCheckpoints(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	g := gen(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for n := w; n < 80; n += 4 {
				for _, ev := range g.Job(n) {
					if _, err := e.Submit([]workload.Event{ev}); err != nil {
						t.Error(err)
						return
					}
					e.Job(g.JobID(n))
				}
			}
		})
	}
	for range 5 {
		if _, err := e.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	want := snapshotOf(e)
	e.Close()
	e2 := open(t, dir)
	defer e2.Close()
	if got := snapshotOf(e2); !reflect.DeepEqual(got, want) {
		t.Fatalf("recovered seq %d, want %d", got.Seq, want.Seq)
	}
}
