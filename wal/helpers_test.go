package wal

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/pstate/pstate/wal/vfs"
)

const testDir = "/data/wal"

// testPayload is the payload of record seq in tests: its length varies so
// that offsets do not line up.
func testPayload(seq uint64) []byte {
	return fmt.Appendf(nil, "record %d %s", seq, bytes.Repeat([]byte{'x'}, int(seq%37)))
}

func openMem(t testing.TB, m *vfs.Mem, opts Options) *Log {
	t.Helper()
	opts.FS = m
	l, err := Open(testDir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func mustClose(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// appendN appends records with testPayload, one per call, and returns the
// last seq.
func appendN(t testing.TB, l *Log, n int) uint64 {
	t.Helper()
	var last uint64
	for range n {
		seq := l.NextSeq()
		_, l2, err := l.Append([][]byte{testPayload(seq)})
		if err != nil {
			t.Fatalf("append %d: %v", seq, err)
		}
		last = l2
	}
	return last
}

type rec struct {
	seq     uint64
	payload string
}

func replayAll(t testing.TB, l *Log, from uint64) []rec {
	t.Helper()
	var got []rec
	err := l.Replay(from, func(seq uint64, p []byte) error {
		got = append(got, rec{seq, string(p)})
		return nil
	})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	return got
}

// checkRecords checks that recs are exactly seqs from..to with
// testPayload.
func checkRecords(t testing.TB, recs []rec, from, to uint64) {
	t.Helper()
	if want := int(to - from + 1); from > to && len(recs) == 0 {
		return
	} else if len(recs) != want {
		t.Fatalf("got %d records, want %d (seqs %d..%d)", len(recs), want, from, to)
	}
	for i, r := range recs {
		seq := from + uint64(i)
		if r.seq != seq || r.payload != string(testPayload(seq)) {
			t.Fatalf("record %d: seq %d payload %q, want seq %d", i, r.seq, r.payload, seq)
		}
	}
}

// logBytes returns the current bytes of the log file of a Mem.
func logBytes(t testing.TB, m *vfs.Mem) []byte {
	t.Helper()
	b, err := m.ReadFile(testDir + "/" + fileName)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// memWithLog returns a Mem whose log file holds b, durably.
func memWithLog(t testing.TB, b []byte) *vfs.Mem {
	t.Helper()
	m := vfs.NewMem()
	if err := m.MkdirAll(testDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/", "/data"} {
		if err := m.SyncDir(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.WriteFile(testDir+"/"+fileName, b); err != nil {
		t.Fatal(err)
	}
	return m
}

// recordOffsets returns the offset of each record of a sound log file.
func recordOffsets(t testing.TB, b []byte) []int64 {
	t.Helper()
	var offs []int64
	_, err := scanFile(bytes.NewReader(b), "log", int64(len(b)),
		func(_ uint64, off int64, _ []byte) error {
			offs = append(offs, off)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return offs
}

func asCorruption(t testing.TB, err error) *CorruptionError {
	t.Helper()
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *CorruptionError", err)
	}
	return ce
}
