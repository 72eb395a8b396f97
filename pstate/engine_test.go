package pstate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type submitted struct {
	res []Result
	err error
}

func submitAsync(e *Engine, events ...Event) <-chan submitted {
	ch := make(chan submitted, 1)
	go func() {
		res, err := e.Submit(context.Background(), events)
		ch <- submitted{res, err}
	}()
	return ch
}

// replayLog rebuilds the state from every record of l.
func replayLog(t tb, l *memLog) *State {
	t.Helper()
	base, recs := l.all()
	s := NewState()
	for i, r := range recs {
		var err error
		if s, err = Replay(s, base+uint64(i), r); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestEnginePublishesOnlyDurable(t *testing.T) {
	l := newMemLog(1, false)
	l.writes = make(chan uint64, 8)
	e := Start(nil, l, Options{Clock: func() time.Time { return t0 }})
	defer e.Close()

	a := submitAsync(e, submit("j", "a"))
	if last := <-l.writes; last != 1 {
		t.Fatalf("first write ended at %d", last)
	}
	// The loop goes on while seq 1 waits for its sync: a second request is
	// written before the first is durable.
	b := submitAsync(e, start("j"), stepStart("j", "a", 1))
	if last := <-l.writes; last != 3 {
		t.Fatalf("second write ended at %d", last)
	}
	if s := e.Root(); s.Seq() != 0 {
		t.Fatalf("root at seq %d before any sync", s.Seq())
	}
	if _, ok := e.Root().Job("j"); ok {
		t.Fatal("a reader saw a job that is not durable")
	}
	l.sync()
	ra, rb := <-a, <-b
	if ra.err != nil || rb.err != nil {
		t.Fatal(ra.err, rb.err)
	}
	if ra.res[0].Seq != 1 || rb.res[1].Seq != 3 {
		t.Fatalf("results %v %v", ra.res, rb.res)
	}
	if e.Root().Seq() != 3 || l.processed.Load() != 3 {
		t.Fatalf("root %d processed %d", e.Root().Seq(), l.processed.Load())
	}
	assertSameState(t, replayLog(t, l), e.Root())
}

func TestEngineReadOnlyOnSyncFailure(t *testing.T) {
	l := newMemLog(1, false)
	l.writes = make(chan uint64, 8)
	var hook atomic.Int32
	e := Start(nil, l, Options{OnReadOnly: func(error) { hook.Add(1) }})
	defer e.Close()

	first := submitAsync(e, submit("ok", "a"))
	<-l.writes
	l.sync()
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	lost := submitAsync(e, submit("lost", "a"))
	<-l.writes
	l.failSync(errDisk)
	r := <-lost
	if !errors.Is(r.err, ErrReadOnly) || !errors.Is(r.err, errDisk) {
		t.Fatalf("err = %v, want read-only wrapping the cause", r.err)
	}
	if _, err := e.Submit(context.Background(), []Event{submit("later", "a")}); !errors.Is(
		err, ErrReadOnly) {
		t.Fatalf("later submit: %v", err)
	}
	s := e.Root()
	if _, ok := s.Job("lost"); ok || s.Seq() != 1 {
		t.Fatal("a root holding a failed record was published")
	}
	if _, ok := s.Job("ok"); !ok {
		t.Fatal("reads lost the durable job")
	}
	if _, err := e.WaitSeq(context.Background(), 2); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("WaitSeq: %v", err)
	}
	if hook.Load() != 1 || !errors.Is(e.Err(), errDisk) {
		t.Fatalf("hook %d, Err %v", hook.Load(), e.Err())
	}
}

// failingLog fails every Write.
type failingLog struct{ *nopLog }

func (failingLog) Write([][]byte) (uint64, uint64, error) { return 0, 0, errDisk }

func TestEngineReadOnlyOnWriteFailure(t *testing.T) {
	e := Start(nil, failingLog{&nopLog{}}, Options{})
	defer e.Close()
	_, err := e.Submit(context.Background(), []Event{submit("j", "a")})
	if !errors.Is(err, ErrReadOnly) || !errors.Is(err, errDisk) {
		t.Fatalf("err = %v", err)
	}
	if e.Root().Seq() != 0 {
		t.Fatal("state moved on a failed write")
	}
}

func TestEngineRequestsAreAtomic(t *testing.T) {
	l := newMemLog(1, true)
	e := Start(nil, l, Options{})
	defer e.Close()
	ctx := context.Background()
	a := submit("j", "a")
	a.ID = "s-j"
	if _, err := e.Submit(ctx, []Event{a}); err != nil {
		t.Fatal(err)
	}
	_, err := e.Submit(ctx, []Event{start("j"), stepStart("j", "nope", 1)})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Index != 1 || ce.Step != "nope" {
		t.Fatalf("err = %v", err)
	}
	if j, _ := e.Root().Job("j"); j.State != StateQueued {
		t.Fatal("half a refused request was applied")
	}
	res, err := e.Submit(ctx, []Event{a, start("j")})
	if err != nil || res[0] != (Result{1, true}) || res[1] != (Result{2, false}) {
		t.Fatalf("res %v err %v", res, err)
	}
	if _, err := e.Submit(ctx, []Event{{Type: TypeJobPurged, JobID: "j", Effect: true}}); err == nil {
		t.Fatal("an effect from outside was accepted")
	}
	if _, err := e.Submit(ctx, nil); err == nil {
		t.Fatal("empty request accepted")
	}
}

func TestEngineWaitSeqAndClose(t *testing.T) {
	l := newMemLog(1, true)
	e := Start(nil, l, Options{})
	got := make(chan uint64, 1)
	go func() {
		s, err := e.WaitSeq(context.Background(), 2)
		if err != nil {
			got <- 0
			return
		}
		got <- s.Seq()
	}()
	if _, err := e.Submit(context.Background(), []Event{submit("j", "a"), start("j")}); err != nil {
		t.Fatal(err)
	}
	if seq := <-got; seq < 2 {
		t.Fatalf("WaitSeq returned seq %d", seq)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.WaitSeq(ctx, 99); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitSeq on a canceled context: %v", err)
	}
	e.Close()
	e.Close()
	if _, err := e.Submit(context.Background(), []Event{submit("k", "a")}); !errors.Is(
		err, ErrClosed) {
		t.Fatalf("submit after close: %v", err)
	}
	if _, err := e.WaitSeq(context.Background(), 99); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitSeq after close: %v", err)
	}
}

func TestEnginePurgesFinishedJobs(t *testing.T) {
	var now atomic.Int64
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	l := newMemLog(1, true)
	e := Start(nil, l, Options{Clock: clock, RetainFinished: time.Hour,
		PurgeInterval: time.Millisecond})
	defer e.Close()
	ctx := context.Background()
	_, err := e.Submit(ctx, []Event{submit("old", "a"), jobEnd("old", StatusCanceled),
		submit("new", "a")})
	if err != nil {
		t.Fatal(err)
	}
	now.Add(int64(90 * time.Minute))
	if _, err := e.Submit(ctx, []Event{jobEnd("new", StatusFailed)}); err != nil {
		t.Fatal(err)
	}
	s, err := e.WaitSeq(ctx, 5) // the purge of "old" is seq 5
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Job("old"); ok {
		t.Fatal("old job not purged")
	}
	if _, ok := s.Job("new"); !ok {
		t.Fatal("job within the retention purged")
	}
	_, recs := l.all()
	p, _ := DecodeEvent(recs[4])
	if p.Type != TypeJobPurged || !p.Effect || p.JobID != "old" {
		t.Fatalf("record 5 = %+v", p)
	}
}

// TestNoHalfBatchVisible: every request takes a job from submission to
// success, with a workspace released by the effects. Readers that load the
// root concurrently must never see a job that is not succeeded nor a
// workspace still allocated: either would be half a request.
func TestNoHalfBatchVisible(t *testing.T) {
	l := newMemLog(1, true)
	e := Start(nil, l, Options{MaxBatch: 64})
	defer e.Close()
	const writers, perWriter = 4, 40
	done := make(chan struct{})
	var bad atomic.Value
	var readers sync.WaitGroup
	for range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				s := e.Root()
				c := s.Counts()
				if c.Jobs.Queued+c.Jobs.Running+c.Workspaces.Allocated != 0 ||
					c.Jobs.Succeeded != c.Workspaces.Released {
					bad.Store(fmt.Sprintf("seq %d: counts %+v", s.Seq(), c))
				}
				jobs, _ := s.Jobs(JobQuery{State: StateRunning})
				if len(jobs) != 0 {
					bad.Store(fmt.Sprintf("seq %d: running job %s", s.Seq(), jobs[0].JobID))
				}
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			for i := range perWriter {
				id := fmt.Sprintf("j-%d-%d", w, i)
				_, err := e.Submit(context.Background(), []Event{submit(id, "a"), start(id),
					alloc("w-"+id, id), stepStart(id, "a", 1), stepEnd(id, "a", 1, StatusSucceeded)})
				if err != nil {
					bad.Store(err.Error())
					return
				}
			}
		}()
	}
	writersWG.Wait()
	close(done)
	readers.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	s := e.Root()
	if c := s.Counts(); c.Jobs.Succeeded != writers*perWriter {
		t.Fatalf("counts %+v", c)
	}
	assertSameState(t, replayLog(t, l), s)
}

// TestGroupIsolatesRequests runs one loop group by hand: a refused request
// in the middle is answered at once with its index, and the requests around
// it are written together and applied as if it had not been sent.
func TestGroupIsolatesRequests(t *testing.T) {
	l := newMemLog(1, true)
	e := &Engine{log: l, durable: make(chan *group, 1)}
	e.opts.fill()
	mk := func(events ...Event) *request {
		return &request{events: events, done: make(chan struct{})}
	}
	good1 := mk(submit("a", "s"), start("a"))
	bad := mk(submit("b", "s"), start("b"), start("b"))
	good2 := mk(submit("c", "s"), stepStart("a", "s", 1))
	cur, written := e.runGroup(NewState(), 0, []*request{good1, bad, good2})
	<-bad.done
	var ce *ConflictError
	if !errors.As(bad.err, &ce) || ce.Index != 2 || ce.JobID != "b" {
		t.Fatalf("bad request: %v", bad.err)
	}
	g := <-e.durable
	if len(g.reqs) != 2 || g.last != 4 || written != 4 || cur != g.root {
		t.Fatalf("group of %d requests up to %d (written %d)", len(g.reqs), g.last, written)
	}
	if good2.results[1].Seq != 4 {
		t.Fatalf("good2 results %v", good2.results)
	}
	if _, ok := g.root.Job("b"); ok {
		t.Fatal("part of the refused request was applied")
	}
	assertSameState(t, replayLog(t, l), g.root)
}
