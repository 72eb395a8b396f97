package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pstate/pstate/wal/vfs"
)

// soundLog returns the bytes of a log with records 1..n.
func soundLog(t testing.TB, n int) []byte {
	t.Helper()
	m := vfs.NewMem()
	l := openMem(t, m, Options{Sync: SyncNone})
	if n > 0 {
		appendN(t, l, n)
	}
	mustClose(t, l)
	return logBytes(t, m)
}

type repair struct {
	file   string
	offset int64
	reason string
}

// openRepaired opens a log holding b and returns the log and the repairs.
func openRepaired(t *testing.T, b []byte) (*Log, *vfs.Mem, []repair) {
	t.Helper()
	m := memWithLog(t, b)
	var reps []repair
	l, err := Open(testDir, Options{FS: m, OnRepair: func(file string, off int64, why string) {
		reps = append(reps, repair{file, off, why})
	}})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l, m, reps
}

func TestTornTailAtEveryOffset(t *testing.T) {
	const n = 5
	b := soundLog(t, n)
	offs := recordOffsets(t, b)
	lastOff := offs[n-1]
	for cut := lastOff + 1; cut < int64(len(b)); cut++ {
		torn := b[:cut]

		info, err := Scan(memWithLog(t, torn), testDir, nil)
		if err != nil || info.TornOffset != lastOff || info.Records != n-1 {
			t.Fatalf("cut %d: scan = %+v, %v", cut, info, err)
		}

		l, m, reps := openRepaired(t, torn)
		if len(reps) != 1 || reps[0].offset != lastOff || reps[0].file != testDir+"/"+fileName {
			t.Fatalf("cut %d: repairs %+v, want one at %d", cut, reps, lastOff)
		}
		checkRecords(t, replayAll(t, l, 1), 1, n-1)
		if got := int64(len(logBytes(t, m.Crash()))); got != lastOff {
			t.Fatalf("cut %d: durable size after repair %d, want %d", cut, got, lastOff)
		}
		// The next record continues the sequence in place of the torn one.
		appendN(t, l, 1)
		mustClose(t, l)
		l, _, reps = openRepaired(t, logBytes(t, m))
		if len(reps) != 0 {
			t.Fatalf("cut %d: second open repaired again: %+v", cut, reps)
		}
		checkRecords(t, replayAll(t, l, 1), 1, n)
		mustClose(t, l)
	}
}

func TestTornTails(t *testing.T) {
	b := soundLog(t, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 300)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	cases := []struct {
		name, reason string
		tail         []byte
	}{
		{"garbage", "", garbage},
		{"garbage then zeros", "", append(bytes.Clone(garbage[:40]), make([]byte, 5000)...)},
		{"garbage byte", "short header", []byte{0xff}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, m, reps := openRepaired(t, append(bytes.Clone(b), tc.tail...))
			defer mustClose(t, l)
			if len(reps) != 1 || reps[0].offset != int64(len(b)) {
				t.Fatalf("repairs %+v, want one at %d", reps, len(b))
			}
			if tc.reason != "" && !bytes.HasPrefix([]byte(reps[0].reason), []byte(tc.reason)) {
				t.Fatalf("reason %q, want %q", reps[0].reason, tc.reason)
			}
			checkRecords(t, replayAll(t, l, 1), 1, 4)
			if !bytes.Equal(logBytes(t, m), b) {
				t.Fatal("file not cut back to the sound records")
			}
		})
	}
}

// TestZeroTails: zeros after the last record, as a running log lays them
// ahead of its records, are the log's end and no damage. Open keeps them
// and writes over them.
func TestZeroTails(t *testing.T) {
	b := soundLog(t, 4)
	for _, n := range []int{1, 5, recordHeaderSize, 10000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			file := append(bytes.Clone(b), make([]byte, n)...)
			info, err := Scan(memWithLog(t, file), testDir, nil)
			if err != nil || info.TornOffset != -1 || info.Zeros != int64(n) || info.NextSeq != 5 {
				t.Fatalf("scan: %+v, %v", info, err)
			}
			l, m, reps := openRepaired(t, file)
			if len(reps) != 0 {
				t.Fatalf("repairs %+v", reps)
			}
			if !bytes.Equal(logBytes(t, m), file) {
				t.Fatal("Open changed the file")
			}
			appendN(t, l, 2)
			checkRecords(t, replayAll(t, l, 1), 1, 6)
			mustClose(t, l)
			l = openMem(t, m, Options{})
			defer mustClose(t, l)
			checkRecords(t, replayAll(t, l, 1), 1, 6)
		})
	}
}

func TestScanDoesNotModify(t *testing.T) {
	b := append(soundLog(t, 3), 1, 2, 3)
	m := memWithLog(t, b)
	var seqs []uint64
	info, err := Scan(m, testDir, func(seq uint64, off int64, p []byte) error {
		seqs = append(seqs, seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 3 || info.FirstSeq != 1 || info.NextSeq != 4 || info.Size != int64(len(b)) ||
		info.TornOffset != int64(len(b)-3) || info.TornReason == "" {
		t.Fatalf("scan: %+v, seqs %v", info, seqs)
	}
	if !bytes.Equal(logBytes(t, m), b) {
		t.Fatal("Scan modified the log")
	}
}

// corruptions of record 3 of a sound log with 6 records.
var corruptions = []struct {
	name   string
	kind   string
	mutate func(b []byte, off int64)
}{
	{"payload bit", KindChecksum, func(b []byte, off int64) {
		b[off+recordHeaderSize+2] ^= 0x10
	}},
	{"checksum bit", KindChecksum, func(b []byte, off int64) { b[off] ^= 1 }},
	{"seq bit", KindChecksum, func(b []byte, off int64) { b[off+9] ^= 4 }},
	{"length smaller", KindChecksum, func(b []byte, off int64) { b[off+4]-- }},
	{"length larger", KindChecksum, func(b []byte, off int64) { b[off+4] += 20 }},
	{"length past end", KindLength, func(b []byte, off int64) { b[off+6] = 0x10 }},
	{"length huge", KindLength, func(b []byte, off int64) { b[off+7] = 0xff }},
	{"zeroed header", KindChecksum, func(b []byte, off int64) {
		clear(b[off : off+recordHeaderSize])
	}},
	{"seq skips", KindSequence, func(b []byte, off int64) { reseq(b, off, 4) }},
	{"seq backwards", KindSequence, func(b []byte, off int64) { reseq(b, off, 2) }},
}

// reseq rewrites the seq of the record at off and fixes its checksum.
func reseq(b []byte, off int64, seq uint64) {
	h := b[off : off+recordHeaderSize]
	n := binary.LittleEndian.Uint32(h[4:8])
	binary.LittleEndian.PutUint64(h[8:16], seq)
	sum := recordSum(h, b[off+recordHeaderSize:off+recordHeaderSize+int64(n)])
	binary.LittleEndian.PutUint32(h[0:4], sum)
}

func TestCorruptionInTheMiddle(t *testing.T) {
	b := soundLog(t, 6)
	off := recordOffsets(t, b)[2]
	for _, tc := range corruptions {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(b)
			tc.mutate(bad, off)
			m := memWithLog(t, bad)
			_, err := Open(testDir, Options{FS: m, OnRepair: func(string, int64, string) {
				t.Error("damage in the middle was repaired")
			}})
			ce := asCorruption(t, err)
			if ce.Offset != off || ce.Kind != tc.kind || ce.File != testDir+"/"+fileName {
				t.Fatalf("got %+v (%v), want offset %d kind %q", ce, err, off, tc.kind)
			}
			if !bytes.Equal(logBytes(t, m), bad) {
				t.Fatal("Open modified a damaged log")
			}
			var seen int
			info, err := Scan(m, testDir, func(uint64, int64, []byte) error { seen++; return nil })
			if ce := asCorruption(t, err); ce.Offset != off || seen != 2 || info.Records != 2 {
				t.Fatalf("scan: %+v, %d records before", ce, seen)
			}
		})
	}
}

func TestDamagedFileHeader(t *testing.T) {
	b := soundLog(t, 2)
	for _, mutate := range []func([]byte) []byte{
		func(b []byte) []byte { b[0] = 'X'; return b },
		func(b []byte) []byte { b[17] ^= 1; return b },
		func(b []byte) []byte { return b[:fileHeaderSize-1] },
		func(b []byte) []byte { return b[:0] },
	} {
		_, err := Open(testDir, Options{FS: memWithLog(t, mutate(bytes.Clone(b)))})
		if ce := asCorruption(t, err); ce.Offset != 0 || ce.Kind != KindHeader {
			t.Fatalf("got %+v", ce)
		}
	}
}

func TestRecordSizeLimit(t *testing.T) {
	m := vfs.NewMem()
	l := openMem(t, m, Options{MaxRecordSize: 100})
	big := bytes.Repeat([]byte{'a'}, 100)
	if _, _, err := l.Append([][]byte{big}); err != nil {
		t.Fatalf("a record at the limit: %v", err)
	}
	if _, _, err := l.Append([][]byte{nil, append(big, 'b')}); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("over the limit = %v", err)
	}
	if l.NextSeq() != 2 {
		t.Fatalf("a refused batch took seqs: next %d", l.NextSeq())
	}
	mustClose(t, l)

	// A smaller limit later still reads what was written; Write obeys it.
	l = openMem(t, m, Options{MaxRecordSize: 10})
	if recs := replayAll(t, l, 1); len(recs) != 1 || recs[0].payload != string(big) {
		t.Fatalf("replay under a smaller limit: %v", recs)
	}
	if _, _, err := l.Write([][]byte{big[:11]}); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("write over the smaller limit = %v", err)
	}
	mustClose(t, l)

	// A larger limit rewrites the header, so the records it lets through
	// read back.
	l = openMem(t, m, Options{MaxRecordSize: 1000})
	huge := bytes.Repeat([]byte{'c'}, 1000)
	if _, _, err := l.Append([][]byte{huge}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	info, err := Scan(m, testDir, nil)
	if err != nil || info.Records != 2 {
		t.Fatalf("scan after a larger limit: %+v, %v", info, err)
	}
}

func TestStrayTempRemovedAtOpen(t *testing.T) {
	m := memWithLog(t, soundLog(t, 2))
	if err := m.WriteFile(testDir+"/"+tmpName, []byte("partial")); err != nil {
		t.Fatal(err)
	}
	l := openMem(t, m, Options{})
	defer mustClose(t, l)
	names, err := m.List(testDir)
	if err != nil || len(names) != 1 || names[0] != fileName {
		t.Fatalf("dir holds %v, %v", names, err)
	}
	checkRecords(t, replayAll(t, l, 1), 1, 2)
}

func TestZeroHeaderIsNotARecord(t *testing.T) {
	z := make([]byte, recordHeaderSize)
	if decodeRecordHeader(z).crc == recordSum(z, nil) {
		t.Fatal("an all-zero header passes its checksum")
	}
}
