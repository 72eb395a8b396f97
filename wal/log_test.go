package wal

import (
	"errors"
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
