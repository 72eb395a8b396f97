package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pstate/pstate/wal/vfs"
)

func TestTruncateBefore(t *testing.T) {
	m := vfs.NewMem()
	var holds atomic.Int32
	opts := Options{OnTruncateLock: func(time.Duration) { holds.Add(1) }}
	l := openMem(t, m, opts)
	appendN(t, l, 100)
	size := l.Size()
	if err := l.TruncateBefore(50); err != nil {
		t.Fatal(err)
	}
	if l.FirstSeq() != 50 || l.NextSeq() != 101 || l.Size() >= size || holds.Load() == 0 {
		t.Fatalf("first %d next %d size %d (was %d), %d lock holds",
			l.FirstSeq(), l.NextSeq(), l.Size(), size, holds.Load())
	}
	checkRecords(t, replayAll(t, l, 1), 50, 100)
	if err := l.TruncateBefore(40); err != nil || l.FirstSeq() != 50 {
		t.Fatalf("truncate below the first seq: %v, first %d", err, l.FirstSeq())
	}
	appendN(t, l, 5)
	mustClose(t, l)

	l = openMem(t, m.Crash(), opts)
	checkRecords(t, replayAll(t, l, 1), 50, 105)
	if int64(len(logBytes(t, m))) != l.Size() {
		t.Fatalf("size %d, file %d", l.Size(), len(logBytes(t, m)))
	}
	mustClose(t, l)
}

func TestTruncateBasesTheLog(t *testing.T) {
	m := vfs.NewMem()
	l := openMem(t, m, Options{})
	if err := l.TruncateBefore(1000); err != nil {
		t.Fatal(err)
	}
	if l.FirstSeq() != 1000 || l.NextSeq() != 1000 || l.DurableSeq() != 999 {
		t.Fatalf("first %d next %d durable %d", l.FirstSeq(), l.NextSeq(), l.DurableSeq())
	}
	mustClose(t, l)

	c := m.Crash()
	l = openMem(t, c, Options{})
	if l.FirstSeq() != 1000 || l.NextSeq() != 1000 {
		t.Fatalf("after a crash: first %d next %d", l.FirstSeq(), l.NextSeq())
	}
	if first, _, err := l.Append([][]byte{testPayload(1000)}); err != nil || first != 1000 {
		t.Fatalf("append = %d, %v", first, err)
	}
	appendN(t, l, 4)
	// Past the end of a log with records: everything goes.
	if err := l.TruncateBefore(2000); err != nil {
		t.Fatal(err)
	}
	if len(replayAll(t, l, 1)) != 0 || l.NextSeq() != 2000 {
		t.Fatalf("next %d", l.NextSeq())
	}
	// Up to the next seq exactly: empty, next unchanged.
	appendN(t, l, 3)
	if err := l.TruncateBefore(2003); err != nil || l.FirstSeq() != 2003 || l.NextSeq() != 2003 {
		t.Fatalf("truncate to next: %v, first %d next %d", err, l.FirstSeq(), l.NextSeq())
	}
	mustClose(t, l)
	l = openMem(t, c.Crash(), Options{})
	defer mustClose(t, l)
	if l.FirstSeq() != 2003 || l.NextSeq() != 2003 {
		t.Fatalf("reopen: first %d next %d", l.FirstSeq(), l.NextSeq())
	}
}

// truncatorOp reports whether op is a truncation's fsync or rename of its
// temp file rather than a sync round's or Close's fsync of it. NB: no sync round runs
// while nothing waits, so the test's appends at the truncation's steps
// see flushMu free; a hook that appended inside a sync round would wait
// for that round and hang.
func truncatorOp(l *Log, op vfs.Op, p string) bool {
	if p != testDir+"/"+tmpName || (op != vfs.OpSync && op != vfs.OpRename) || l.closed.Load() {
		return false // NB: Close syncs the file after cutting its zeros
	}
	if !l.flushMu.TryLock() {
		return false
	}
	l.flushMu.Unlock()
	return true
}

// TestTruncateCrashAtEveryOp takes a crash clone at the k-th filesystem
// operation, for every k, of a truncation during which records are
// appended at each step (before the writes go to both files, while they
// do, just before the rename) and of the appends after it. Each clone
// must recover every record answered before it was taken.
func TestTruncateCrashAtEveryOp(t *testing.T) {
	const keep = 20
	// NB: the number of operations varies from run to run (group commit
	// may merge syncs), so a run can end before its k-th operation while
	// other runs have more: go on until k passes the most any run had.
	var maxOps int64
	for k := int64(1); ; k++ {
		m := vfs.NewMem()
		l := openMem(t, m, Options{})
		appendN(t, l, 30)

		var acked atomic.Uint64
		acked.Store(30)
		appendSome := func() { storeMax(&acked, appendN(t, l, 3)) }
		var ops, tmpSyncs atomic.Int64
		var clone *vfs.Mem
		var cloneAcked uint64
		var cloneOp string
		m.SetOnOp(func(op vfs.Op, p string) error {
			if ops.Add(1) == k {
				// NB: read acked first: whatever was answered by now
				// must be in the clone.
				cloneAcked = acked.Load()
				clone = m.Crash()
				cloneOp = op.String() + " " + p
			}
			if !truncatorOp(l, op, p) {
				return nil
			}
			if op == vfs.OpRename || tmpSyncs.Add(1) <= 2 {
				appendSome()
			}
			return nil
		})
		if err := l.TruncateBefore(keep); err != nil {
			t.Fatal(err)
		}
		appendSome()
		mustClose(t, l)
		m.SetOnOp(nil)
		maxOps = max(maxOps, ops.Load())
		if clone == nil {
			if k <= maxOps {
				continue // this run had fewer operations; others reach k
			}
			if maxOps < 40 {
				t.Fatalf("only %d operations in a truncation", maxOps)
			}
			t.Logf("crashed at each of %d operations", maxOps)
			return
		}

		l = openMem(t, clone, Options{})
		recs := replayAll(t, l, keep)
		if first := l.FirstSeq(); first != 1 && first != keep {
			t.Fatalf("k %d (%s): first seq %d", k, cloneOp, first)
		}
		if uint64(len(recs)) < cloneAcked-keep+1 {
			t.Fatalf("k %d (%s): %d records from %d, answered up to %d",
				k, cloneOp, len(recs), keep, cloneAcked)
		}
		checkRecords(t, recs[:cloneAcked-keep+1], keep, cloneAcked)
		mustClose(t, l)
	}
}

// appendLoad runs appenders that record every answered seq and payload.
type appendLoad struct {
	mu    sync.Mutex
	acked map[uint64]string
}

func (a *appendLoad) run(t *testing.T, l *Log, workers, batches int) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range batches {
				batch := make([][]byte, 1+rng.IntN(3))
				for j := range batch {
					batch[j] = fmt.Appendf(nil, "w%d b%d r%d %*s", w, i, j, rng.IntN(200), "")
				}
				first, _, err := l.Append(batch)
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				a.mu.Lock()
				for j, p := range batch {
					a.acked[first+uint64(j)] = string(p)
				}
				a.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// check verifies that every answered record with seq >= the log's first
// seq replays with its payload and that nothing else is there.
func (a *appendLoad) check(t *testing.T, l *Log) {
	t.Helper()
	first := l.FirstSeq()
	want := 0
	for seq := range a.acked {
		if seq >= first {
			want++
		}
	}
	got := 0
	err := l.Replay(first, func(seq uint64, p []byte) error {
		if a.acked[seq] != string(p) {
			return fmt.Errorf("seq %d: payload %q, answered %q", seq, p, a.acked[seq])
		}
		got++
		return nil
	})
	if err != nil || got != want || uint64(got) != l.NextSeq()-first {
		t.Fatalf("replay: %v; %d records, %d answered from seq %d, next %d",
			err, got, want, first, l.NextSeq())
	}
}

func testConcurrentTruncation(t *testing.T, fsys vfs.FS, dir string, workers, batches int) {
	l, err := Open(dir, Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	load := &appendLoad{acked: map[uint64]string{}}
	appended := make(chan struct{})
	done := make(chan struct{})
	truncs := 0
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-appended:
				if truncs >= 2 {
					return
				}
			default:
			}
			next := l.NextSeq()
			seq := next - min(next-1, uint64(rng.IntN(50)))
			if err := l.TruncateBefore(seq); err != nil {
				t.Errorf("truncate: %v", err)
				return
			}
			truncs++
		}
	}()
	load.run(t, l, workers, batches)
	close(appended)
	<-done
	load.check(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(dir, Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	load.check(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentAppendsWhileTruncating(t *testing.T) {
	t.Run("mem", func(t *testing.T) {
		m := vfs.NewMem()
		testConcurrentTruncation(t, m, testDir, 32, 60)
		// What was answered survives a crash after Close too.
		l := openMem(t, m.Crash(), Options{})
		defer mustClose(t, l)
		if l.NextSeq() < 32*60 {
			t.Fatalf("next seq %d after a crash", l.NextSeq())
		}
	})
	t.Run("os", func(t *testing.T) {
		testConcurrentTruncation(t, vfs.OS, t.TempDir(), 32, 30)
	})
}

// TestAnswerAfterSwapWaitsForDirSync holds the truncation's directory
// fsync after the rename and appends meanwhile: the record may be answered
// only once a directory fsync covers the rename, since a crash before it
// may bring back the old file. If an answer comes first, the crash clone
// taken then must still hold the record.
func TestAnswerAfterSwapWaitsForDirSync(t *testing.T) {
	m := vfs.NewMem()
	l := openMem(t, m, Options{})
	defer mustClose(t, l)
	appendN(t, l, 10)

	var truncatorCalls atomic.Int32
	var secondOnce sync.Once
	swapped := make(chan struct{})
	second := make(chan struct{})
	answered := make(chan uint64, 1)
	var clone *vfs.Mem
	var cloneSeq uint64
	m.SetOnOp(func(op vfs.Op, p string) error {
		if op != vfs.OpSyncDir {
			return nil
		}
		// NB: a sync round holds flushMu; the truncation does not.
		if !l.flushMu.TryLock() {
			secondOnce.Do(func() { close(second) })
			return nil
		}
		l.flushMu.Unlock()
		if truncatorCalls.Add(1) == 1 {
			close(swapped)
			select {
			case seq := <-answered:
				cloneSeq, clone = seq, m.Crash()
			case <-second:
			}
		}
		return nil
	})
	appended := make(chan error)
	truncated := make(chan struct{})
	go func() {
		select {
		case <-swapped:
		case <-truncated:
			appended <- errors.New("the truncation did not fsync the directory")
			return
		}
		_, last, err := l.Append([][]byte{testPayload(11)})
		answered <- last
		appended <- err
	}()
	terr := l.TruncateBefore(5)
	close(truncated)
	if err := <-appended; err != nil || terr != nil {
		t.Fatalf("append: %v; truncate: %v", err, terr)
	}
	m.SetOnOp(nil)
	if clone == nil {
		return
	}
	c := openMem(t, clone, Options{})
	defer mustClose(t, c)
	if c.NextSeq() <= cloneSeq {
		t.Fatalf("seq %d was answered before the directory fsync and lost in a crash", cloneSeq)
	}
}

// TestWritesDuringTruncationAreKept appends while a truncation runs: when
// it fsyncs its temp file before the writes go to both files, when it
// fsyncs it after, and just before the rename. All of them must be in the
// new log, durably, with no sync round after the truncation.
func TestWritesDuringTruncationAreKept(t *testing.T) {
	m := vfs.NewMem()
	l := openMem(t, m, Options{})
	defer mustClose(t, l)
	appendN(t, l, 20)

	var tmpSyncs atomic.Int32
	m.SetOnOp(func(op vfs.Op, p string) error {
		if truncatorOp(l, op, p) && (op == vfs.OpRename || tmpSyncs.Add(1) <= 2) {
			appendN(t, l, 5)
		}
		return nil
	})
	if err := l.TruncateBefore(10); err != nil {
		t.Fatal(err)
	}
	m.SetOnOp(nil)
	if tmpSyncs.Load() < 2 {
		t.Fatalf("%d fsyncs of the temp file", tmpSyncs.Load())
	}
	checkRecords(t, replayAll(t, l, 1), 10, 35)

	c := openMem(t, m.Crash(), Options{})
	defer mustClose(t, c)
	checkRecords(t, replayAll(t, c, 1), 10, 35)
}
