package wal

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/pstate/pstate/wal/vfs"
)

func TestFailedFsyncFailsGroupAndLog(t *testing.T) {
	m := vfs.NewMem()
	l := openMem(t, m, Options{})
	appendN(t, l, 5)

	var syncs atomic.Int32
	entered := make(chan struct{})
	release := make(chan struct{})
	m.SetOnOp(func(op vfs.Op, p string) error {
		if op != vfs.OpSync || p != testDir+"/"+fileName {
			return nil
		}
		if syncs.Add(1) == 1 {
			close(entered)
			<-release
		}
		return syscall.EIO
	})

	const n = 9
	var wg sync.WaitGroup
	written := make(chan struct{}, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, last, err := l.Write([][]byte{[]byte("x")})
			written <- struct{}{}
			if err == nil {
				err = l.WaitDurable(last)
			}
			errs[i] = err
		}()
	}
	<-entered
	for range n {
		<-written
	}
	close(release)
	wg.Wait()

	for i, err := range errs {
		if !errors.Is(err, ErrFailed) {
			t.Errorf("appender %d: %v, want ErrFailed", i, err)
		}
	}
	if !errors.Is(l.Err(), syscall.EIO) || !errors.Is(l.Err(), ErrFailed) {
		t.Fatalf("Err() = %v", l.Err())
	}
	if _, _, err := l.Write([][]byte{[]byte("y")}); !errors.Is(err, ErrFailed) {
		t.Fatalf("write after a failed fsync = %v", err)
	}
	if err := l.TruncateBefore(3); !errors.Is(err, ErrFailed) {
		t.Fatalf("truncate after a failed fsync = %v", err)
	}
	if l.DurableSeq() != 5 {
		t.Fatalf("durable seq moved to %d", l.DurableSeq())
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("close = %v", err)
	}
	if got := syncs.Load(); got != 1 {
		t.Fatalf("fsync tried %d times after it failed, want 1", got)
	}

	m.SetOnOp(nil)
	l = openMem(t, m.Crash(), Options{})
	defer mustClose(t, l)
	checkRecords(t, replayAll(t, l, 1), 1, 5)
}

func TestShortWriteLeavesNoPartialRecord(t *testing.T) {
	for _, failTruncate := range []bool{false, true} {
		m := vfs.NewMem()
		l := openMem(t, m, Options{})
		appendN(t, l, 5)
		// A record written before the failure still becomes durable.
		_, pending, err := l.Write([][]byte{testPayload(6)})
		if err != nil {
			t.Fatal(err)
		}
		// The file holds the records, then the zeros laid ahead of them.
		before := logBytes(t, m)
		if !allZero(before[l.Size():]) {
			t.Fatal("the bytes after the last record are not zeros")
		}
		before = before[:l.Size()]

		m.Inject(vfs.Fault{Op: vfs.OpWrite, Path: fileName, Err: syscall.ENOSPC, Prefix: 7})
		if failTruncate {
			m.Inject(vfs.Fault{Op: vfs.OpTruncate, Path: fileName})
		}
		_, _, err = l.Append([][]byte{testPayload(7), testPayload(8)})
		if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrFailed) {
			t.Fatalf("append on a full disk = %v", err)
		}
		if err := l.WaitDurable(pending); err != nil {
			t.Fatalf("record written before the failure: %v", err)
		}
		if _, _, err := l.Write([][]byte{nil}); !errors.Is(err, ErrFailed) {
			t.Fatalf("write after a failed write = %v", err)
		}
		if l.NextSeq() != 7 || l.Size() != int64(len(before)) {
			t.Fatalf("next %d size %d after the failed write", l.NextSeq(), l.Size())
		}
		after := logBytes(t, m)
		if !failTruncate && !bytes.Equal(after, before) {
			t.Fatalf("partial record left: %d bytes, want %d", len(after), len(before))
		}
		if failTruncate && (!bytes.Equal(after[:len(before)], before) ||
			allZero(after[len(before):len(before)+7]) || !allZero(after[len(before)+7:])) {
			t.Fatal("want the 7 partial bytes left when the cut fails, then the zeros")
		}
		_ = l.Close()
		m.ClearFaults()

		// The current files: the partial record is cut at once, or at the
		// next Open when the cut failed.
		crash := m.Crash()
		l, reps := openWithRepairs(t, m)
		checkRecords(t, replayAll(t, l, 1), 1, 6)
		if failTruncate != (len(reps) == 1) || len(reps) == 1 && reps[0].offset != int64(len(before)) {
			t.Fatalf("repairs %+v, want one at %d: %v", reps, len(before), failTruncate)
		}
		mustClose(t, l)

		// After a crash: a sync round may or may not have caught the
		// partial bytes; either way the answered records are there.
		l, reps = openWithRepairs(t, crash)
		checkRecords(t, replayAll(t, l, 1), 1, 6)
		if len(reps) > 1 || len(reps) == 1 && reps[0].offset != int64(len(before)) {
			t.Fatalf("repairs after a crash %+v, want none or one at %d", reps, len(before))
		}
		mustClose(t, l)
	}
}

func openWithRepairs(t *testing.T, m *vfs.Mem) (*Log, []repair) {
	t.Helper()
	var reps []repair
	l, err := Open(testDir, Options{FS: m, OnRepair: func(f string, off int64, why string) {
		reps = append(reps, repair{f, off, why})
	}})
	if err != nil {
		t.Fatal(err)
	}
	return l, reps
}

// TestFaultAtEveryTruncationOp fails the k-th operation of a truncation
// for every k: the truncation either fails and leaves the log as it was
// or fails the log; no answered record is lost either way.
func TestFaultAtEveryTruncationOp(t *testing.T) {
	for k := 0; ; k++ {
		m := vfs.NewMem()
		l := openMem(t, m, Options{})
		appendN(t, l, 20)
		start := m.Ops()
		m.Inject(vfs.Fault{After: k, Times: 1})
		terr := l.TruncateBefore(10)
		used := m.Ops() - start
		m.ClearFaults()

		acked := uint64(20)
		if l.Err() == nil {
			acked = appendN(t, l, 3)
		}
		first := l.FirstSeq()
		if terr == nil && first != 10 || terr != nil && first != 1 && l.Err() == nil {
			t.Fatalf("k %d: truncate = %v, first seq %d", k, terr, first)
		}
		_ = l.Close()

		l = openMem(t, m.Crash(), Options{})
		recs := replayAll(t, l, 10)
		if uint64(len(recs)) < acked-9 {
			t.Fatalf("k %d (truncate: %v): %d records from 10, want up to %d", k, terr, len(recs), acked)
		}
		checkRecords(t, recs[:acked-9], 10, acked)
		mustClose(t, l)
		if terr == nil && int64(k) >= used {
			t.Logf("failed each of %d operations", k)
			return
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
