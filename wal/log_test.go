package wal

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pstate/pstate/wal/vfs"
)

func TestAppendReplayReopen(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			m := vfs.NewMem()
			l := openMem(t, m, Options{Sync: mode})
			if l.FirstSeq() != 1 || l.NextSeq() != 1 {
				t.Fatalf("new log: first %d next %d", l.FirstSeq(), l.NextSeq())
			}
			last := appendN(t, l, 20)
			first, last2, err := l.Write([][]byte{testPayload(21), testPayload(22)})
			if err != nil || first != 21 || last2 != 22 {
				t.Fatalf("write = %d, %d, %v", first, last2, err)
			}
			if err := l.WaitDurable(22); err != nil {
				t.Fatal(err)
			}
			if last != 20 || l.NextSeq() != 23 {
				t.Fatalf("last %d next %d", last, l.NextSeq())
			}
			checkRecords(t, replayAll(t, l, 1), 1, 22)
			checkRecords(t, replayAll(t, l, 7), 7, 22)
			mustClose(t, l)

			if mode == SyncNone {
				m.SetOnOp(nil)
			}
			l = openMem(t, m, Options{Sync: mode})
			checkRecords(t, replayAll(t, l, 1), 1, 22)
			if l.NextSeq() != 23 || l.DurableSeq() != 22 {
				t.Fatalf("reopen: next %d durable %d", l.NextSeq(), l.DurableSeq())
			}
			mustClose(t, l)
			if err := l.Close(); !errors.Is(err, ErrClosed) {
				t.Fatalf("second close = %v", err)
			}
			if _, _, err := l.Write([][]byte{nil}); !errors.Is(err, ErrClosed) {
				t.Fatalf("write after close = %v", err)
			}
		})
	}
}

func TestSyncAlwaysSurvivesCrash(t *testing.T) {
	m := vfs.NewMem()
	l := openMem(t, m, Options{})
	appendN(t, l, 10)
	c := m.Crash()
	mustClose(t, l)
	l = openMem(t, c, Options{})
	defer mustClose(t, l)
	checkRecords(t, replayAll(t, l, 1), 1, 10)
}

// TestLockFreeAccessors holds every lock of the log while it calls the
// accessors that promise to take none; taking one would hang the test.
func TestLockFreeAccessors(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{})
	defer mustClose(t, l)
	appendN(t, l, 3)

	l.truncMu.Lock()
	l.flushMu.Lock()
	l.mu.Lock()
	l.dirMu.Lock()
	l.commit.mu.Lock()
	l.SetProcessed(2)
	got := []uint64{l.Processed(), l.NextSeq(), l.DurableSeq(), l.FirstSeq(), uint64(l.Size())}
	err := l.Err()
	l.commit.mu.Unlock()
	l.dirMu.Unlock()
	l.mu.Unlock()
	l.flushMu.Unlock()
	l.truncMu.Unlock()

	if got[0] != 2 || got[1] != 4 || got[2] != 3 || got[3] != 1 || got[4] == 0 || err != nil {
		t.Fatalf("processed, next, durable, first, size = %v, err %v", got, err)
	}
}

// TestWaitJoinsRoundInFlight: a waiter whose record the sync round in
// flight already covers is answered by that round, not by the next one.
// The second round's fsync is held until the waiter has its answer, so a
// waiter that joined the next round would never get one.
func TestWaitJoinsRoundInFlight(t *testing.T) {
	m := vfs.NewMem()
	l := openMem(t, m, Options{})
	defer mustClose(t, l)
	var syncs atomic.Int32
	entered := make(chan int32, 2)
	release := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var released [2]sync.Once
	free := func(i int) { released[i].Do(func() { close(release[i]) }) }
	defer free(1) // before Close, whose last round syncs
	defer free(0)
	m.SetOnOp(func(op vfs.Op, path string) error {
		if op != vfs.OpSync || path != testDir+"/"+fileName {
			return nil
		}
		n := syncs.Add(1)
		if n <= 2 {
			entered <- n
			<-release[n-1]
		}
		return nil
	})
	defer m.SetOnOp(nil)
	joined := make(chan bool, 1)
	l.commit.onJoin = func(inflight bool) { joined <- inflight }

	_, last, err := l.Write([][]byte{testPayload(1)})
	if err != nil {
		t.Fatal(err)
	}
	if n := <-entered; n != 1 { // the first round syncs record 1
		t.Fatalf("sync %d entered first", n)
	}
	done := make(chan error, 1)
	go func() { done <- l.WaitDurable(last) }()
	if !<-joined {
		t.Fatal("the waiter for record 1 joined the next round")
	}
	l.commit.onJoin = nil
	if _, _, err := l.Write([][]byte{testPayload(2)}); err != nil {
		t.Fatal(err)
	}
	free(0)
	if n := <-entered; n != 2 { // the next round, for record 2, is held
		t.Fatalf("sync %d entered second", n)
	}
	if err := <-done; err != nil {
		t.Fatalf("wait for record %d: %v", last, err)
	}
	free(1)
	if err := l.WaitDurable(last + 1); err != nil {
		t.Fatalf("wait for record %d: %v", last+1, err)
	}
}

// TestPreallocatedTail: the log file runs up to preallocBytes of zeros
// ahead of its records; Close cuts them, and after a crash Open takes them
// for the end of the log, with every record.
func TestPreallocatedTail(t *testing.T) {
	m := vfs.NewMem()
	l := openMem(t, m, Options{})
	last := appendN(t, l, 5)
	b := logBytes(t, m)
	if n := int64(len(b)); n <= l.Size() || n > l.Size()+preallocBytes || !allZero(b[l.Size():]) {
		t.Fatalf("file of %d bytes, want %d records' bytes then up to %d zeros",
			len(b), l.Size(), preallocBytes)
	}

	crashed := m.Crash()
	l2, reps := openWithRepairs(t, crashed)
	if len(reps) != 0 {
		t.Fatalf("repairs after a crash %+v, want none: zeros are no damage", reps)
	}
	checkRecords(t, replayAll(t, l2, 1), 1, last)
	mustClose(t, l2)

	mustClose(t, l)
	if b := logBytes(t, m); int64(len(b)) != l.Size() {
		t.Fatalf("file of %d bytes after Close, want %d", len(b), l.Size())
	}
	l3, reps := openWithRepairs(t, m)
	defer mustClose(t, l3)
	if len(reps) != 0 {
		t.Fatalf("repairs after a clean Close: %+v", reps)
	}
	checkRecords(t, replayAll(t, l3, 1), 1, last)
}
