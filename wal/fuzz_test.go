package wal

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzScan reads arbitrary bytes as a log file. Scanning must not panic,
// must not allocate more than the input holds, must end in a sound log, a
// torn tail or a *CorruptionError, and Open must agree with it.
func FuzzScan(f *testing.F) {
	b := soundLog(f, 3)
	f.Add(b)
	f.Add(b[:len(b)-4])
	f.Fuzz(func(t *testing.T, b []byte) {
		records := 0
		res, err := scanFile(bytes.NewReader(b), "log", int64(len(b)),
			func(_ uint64, off int64, p []byte) error {
				if off < fileHeaderSize || off+recordHeaderSize+int64(len(p)) > int64(len(b)) {
					t.Fatalf("record at %d with %d bytes outside the input", off, len(p))
				}
				records++
				return nil
			})
		if res.maxAlloc > len(b) {
			t.Fatalf("allocated %d bytes for an input of %d", res.maxAlloc, len(b))
		}
		if err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.Offset < 0 || ce.Offset >= int64(max(len(b), 1)) {
				t.Fatalf("scan: %v", err)
			}
			return
		}
		if res.records != records || res.end > int64(len(b)) ||
			res.tornOff >= 0 && res.tornOff != res.end {
			t.Fatalf("inconsistent scan: %+v, %d records", res, records)
		}

		// Open cuts exactly the torn tail and replays the same records.
		m := memWithLog(t, b)
		var cut int64 = -1
		l, err := Open(testDir, Options{FS: m, Sync: SyncNone, MaxRecordSize: 1,
			OnRepair: func(_ string, off int64, _ string) { cut = off }})
		if err != nil {
			t.Fatalf("open after a clean scan: %v", err)
		}
		defer mustClose(t, l)
		if cut != res.tornOff || l.Size() != res.end {
			t.Fatalf("open cut at %d to size %d, scan said %d and %d", cut, l.Size(), res.tornOff, res.end)
		}
		if n := len(replayAll(t, l, 0)); n != records || l.NextSeq() != res.next {
			t.Fatalf("replayed %d records, next %d; scan %d, next %d", n, l.NextSeq(), records, res.next)
		}
	})
}
