package pstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func snapshotBytes(t tb, s *State) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.EncodeSnapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// assertSameState checks both states' indexes and that they hold the same
// jobs, workspaces, ids and seq (their snapshots are equal bytes).
func assertSameState(t tb, got, want *State) {
	t.Helper()
	checkInvariants(t, got)
	checkInvariants(t, want)
	if !bytes.Equal(snapshotBytes(t, got), snapshotBytes(t, want)) {
		t.Fatalf("states differ (seq %d and %d)", got.Seq(), want.Seq())
	}
}

// checkInvariants checks that every index agrees with the jobs and
// workspaces.
func checkInvariants(t tb, s *State) {
	t.Helper()
	if s.jobs.Len() != s.jobIDs.Len() {
		t.Fatalf("%d jobs, %d ids", s.jobs.Len(), s.jobIDs.Len())
	}
	total, labels, terminal, wsRefs := 0, 0, 0, 0
	for i := range s.byState {
		total += s.byState[i].Len()
	}
	it := s.jobs.Iterator()
	for !it.Done() {
		id, j, _ := it.Next()
		if _, ok := s.jobIDs.Get(id); !ok {
			t.Fatalf("job %q not in the id set", id)
		}
		if _, ok := s.byState[j.state].Get(id); !ok {
			t.Fatalf("job %q not in its state set", id)
		}
		for _, l := range j.labels {
			m, ok := s.byLabel.Get(l.key + ":" + l.value)
			if _, in := m.Get(id); !ok || !in {
				t.Fatalf("job %q not in label set %s:%s", id, l.key, l.value)
			}
			labels++
		}
		if j.state.terminal() {
			terminal++
			if _, ok := s.finished.Get(finishKey(j.finished, id)); !ok {
				t.Fatalf("finished job %q not in the finish index", id)
			}
		}
		for _, w := range j.workspaces {
			ws, ok := s.ws.Get(w)
			if !ok || ws.jobID != id {
				t.Fatalf("job %q lists workspace %q of another", id, w)
			}
			wsRefs++
		}
		if err := checkJob(j); err != nil {
			t.Fatalf("job %q: %v", id, err)
		}
	}
	if total != s.jobs.Len() || terminal != s.finished.Len() {
		t.Fatalf("state sets hold %d, jobs %d; finish index %d, finished %d", total,
			s.jobs.Len(), s.finished.Len(), terminal)
	}
	n := 0
	lit := s.byLabel.Iterator()
	for !lit.Done() {
		_, m, _ := lit.Next()
		n += m.Len()
	}
	if n != labels {
		t.Fatalf("label sets hold %d entries, jobs %d labels", n, labels)
	}
	if s.ws.Len() != wsRefs || s.wsByState[0].Len()+s.wsByState[1].Len() != wsRefs {
		t.Fatalf("%d workspaces, %d listed by jobs", s.ws.Len(), wsRefs)
	}
	checkWindow(t, &s.ids)
}

func TestSnapshotRoundTrip(t *testing.T) {
	s, _ := run(t, NewStateWithIDWindow(3), submit("j", "a", "b"), start("j"),
		alloc("w", "j"), stepStart("j", "a", 1), stepEnd("j", "a", 1, StatusFailed),
		submit("k", "a"), jobEnd("k", StatusCanceled))
	for i, id := range []string{"x1", "x2", "x3", "x4"} {
		e := submit("i"+id, "s")
		e.ID = id
		s, _ = run(t, s, e)
		_ = i
	}
	if _, ok := s.Applied("x1"); ok {
		t.Fatal("x1 not evicted from a window of 3")
	}
	b := snapshotBytes(t, s)
	got, err := DecodeSnapshot(bytes.NewReader(b), s.Seq())
	if err != nil {
		t.Fatal(err)
	}
	assertSameState(t, got, s)
	if seq, ok := got.Applied("x4"); !ok || seq != s.Seq() || got.IDWindow() != 3 {
		t.Fatalf("x4 at %d %v, window %d", seq, ok, got.IDWindow())
	}
	// Eviction goes on in the same order after a reload.
	e := submit("ix5", "s")
	e.ID = "x5"
	a, _ := run(t, s, e)
	c, _ := run(t, got, e)
	assertSameState(t, c, a)
	if _, ok := c.Applied("x2"); ok {
		t.Fatal("x2 not evicted after reload")
	}

	if _, err := DecodeSnapshot(bytes.NewReader(b), s.Seq()+1); err == nil {
		t.Fatal("seq mismatch accepted")
	}
	for cut := 0; cut < len(b); cut++ {
		_, err := DecodeSnapshot(bytes.NewReader(b[:cut]), s.Seq())
		var ce *CorruptionError
		if !errors.As(err, &ce) {
			t.Fatalf("cut at %d: err = %v", cut, err)
		}
	}
	if _, err := DecodeSnapshot(bytes.NewReader(append(b, 0)), s.Seq()); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

// FuzzDecodeSnapshot: the snapshot decoder never panics, and whatever it
// accepts is a consistent state that encodes back to the same bytes.
func FuzzDecodeSnapshot(f *testing.F) {
	s, _ := run(f, NewStateWithIDWindow(4), submit("j", "a", "b"), start("j"),
		alloc("w", "j"), stepStart("j", "a", 1), stepEnd("j", "a", 1, StatusFailed),
		submit("k", "a"), jobEnd("k", StatusCanceled), alloc("v", "j"), release("v"))
	f.Add(snapshotBytes(f, s), s.Seq())
	f.Add(snapshotBytes(f, NewState()), uint64(0))
	long := longHistories(f)
	f.Add(snapshotBytes(f, long), long.Seq())
	f.Fuzz(func(t *testing.T, b []byte, seq uint64) {
		got, err := DecodeSnapshot(bytes.NewReader(b), seq)
		if err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *CorruptionError", err, err)
			}
			return
		}
		checkInvariants(t, got)
		if !bytes.Equal(snapshotBytes(t, got), b) {
			t.Fatal("accepted snapshot does not encode back to its bytes")
		}
	})
}

// checkWindow checks the id window: at most max ids, each once, seqs
// ascending, chunks covering [start, end), and each id found by a lookup.
func checkWindow(t tb, w *idWindow) {
	t.Helper()
	if w.len() > w.max || w.start < w.base || w.start-w.base >= idChunkSize && w.len() > 0 {
		t.Fatalf("id window: start %d end %d base %d max %d", w.start, w.end, w.base, w.max)
	}
	if need := (w.end - w.base + idChunkSize - 1) / idChunkSize; uint64(len(w.chunks)) < need {
		t.Fatalf("id window: %d chunks for %d positions", len(w.chunks), w.end-w.base)
	}
	seen := map[string]bool{}
	var prev uint64
	for pos := w.start; pos < w.end; pos++ {
		id, seq := w.at(pos)
		if seen[id] || seq <= prev {
			t.Fatalf("id window: %q at %d (seq %d after %d) twice or out of order", id, pos,
				seq, prev)
		}
		seen[id], prev = true, seq
		if got, ok := w.find(id); !ok || got != seq {
			t.Fatalf("id window: find(%q) = %d, %v; want %d", id, got, ok, seq)
		}
	}
}

// TestSnapshotFaultOffsets: a fault is named at the offset of the string,
// attempt or record at fault, and every refusal of a damaged body is a
// *CorruptionError whose offset lies within the body.
func TestSnapshotFaultOffsets(t *testing.T) {
	s, _ := run(t, NewStateWithIDWindow(4), submit("job-a", "compile", "test"),
		start("job-a"), stepStart("job-a", "compile", 1),
		stepEnd("job-a", "compile", 1, StatusFailed), stepStart("job-a", "compile", 2),
		alloc("ws-a", "job-a"), submit("job-b", "compile", "test"))
	b := snapshotBytes(t, s)
	at := func(sub string) int {
		i := bytes.Index(b, []byte(sub))
		if i < 0 {
			t.Fatalf("%q not in the body", sub)
		}
		return i
	}
	cases := []struct {
		name   string
		mutate func(b []byte) int64 // returns the offset the error must name
		kind   string
	}{
		{"control character in a step name", func(b []byte) int64 {
			i := at("test")
			b[i+1] = 0x07
			return int64(i - 1) // the string's length byte
		}, `job "job-a": steps`},
		{"attempt of an undeclared step", func(b []byte) int64 {
			// The first attempt follows the step list and its count.
			i := at("test") + len("test") + 1
			b[i] = 9
			return int64(i)
		}, `job "job-a": attempts`},
		{"second attempt out of order", func(b []byte) int64 {
			i := at("test") + len("test") + 1
			// step 0, attempt 1, status, two varint times, exit code
			_, n1 := binary.Varint(b[i+3:])
			_, n2 := binary.Varint(b[i+3+n1:])
			_, n3 := binary.Varint(b[i+3+n1+n2:])
			j := i + 3 + n1 + n2 + n3
			b[j+1] = 3 // attempt 3 after attempt 1
			return int64(j)
		}, `job "job-a": attempts`},
		{"unknown job of a workspace", func(b []byte) int64 {
			i := at("\x04ws-a\x05job-a") // a workspace record, not job-a's list
			b[i+len("\x04ws-a\x05job-")] = 'z'
			return int64(i)
		}, "workspace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := bytes.Clone(b)
			want := c.mutate(bad)
			_, err := DecodeSnapshot(bytes.NewReader(bad), s.Seq())
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.Offset != want || !strings.Contains(ce.Kind, c.kind) {
				t.Fatalf("err = %v; want a CorruptionError at offset %d naming %s", err,
					want, c.kind)
			}
		})
	}
	for i := range b {
		for _, v := range []byte{0, 0x01, 0x7f, 0x80, 0xff, b[i] + 1} {
			bad := bytes.Clone(b)
			bad[i] = v
			_, err := DecodeSnapshot(bytes.NewReader(bad), s.Seq())
			if err == nil {
				continue
			}
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.Offset < 0 || ce.Offset > int64(len(b)) {
				t.Fatalf("byte %d set to %#x: err = %v", i, v, err)
			}
		}
	}
}

// TestSnapshotReadAhead decodes through a reader that is not in memory, so
// the body is read ahead on a goroutine: the same state comes out, and a
// read error or a cut body is reported as it is without it.
func TestSnapshotReadAhead(t *testing.T) {
	s := benchState(3000) // a body of several read-ahead buffers
	b := snapshotBytes(t, s)
	got, err := DecodeSnapshot(iotest.HalfReader(bytes.NewReader(b)), s.Seq())
	if err != nil {
		t.Fatal(err)
	}
	assertSameState(t, got, s)

	boom := errors.New("boom")
	for _, cut := range []int{0, 1, aheadBufSize - 1, aheadBufSize, len(b) / 2, len(b) - 1} {
		r := io.MultiReader(bytes.NewReader(b[:cut]), iotest.ErrReader(boom))
		_, err := DecodeSnapshot(struct{ io.Reader }{r}, s.Seq())
		var ce *CorruptionError
		if !errors.As(err, &ce) || !errors.Is(err, boom) || ce.Offset > int64(cut) {
			t.Fatalf("error after %d bytes: %v", cut, err)
		}
		_, err = DecodeSnapshot(struct{ io.Reader }{bytes.NewReader(b[:cut])}, s.Seq())
		if !errors.As(err, &ce) || ce.Offset > int64(cut) {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
	// A fault found early stops the goroutine before the body is read.
	bad := bytes.Clone(b)
	bad[0] = 9
	if _, err := DecodeSnapshot(struct{ io.Reader }{bytes.NewReader(bad)}, s.Seq()); err == nil {
		t.Fatal("bad version accepted")
	}
}

// TestSnapshotLongHistories round-trips a job whose step indexes take
// two-byte varints, with a history longer than a slab.
func TestSnapshotLongHistories(t *testing.T) {
	s := longHistories(t)
	got, err := DecodeSnapshot(bytes.NewReader(snapshotBytes(t, s)), s.Seq())
	if err != nil {
		t.Fatal(err)
	}
	assertSameState(t, got, s)
}

// longHistories is a state with a job of 200 steps, attempts of steps past
// index 127 (two-byte varints) and 300 attempts of one step, at small times
// (one-byte varints), so that a misread attempt could still look sound.
func longHistories(t tb) *State {
	steps := make([]string, 200)
	for i := range steps {
		steps[i] = fmt.Sprintf("s%03d", i)
	}
	events := []Event{submit("many", steps...), start("many")}
	for _, i := range []int{0, 127, 128, 150, 199} {
		for n := 1; n <= 3; n++ {
			events = append(events, stepStart("many", steps[i], n),
				stepEnd("many", steps[i], n, StatusFailed))
		}
	}
	for n := 1; n <= 300; n++ {
		events = append(events, stepStart("many", steps[1], n))
		if n < 300 {
			events = append(events, stepEnd("many", steps[1], n, StatusFailed))
		}
	}
	for i := range events {
		events[i].Time = time.Unix(0, int64(i%50+1))
	}
	s, _ := run(t, NewState(), events...)
	return s
}

// BenchmarkEncodeSnapshot: the snapshot body of 100k jobs with 20-attempt
// histories, to io.Discard (no compression): the encoding's own CPU.
func BenchmarkEncodeSnapshot(b *testing.B) {
	s := benchState(100_000)
	var n countWriter
	for b.Loop() {
		n = 0
		if err := s.EncodeSnapshot(&n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/job")
	b.ReportMetric(float64(n)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// countWriter counts the bytes written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
