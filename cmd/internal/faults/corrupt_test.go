package faults

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// The corruption matrix: a real data directory in a temporary dir, damaged
// in one way per case, then checked offline with datadir.Verify and opened
// with datadir.Recover. Each case must end in one of three ways, and
// Verify must say the same thing as recovery:
//
//   - a torn tail cut, reported (OnRepair) with the file and the offset of
//     the first record lost; the state is a fresh replay of the records
//     before it; Verify finds a torn tail there and no fault;
//   - a fall back to an older snapshot the log still covers, the damaged
//     one named; the state is complete; Verify names the damaged file;
//   - a refusal naming the file, the offset and the kind; Verify reports a
//     fault at that file and offset.
//
// Never a panic, never more memory than the files hold, never a state that
// lacks a record without a repair report.

// maxRecoverAlloc bounds what one recovery of the small test dirs may
// allocate: far above their size, far below what an absurd length field
// would make a trusting reader allocate.
const maxRecoverAlloc = 64 << 20

// record is one log record of a pristine dir: its seq, offset and size.
type logRecord struct {
	seq      uint64
	off, end int64
}

// pristine is an undamaged data dir and what it holds.
type pristine struct {
	dir     string
	hist    *history
	records []logRecord
	logFile string
	logSize int64
	last    uint64 // seq of the last record written
	snaps   []checkpoint.Info
}

// buildDir makes a data dir on the real filesystem: batches of one event
// each (so the log holds many small records), with the snapshots asked for.
// fallback leaves the newest snapshot's log records in place, as a crash
// between its rename and the truncation would; withSnaps false makes no
// snapshot at all.
func buildDir(t *testing.T, events int, withSnaps, fallback bool) *pristine {
	t.Helper()
	p := &pristine{dir: t.TempDir(), hist: newHistory()}
	s, err := openStack(vfs.OS, p.dir, p.hist, wal.SyncAlways)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	submit := func(from, to int) {
		for i := from; i < to; i++ {
			ev := pstate.Event{Type: pstate.TypeJobSubmitted, ID: fmt.Sprintf("e%d", i),
				JobID: fmt.Sprintf("j%04d", i), Name: "corrupt", Steps: []string{"a", "b"},
				Labels: map[string]string{"k": "v"}}
			if _, err := s.engine.Submit(ctx, []pstate.Event{ev}); err != nil {
				t.Fatal(err)
			}
		}
	}
	third := events / 3
	submit(0, third)
	if withSnaps {
		if _, err := s.ckpt.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	submit(third, 2*third)
	if withSnaps {
		if fallback {
			root := s.engine.Root()
			seq, counts := root.Meta()
			_, err = checkpoint.Write(vfs.OS, filepath.Join(p.dir, datadir.SnapshotDir),
				checkpoint.Meta{Seq: seq, Counts: counts}, root.EncodeSnapshot)
		} else {
			_, err = s.ckpt.Checkpoint(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	submit(2*third, events)
	p.last = s.engine.Root().Seq()
	// Stop without the final checkpoint, as a kill would.
	s.engine.Close()
	_ = s.ckpt.Close()
	if err := s.log.Close(); err != nil {
		t.Fatal(err)
	}

	info, err := wal.Scan(vfs.OS, filepath.Join(p.dir, datadir.WALDir),
		func(seq uint64, off int64, payload []byte) error {
			p.records = append(p.records, logRecord{seq: seq, off: off,
				end: off + 16 + int64(len(payload))})
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	p.logFile, p.logSize = info.File, info.Size
	if p.snaps, err = checkpoint.List(vfs.OS, filepath.Join(p.dir, datadir.SnapshotDir)); err != nil {
		t.Fatal(err)
	}
	return p
}

// clone copies the pristine dir to a fresh temporary dir and returns the
// copy's path and the path of the given file in it.
func (p *pristine) clone(t *testing.T, file string) (dir, copyOf string) {
	t.Helper()
	dir = t.TempDir()
	err := filepath.Walk(p.dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p.dir, path)
		dst := filepath.Join(dir, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(p.dir, file)
	return dir, filepath.Join(dir, rel)
}

// repair is one OnRepair report.
type repair struct {
	file   string
	offset int64
	reason string
}

// outcome is what Verify and Recover made of a damaged dir.
type outcome struct {
	findings []datadir.Finding
	repairs  []repair
	rec      *datadir.Recovered
	err      error
	alloc    uint64
}

// open runs Verify, then Recover, on dir (Verify first: it must see the
// damage before recovery repairs it).
func open(t *testing.T, dir string) outcome {
	t.Helper()
	var o outcome
	var err error
	o.findings, err = datadir.Verify(dir)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	o.rec, o.err = datadir.Recover(dir, datadir.RecoverOptions{WAL: wal.Options{
		Sync: wal.SyncAlways,
		OnRepair: func(file string, offset int64, reason string) {
			o.repairs = append(o.repairs, repair{file, offset, reason})
		}}})
	runtime.ReadMemStats(&after)
	o.alloc = after.TotalAlloc - before.TotalAlloc
	if o.rec != nil {
		t.Cleanup(func() { _ = o.rec.Log.Close() })
	}
	return o
}

// faults returns the findings that are damage.
func (o *outcome) faults() []datadir.Finding {
	var out []datadir.Finding
	for _, f := range o.findings {
		if f.Fault() {
			out = append(out, f)
		}
	}
	return out
}

// expect is what a case must end in.
type expect struct {
	// repairAt >= 0: a torn tail cut there, the state at seq keep.
	repairAt int64
	keep     uint64
	// refuse: recovery fails naming file, offset and kind.
	refuse     bool
	file, kind string
	offset     int64
	// fallback: recovery used an older snapshot and named damaged.
	damaged string
}

// check holds o to e and to the rules every case shares. It returns an
// error describing the first broken rule.
func (p *pristine) check(o outcome, dir string, e expect) error {
	if o.alloc > maxRecoverAlloc {
		return fmt.Errorf("recovery allocated %d bytes", o.alloc)
	}
	rebase := func(f string) string {
		rel, _ := filepath.Rel(dir, f)
		return filepath.Join(p.dir, rel)
	}
	if e.refuse {
		return p.checkRefusal(o, rebase, e)
	}
	if o.err != nil {
		return fmt.Errorf("recovery refused: %v", o.err)
	}
	want := e.keep
	if e.repairAt < 0 {
		want = p.last
		if len(o.repairs) > 0 {
			return fmt.Errorf("unexpected repair %+v", o.repairs)
		}
	} else {
		if len(o.repairs) != 1 || rebase(o.repairs[0].file) != p.logFile ||
			o.repairs[0].offset != e.repairAt {
			return fmt.Errorf("repairs %+v, want one of %s at %d", o.repairs, p.logFile, e.repairAt)
		}
		if !hasFinding(o.findings, datadir.KindTornTail, p.logFile, e.repairAt, rebase) {
			return fmt.Errorf("verify did not report the torn tail at %d: %v", e.repairAt, o.findings)
		}
	}
	if got := o.rec.State.Seq(); got != want {
		return fmt.Errorf("recovered seq %d, want %d", got, want)
	}
	fresh, err := p.hist.replayPrefix(want)
	if err != nil {
		return err
	}
	if same, err := sameState(o.rec.State, fresh); err != nil || !same {
		return fmt.Errorf("recovered state is not the replay of records 1..%d (%v)", want, err)
	}
	if e.damaged != "" {
		if len(o.rec.Damaged) != 1 || !errorNames(o.rec.Damaged[0], e.damaged, rebase) {
			return fmt.Errorf("damaged %v, want %s", o.rec.Damaged, e.damaged)
		}
		if !hasFinding(o.faults(), "", e.damaged, -2, rebase) {
			return fmt.Errorf("verify did not name %s: %v", e.damaged, o.findings)
		}
		return nil
	}
	if fs := o.faults(); len(fs) > 0 {
		return fmt.Errorf("verify reports faults recovery did not see: %v", fs)
	}
	return nil
}

func (p *pristine) checkRefusal(o outcome, rebase func(string) string, e expect) error {
	if o.err == nil {
		return fmt.Errorf("recovery succeeded at seq %d (repairs %+v); want a refusal at %s:%d",
			o.rec.State.Seq(), o.repairs, e.file, e.offset)
	}
	var we *wal.CorruptionError
	var ce *checkpoint.CorruptionError
	var file, kind string
	var off int64
	switch {
	case errors.As(o.err, &we):
		file, off, kind = we.File, we.Offset, we.Kind
	case errors.As(o.err, &ce):
		file, off, kind = ce.File, ce.Offset, ce.Kind
	default:
		return fmt.Errorf("refusal without file and offset: %v", o.err)
	}
	if rebase(file) != e.file || (e.offset >= 0 && off != e.offset) ||
		(e.kind != "" && kind != e.kind) {
		return fmt.Errorf("refused at %s:%d (%s), want %s:%d (%s): %v",
			file, off, kind, e.file, e.offset, e.kind, o.err)
	}
	if !hasFinding(o.faults(), kind, e.file, off, rebase) {
		return fmt.Errorf("verify does not agree: recovery refused at %s:%d (%s), verify found %v",
			file, off, kind, o.findings)
	}
	return nil
}

// hasFinding reports a finding of kind ("" any) in file at offset (-2 any).
func hasFinding(fs []datadir.Finding, kind, file string, offset int64,
	rebase func(string) string) bool {
	for _, f := range fs {
		if (kind == "" || f.Kind == kind) && rebase(f.File) == file &&
			(offset == -2 || f.Offset == offset) {
			return true
		}
	}
	return false
}

// errorNames reports whether err is a snapshot CorruptionError of file.
func errorNames(err error, file string, rebase func(string) string) bool {
	var ce *checkpoint.CorruptionError
	return errors.As(err, &ce) && rebase(ce.File) == file
}

// recordAt returns the index of the record holding byte off, or -1 for
// the file header.
func (p *pristine) recordAt(off int64) int {
	for i, r := range p.records {
		if off >= r.off && off < r.end {
			return i
		}
	}
	return -1
}

// corruptStats counts the cases of the matrix for the summary.
type corruptStats struct{ log, snap, refused, repaired, fellBack int }

func (c *corruptStats) add(e expect, snap bool) {
	if snap {
		c.snap++
	} else {
		c.log++
	}
	switch {
	case e.refuse:
		c.refused++
	case e.damaged != "":
		c.fellBack++
	case e.repairAt >= 0:
		c.repaired++
	}
}

// mutate writes f(b) over file.
func mutate(t *testing.T, file string, f func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runCase clones p, mutates file, opens the clone and checks it.
func (p *pristine) runCase(t *testing.T, name, file string, f func([]byte) []byte,
	e expect, st *corruptStats) {
	t.Helper()
	dir, target := p.clone(t, file)
	mutate(t, target, f)
	o := open(t, dir)
	if err := p.check(o, dir, e); err != nil {
		t.Errorf("%s: %v", name, err)
	}
	st.add(e, file != p.logFile)
}

func TestCorruptLog(t *testing.T) {
	p := buildDir(t, 12, false, false)
	var st corruptStats
	n := len(p.records)
	lastOff := p.records[n-1].off

	// The log cut at every offset of its last three records (every third
	// in the normal run), and every byte flipped (every fourth).
	cutStride, flipStride := int64(pick(3, 1)), int64(pick(4, 1))
	for off := p.records[n-3].off; off < p.logSize; off += cutStride {
		cut := off
		i := p.recordAt(cut)
		if cut == p.records[i].off {
			// A cut at a record boundary leaves a shorter sound log.
			p.runCutAtBoundary(t, cut, i, &st)
			continue
		}
		p.runCase(t, fmt.Sprintf("cut at %d", cut), p.logFile,
			func(b []byte) []byte { return b[:cut] },
			expect{repairAt: p.records[i].off, keep: p.records[i].seq - 1}, &st)
	}

	for off := int64(0); off < p.logSize; off += flipStride {
		o := off
		var e expect
		switch i := p.recordAt(o); {
		case i < 0:
			e = expect{refuse: true, file: p.logFile, offset: 0, kind: wal.KindHeader}
		case i == n-1:
			e = expect{repairAt: lastOff, keep: p.records[i].seq - 1}
		default:
			e = expect{refuse: true, file: p.logFile, offset: p.records[i].off}
		}
		p.runCase(t, fmt.Sprintf("flip byte %d", o), p.logFile,
			func(b []byte) []byte { b[o] ^= 0x5a; return b }, e, &st)
	}

	for _, c := range p.tailCases() {
		p.runCase(t, c.name, p.logFile, c.f, c.e, &st)
	}
	t.Logf("SUMMARY corruption matrix (log): %d cases: %d torn tails repaired, %d refused",
		st.log, st.repaired, st.refused)
}

// tailCase is a named damage of the log and what it must end in.
type tailCase struct {
	name string
	f    func([]byte) []byte
	e    expect
}

// tailCases are the tails a crash or a bad disk leaves, a repeated record
// and records with absurd length fields.
func (p *pristine) tailCases() []tailCase {
	n := len(p.records)
	lastOff, end := p.records[n-1].off, p.logSize
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 5000)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	cases := []tailCase{
		// Zeros after the records are those a running log lays ahead of
		// them: no damage, nothing to cut.
		{"zero-filled tail", func(b []byte) []byte { return append(b, make([]byte, 4096)...) },
			expect{repairAt: -1, keep: p.last}},
		{"garbage tail", func(b []byte) []byte { return append(b, garbage...) },
			expect{repairAt: end, keep: p.last}},
		{"last record repeated", func(b []byte) []byte { return append(b, b[lastOff:]...) },
			expect{refuse: true, file: p.logFile, offset: end, kind: wal.KindSequence}},
	}
	mid := p.records[n/2]
	for _, length := range []uint32{0xffffffff, 0x7fffffff, 1 << 30, 4<<20 + 1, 1 << 20} {
		l := length
		cases = append(cases,
			tailCase{fmt.Sprintf("last record length %#x", l), func(b []byte) []byte {
				binary.LittleEndian.PutUint32(b[lastOff+4:], l)
				return b
			}, expect{repairAt: lastOff, keep: p.last - 1}},
			tailCase{fmt.Sprintf("middle record length %#x", l), func(b []byte) []byte {
				binary.LittleEndian.PutUint32(b[mid.off+4:], l)
				return b
			}, expect{refuse: true, file: p.logFile, offset: mid.off}})
	}
	return cases
}

// runCutAtBoundary checks a log cut exactly after record i-1: a shorter,
// sound log. Recovery cannot know records are missing, so it opens it at
// the seq before record i, with no repair and no finding.
func (p *pristine) runCutAtBoundary(t *testing.T, cut int64, i int, st *corruptStats) {
	t.Helper()
	dir, target := p.clone(t, p.logFile)
	mutate(t, target, func(b []byte) []byte { return b[:cut] })
	o := open(t, dir)
	switch {
	case o.err != nil:
		t.Errorf("cut at boundary %d: %v", cut, o.err)
	case len(o.repairs) > 0 || len(o.faults()) > 0:
		t.Errorf("cut at boundary %d: repairs %v, findings %v", cut, o.repairs, o.findings)
	case o.rec.State.Seq() != p.records[i].seq-1:
		t.Errorf("cut at boundary %d: seq %d, want %d", cut, o.rec.State.Seq(),
			p.records[i].seq-1)
	}
	st.log++
}

// hugeWindowFrame is a zstd frame that declares a 2 TiB window and holds
// one raw byte.
var hugeWindowFrame = []byte{
	0x28, 0xb5, 0x2f, 0xfd, // magic
	0x00,             // frame header: no content size, no checksum
	0xf8,             // window descriptor: exponent 31, 2^41 bytes
	0x09, 0x00, 0x00, // last raw block of 1 byte
	'x',
}

// withBody rebuilds a snapshot with the chunk payload given, framed and
// checksummed as a writer would, so only the zstd frame is wrong.
func withBody(snap []byte, payload []byte) []byte {
	m := binary.LittleEndian.Uint32(snap[12:16])
	hdr := snap[:16+m+4]
	tab := crc32.MakeTable(crc32.Castagnoli)
	out := append([]byte(nil), hdr...)
	chunk := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	chunk = binary.LittleEndian.AppendUint32(chunk, crc32.Checksum(payload, tab))
	chunk = append(chunk, payload...)
	out = append(out, chunk...)
	tr := binary.LittleEndian.AppendUint32(nil, 0)
	tr = binary.LittleEndian.AppendUint32(tr, 1)
	tr = binary.LittleEndian.AppendUint64(tr, uint64(len(payload)))
	tr = binary.LittleEndian.AppendUint64(tr, 1)
	tr = binary.LittleEndian.AppendUint32(tr, crc32.Checksum(chunk, tab))
	tr = binary.LittleEndian.AppendUint32(tr, crc32.Checksum(tr, tab))
	return append(out, tr...)
}

// snapshotCases are the damages done to the newest snapshot.
func snapshotCases(size int, stride int) []struct {
	name string
	f    func([]byte) []byte
} {
	type c = struct {
		name string
		f    func([]byte) []byte
	}
	cases := []c{
		{"empty", func([]byte) []byte { return nil }},
		{"trailing garbage", func(b []byte) []byte { return append(b, "garbage"...) }},
		{"trailing zeros", func(b []byte) []byte { return append(b, make([]byte, 512)...) }},
		{"huge zstd window", func(b []byte) []byte { return withBody(b, hugeWindowFrame) }},
		{"whole file a zstd frame", func([]byte) []byte {
			return append([]byte(nil), hugeWindowFrame...)
		}},
		{"meta length absurd", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], 0xffffffff)
			return b
		}},
		{"chunk length absurd", func(b []byte) []byte {
			m := binary.LittleEndian.Uint32(b[12:16])
			binary.LittleEndian.PutUint32(b[16+m+4:], 0xffffffff)
			return b
		}},
		{"chunk length 1 MiB, file short", func(b []byte) []byte {
			m := binary.LittleEndian.Uint32(b[12:16])
			binary.LittleEndian.PutUint32(b[16+m+4:], 1<<20)
			return b
		}},
	}
	for off := 0; off < size; off += stride {
		o := off
		cases = append(cases,
			c{fmt.Sprintf("cut at %d", o), func(b []byte) []byte { return b[:o] }},
			c{fmt.Sprintf("flip byte %d", o), func(b []byte) []byte { b[o] ^= 0x01; return b }})
	}
	return cases
}

func TestCorruptSnapshot(t *testing.T) {
	stride := pick(13, 1)
	var st corruptStats
	for _, fallback := range []bool{true, false} {
		p := buildDir(t, 30, true, fallback)
		if len(p.snaps) != 2 {
			t.Fatalf("want two snapshots, have %v", p.snaps)
		}
		newest := p.snaps[0].Path
		for _, c := range snapshotCases(int(p.snaps[0].Bytes), stride) {
			e := expect{damaged: newest, repairAt: -1}
			if !fallback {
				// The log was truncated after the newest snapshot: the
				// older one cannot be used, recovery must refuse.
				e = expect{refuse: true, file: newest, offset: -1}
			}
			p.runCase(t, fmt.Sprintf("fallback=%v %s", fallback, c.name), newest, c.f, e, &st)
		}
	}
	t.Logf("SUMMARY corruption matrix (snapshots): %d cases: %d fell back to the older "+
		"snapshot, %d refused", st.snap, st.fellBack, st.refused)
}
