package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pstate/pstate/wal/vfs"
)

// harness is a Checkpointer on a Mem with a fake log and a publisher, with
// every Result and error it reported.
type harness struct {
	m   *vfs.Mem
	pub *publisher
	log *fakeLog
	c   *Checkpointer

	mu     sync.Mutex
	done   []Result
	errs   []error
	doneCh chan Result // each OnDone, if the test reads it
}

func newHarness(t *testing.T, seq uint64, cfg Config) *harness {
	t.Helper()
	h := &harness{m: newMem(t), pub: newPublisher(seq), log: &fakeLog{},
		doneCh: make(chan Result, 100)}
	h.log.processed.Store(seq)
	cfg.FS, cfg.Dir = h.m, snapDir
	cfg.Capture, cfg.Log = h.pub.capture, h.log
	if cfg.Interval == 0 {
		cfg.Interval = -1
	}
	if cfg.WALBytes == 0 {
		cfg.WALBytes = -1
	}
	cfg.OnDone = func(r Result) {
		h.mu.Lock()
		h.done = append(h.done, r)
		h.mu.Unlock()
		select {
		case h.doneCh <- r:
		default:
		}
	}
	cfg.OnError = func(err error) {
		h.mu.Lock()
		h.errs = append(h.errs, err)
		h.mu.Unlock()
	}
	h.c = Start(cfg)
	t.Cleanup(func() { h.c.Close() })
	return h
}

func (h *harness) reported() ([]Result, []error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Result(nil), h.done...), append([]error(nil), h.errs...)
}

func TestCheckpointWritesThenTruncates(t *testing.T) {
	h := newHarness(t, 50, Config{Keep: 2})
	ctx := context.Background()

	// P ahead of S: the cut is S+1.
	h.log.processed.Store(60)
	res, err := h.c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Seq != 50 || res.Truncated != 51 || res.Path != snapDir+"/"+fileName(50) ||
		res.Bytes <= 0 || res.Skipped || !res.Time.Equal(testMeta(50).Time) {
		t.Fatalf("result %+v", res)
	}
	meta, body := readSnapshot(t, h.m, res.Path)
	if meta.Seq != 50 || !bytes.Equal(body, testBody(50, 3000)) {
		t.Fatalf("snapshot holds seq %d", meta.Seq)
	}

	// P behind S: the cut is P+1, the records in between stay.
	h.pub.publish(70)
	h.log.processed.Store(65)
	if res, err = h.c.Checkpoint(ctx); err != nil || res.Truncated != 66 {
		t.Fatalf("second checkpoint: %+v, %v", res, err)
	}
	h.pub.publish(80)
	h.log.processed.Store(80)
	if res, err = h.c.Checkpoint(ctx); err != nil || res.Truncated != 81 {
		t.Fatalf("third checkpoint: %+v, %v", res, err)
	}

	if got := h.log.calls(); !reflect.DeepEqual(got, []uint64{51, 66, 81}) {
		t.Fatalf("TruncateBefore calls %v", got)
	}
	if got := seqs(t, h.m, snapDir); !reflect.DeepEqual(got, []uint64{80, 70}) {
		t.Fatalf("snapshots kept %v, want the 2 newest", got)
	}
	done, errs := h.reported()
	if len(done) != 3 || len(errs) != 0 || done[2] != res {
		t.Fatalf("OnDone %v, OnError %v", done, errs)
	}
	if last, ok := h.c.Last(); !ok || last != res {
		t.Fatalf("Last %+v %v", last, ok)
	}
	if h.pub.captures.Load() != 3 {
		t.Fatalf("%d captures for 3 checkpoints", h.pub.captures.Load())
	}
}

func TestCheckpointSkipsUnchangedState(t *testing.T) {
	h := newHarness(t, 5, Config{})
	first, err := h.c.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	second, err := h.c.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !second.Skipped || second.Path != first.Path || second.Bytes != first.Bytes {
		t.Fatalf("second %+v after %+v", second, first)
	}
	if got := h.log.calls(); !reflect.DeepEqual(got, []uint64{6}) {
		t.Fatalf("TruncateBefore calls %v", got)
	}
	// Last stays the checkpoint that wrote the file, with its duration.
	if last, ok := h.c.Last(); !ok || last != first {
		t.Fatalf("last %+v, want the first %+v", last, first)
	}
}

// holdLoop runs n iterations of an event loop stand-in (publish a new
// root, advance the processed seq) and reports how many it completed.
func holdLoop(h *harness, from uint64, n int) <-chan int {
	out := make(chan int, 1)
	go func() {
		i := 0
		for ; i < n; i++ {
			seq := from + uint64(i) + 1
			h.pub.root.Store(&state{seq: seq, body: []byte("later")})
			h.log.processed.Store(seq)
		}
		out <- i
	}()
	return out
}

// TestHeldEncodeDoesNotStopTheLoop: while the encode callback is blocked
// mid-write, the loop completes 1000 iterations; the snapshot then holds
// the state captured before them, and the log is truncated only after.
func TestHeldEncodeDoesNotStopTheLoop(t *testing.T) {
	h := newHarness(t, 100, Config{})
	entered, release := make(chan struct{}), make(chan struct{})
	h.pub.encode = func(s *state, w io.Writer) error {
		if _, err := w.Write(s.body[:1000]); err != nil {
			return err
		}
		close(entered)
		<-release
		_, err := w.Write(s.body[1000:])
		return err
	}

	resc := make(chan Result, 1)
	go func() {
		res, err := h.c.Checkpoint(context.Background())
		if err != nil {
			t.Error(err)
		}
		resc <- res
	}()
	<-entered

	if n := <-holdLoop(h, 100, 1000); n != 1000 {
		t.Fatalf("loop completed %d iterations", n)
	}
	select {
	case <-resc:
		t.Fatal("checkpoint finished while its writer was held")
	default:
	}
	if calls := h.log.calls(); len(calls) != 0 {
		t.Fatalf("log truncated before the snapshot was durable: %v", calls)
	}

	close(release)
	res := <-resc
	if res.Seq != 100 || res.Truncated != 101 || h.pub.captures.Load() != 1 {
		t.Fatalf("result %+v after %d captures", res, h.pub.captures.Load())
	}
	_, body := readSnapshot(t, h.m, res.Path)
	if !bytes.Equal(body, testBody(100, 3000)) {
		t.Fatal("snapshot does not hold the captured state")
	}
}

// TestHeldSyncDoesNotStopTheLoop holds the snapshot's fsync through the
// FS hook instead.
func TestHeldSyncDoesNotStopTheLoop(t *testing.T) {
	h := newHarness(t, 100, Config{})
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.m.SetOnOp(func(op vfs.Op, p string) error {
		if op == vfs.OpSync && strings.HasSuffix(p, ".tmp") {
			once.Do(func() { close(entered) })
			<-release
		}
		return nil
	})

	resc := make(chan Result, 1)
	go func() {
		res, err := h.c.Checkpoint(context.Background())
		if err != nil {
			t.Error(err)
		}
		resc <- res
	}()
	<-entered

	if n := <-holdLoop(h, 100, 1000); n != 1000 {
		t.Fatalf("loop completed %d iterations", n)
	}
	select {
	case <-resc:
		t.Fatal("checkpoint finished while its fsync was held")
	default:
	}
	if calls := h.log.calls(); len(calls) != 0 {
		t.Fatalf("log truncated before the fsync: %v", calls)
	}
	close(release)
	if res := <-resc; res.Seq != 100 || res.Truncated != 101 {
		t.Fatalf("result %+v", res)
	}
	h.m.SetOnOp(nil)
}

// TestCoalesce: requests made while a checkpoint runs are all answered by
// the one run after it, which starts after them and so holds their state.
func TestCoalesce(t *testing.T) {
	h := newHarness(t, 1, Config{})
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var held atomic.Bool
	h.pub.encode = func(s *state, w io.Writer) error {
		if held.CompareAndSwap(false, true) {
			entered <- struct{}{}
			<-release
		}
		return writeBody(s.body)(w)
	}
	var joined sync.WaitGroup
	h.c.onRequest = func() { joined.Done() }

	joined.Add(1)
	firstc := make(chan Result, 1)
	go func() {
		res, err := h.c.Checkpoint(context.Background())
		if err != nil {
			t.Error(err)
		}
		firstc <- res
	}()
	<-entered
	joined.Wait()

	// The state moves on; then 8 requests join while run 1 is held.
	h.pub.publish(2)
	h.log.processed.Store(2)
	const n = 8
	joined.Add(n)
	results := make(chan Result, n)
	for range n {
		go func() {
			res, err := h.c.Checkpoint(context.Background())
			if err != nil {
				t.Error(err)
			}
			results <- res
		}()
	}
	joined.Wait()
	close(release)

	if first := <-firstc; first.Seq != 1 {
		t.Fatalf("first request answered with seq %d", first.Seq)
	}
	var second Result
	for i := range n {
		res := <-results
		if i == 0 {
			second = res
		}
		if res.Seq != 2 || res != second {
			t.Fatalf("request %d answered with %+v, want the run of seq 2 (%+v)", i, res, second)
		}
	}
	if got := h.pub.captures.Load(); got != 2 {
		t.Fatalf("%d runs for 1+%d requests, want 2", got, n)
	}
}

// TestFailedSnapshot: ENOSPC or EIO while writing the snapshot fails the
// checkpoint, removes the temporary file, keeps the older snapshots, and
// the log is not truncated.
func TestFailedSnapshot(t *testing.T) {
	cases := []struct {
		name  string
		fault vfs.Fault
		err   error
	}{
		{"ENOSPC on write", vfs.Fault{Op: vfs.OpWrite, Path: ".tmp", After: 1, Prefix: 7,
			Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"EIO on write", vfs.Fault{Op: vfs.OpWrite, Path: ".tmp", Err: syscall.EIO},
			syscall.EIO},
		{"EIO on sync", vfs.Fault{Op: vfs.OpSync, Path: ".tmp", Err: syscall.EIO},
			syscall.EIO},
		{"ENOSPC on create", vfs.Fault{Op: vfs.OpCreate, Err: syscall.ENOSPC},
			syscall.ENOSPC},
		{"EIO on rename", vfs.Fault{Op: vfs.OpRename, Err: syscall.EIO}, syscall.EIO},
		{"EIO on dir sync", vfs.Fault{Op: vfs.OpSyncDir, Err: syscall.EIO}, syscall.EIO},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 10, Config{Keep: 1})
			h.pub.encode = func(s *state, w io.Writer) error {
				// Incompressible, so that the file takes several writes.
				_, err := w.Write(randomBytes(600_000 + int(s.seq)))
				return err
			}
			ctx := context.Background()
			if _, err := h.c.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			last, _ := h.c.Last()

			h.pub.publish(20)
			h.log.processed.Store(20)
			h.m.Inject(tc.fault)
			_, err := h.c.Checkpoint(ctx)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			h.m.ClearFaults()

			if got := h.log.calls(); !reflect.DeepEqual(got, []uint64{11}) {
				t.Fatalf("TruncateBefore calls %v: the log was truncated after a failure", got)
			}
			names, _ := h.m.List(snapDir)
			for _, name := range names {
				if strings.HasSuffix(name, ".tmp") {
					t.Fatalf("temporary file %s left", name)
				}
			}
			if got := seqs(t, h.m, snapDir); len(got) == 0 || got[len(got)-1] != 10 {
				t.Fatalf("snapshots after the failure: %v, want seq 10 kept", got)
			}
			readSnapshot(t, h.m, snapDir+"/"+fileName(10))
			if l, _ := h.c.Last(); l != last {
				t.Fatalf("Last moved to %+v", l)
			}
			if _, errs := h.reported(); len(errs) != 1 || !errors.Is(errs[0], tc.err) {
				t.Fatalf("OnError got %v", errs)
			}

			// The next checkpoint writes a new file and succeeds.
			res, err := h.c.Checkpoint(ctx)
			if err != nil || res.Seq != 20 || res.Skipped || res.Truncated != 21 {
				t.Fatalf("after the fault: %+v, %v", res, err)
			}
			if got := seqs(t, h.m, snapDir); !reflect.DeepEqual(got, []uint64{20}) {
				t.Fatalf("snapshots %v", got)
			}
		})
	}
}

// TestTruncateFailure: the snapshot is durable but the log refuses the
// truncation; the checkpoint fails, and the next one (nothing new to write)
// truncates.
func TestTruncateFailure(t *testing.T) {
	h := newHarness(t, 30, Config{})
	errLog := errors.New("wal: failed")
	h.log.mu.Lock()
	h.log.mu.err = errLog
	h.log.mu.Unlock()
	if _, err := h.c.Checkpoint(context.Background()); !errors.Is(err, errLog) {
		t.Fatalf("got %v", err)
	}
	if _, ok := h.c.Last(); ok {
		t.Fatal("a failed checkpoint became Last")
	}

	h.log.mu.Lock()
	h.log.mu.err = nil
	h.log.mu.Unlock()
	res, err := h.c.Checkpoint(context.Background())
	if err != nil || !res.Skipped || res.Truncated != 31 {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	if got := h.log.calls(); !reflect.DeepEqual(got, []uint64{31, 31}) {
		t.Fatalf("TruncateBefore calls %v", got)
	}
}

func TestIntervalTrigger(t *testing.T) {
	h := newHarness(t, 3, Config{Interval: time.Millisecond})
	if res := <-h.doneCh; res.Seq != 3 {
		t.Fatalf("result %+v", res)
	}
}

func TestWALSizeTrigger(t *testing.T) {
	h := newHarness(t, 4, Config{WALBytes: 1000, Poll: time.Millisecond})
	h.log.size.Store(1000)
	if res := <-h.doneCh; res.Seq != 4 {
		t.Fatalf("result %+v", res)
	}
}

func TestTrigger(t *testing.T) {
	h := newHarness(t, 6, Config{})
	h.c.Trigger()
	if res := <-h.doneCh; res.Seq != 6 {
		t.Fatalf("result %+v", res)
	}
}

func TestCheckpointContext(t *testing.T) {
	h := newHarness(t, 1, Config{})
	entered, release := make(chan struct{}), make(chan struct{})
	h.pub.encode = func(s *state, w io.Writer) error {
		close(entered)
		<-release
		return writeBody(s.body)(w)
	}
	h.c.Trigger()
	<-entered

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.c.Checkpoint(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	close(release)
}

// TestClose: Close waits for the run in progress; a request still waiting
// gets ErrClosed, and so does every later one.
func TestClose(t *testing.T) {
	h := newHarness(t, 1, Config{})
	entered, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	h.pub.encode = func(s *state, w io.Writer) error {
		if held.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		return writeBody(s.body)(w)
	}
	var joined sync.WaitGroup
	h.c.onRequest = func() { joined.Done() }

	h.c.Trigger()
	<-entered
	joined.Add(1)
	waiting := make(chan error, 1)
	go func() {
		_, err := h.c.Checkpoint(context.Background())
		waiting <- err
	}()
	joined.Wait()

	closed := make(chan error, 1)
	go func() { closed <- h.c.Close() }()
	<-h.c.stop
	close(release)

	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting request got %v", err)
	}
	if _, err := h.c.Checkpoint(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("request after Close got %v", err)
	}
	if err := h.c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := h.pub.captures.Load(); got != 1 {
		t.Fatalf("%d runs, want only the one in progress", got)
	}
}

func TestStartRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no capture": {Dir: "/d", Log: &fakeLog{}},
		"no log":     {Dir: "/d", Capture: newPublisher(1).capture},
		"no dir":     {Capture: newPublisher(1).capture, Log: &fakeLog{}},
		"keep":       {Dir: "/d", Capture: newPublisher(1).capture, Log: &fakeLog{}, Keep: -1},
		"share NaN": {Dir: "/d", Capture: newPublisher(1).capture, Log: &fakeLog{},
			Share: math.NaN()},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Start accepted it")
				}
			}()
			Start(cfg).Close()
		})
	}
}
