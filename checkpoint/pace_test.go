package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pstate/pstate/wal/vfs"
)

// fakeClock is a pacer's clock and pauses in a test.
type fakeClock struct {
	now    time.Time
	pauses []string
}

// fakePacer returns a pacer whose clock moves by work at every write into
// w, and that records its pauses instead of taking them.
func fakePacer(w io.Writer, share float64, work time.Duration) (*pacer, *fakeClock) {
	f := &fakeClock{now: time.Unix(1000, 0)}
	p := newPacer(nil, share, nil)
	p.w = writerFunc(func(b []byte) (int, error) {
		f.now = f.now.Add(work)
		return w.Write(b)
	})
	p.now = func() time.Time { return f.now }
	p.since = f.now
	p.sleep = func(d time.Duration) {
		f.pauses = append(f.pauses, "sleep "+d.String())
		f.now = f.now.Add(d)
	}
	p.yield = func() { f.pauses = append(f.pauses, "yield") }
	return p, f
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestPacerPauses: once a slice of work has passed the pacer sleeps for
// what keeps the work to its share of the time, or only yields at a share
// of 1 or more, or never pauses at a share of 0 or less.
func TestPacerPauses(t *testing.T) {
	cases := []struct {
		share float64
		work  time.Duration
		want  []string
	}{
		{0.5, 2 * time.Millisecond, []string{"sleep 2ms", "sleep 2ms", "sleep 2ms"}},
		{0.25, 2 * time.Millisecond, []string{"sleep 6ms", "sleep 6ms", "sleep 6ms"}},
		{0.5, 400 * time.Microsecond, []string{"sleep 1.2ms"}}, // three writes, one slice
		{1, 2 * time.Millisecond, []string{"yield", "yield", "yield"}},
		{4, 2 * time.Millisecond, []string{"yield", "yield", "yield"}},
		{0, 2 * time.Millisecond, nil},
		{-1, 2 * time.Millisecond, nil},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		p, f := fakePacer(&out, tc.share, tc.work)
		body := randomBytes(3 * paceStep)
		if n, err := p.Write(body); n != len(body) || err != nil {
			t.Fatalf("share %v: Write %d, %v", tc.share, n, err)
		}
		if !bytes.Equal(out.Bytes(), body) || p.n != uint64(len(body)) {
			t.Fatalf("share %v: passed %d bytes (counted %d), not the %d written",
				tc.share, out.Len(), p.n, len(body))
		}
		if !reflect.DeepEqual(f.pauses, tc.want) {
			t.Errorf("share %v, %v a piece: pauses %v, want %v", tc.share, tc.work,
				f.pauses, tc.want)
		}
	}
}

// TestPacerRest: time spent waiting (an fsync) is not work.
func TestPacerRest(t *testing.T) {
	piece := make([]byte, paceStep)
	p, f := fakePacer(io.Discard, 0.5, 600*time.Microsecond)
	p.Write(piece)                          // 0.6 ms of work
	f.now = f.now.Add(5 * time.Millisecond) // waiting
	p.rest()
	p.Write(piece) // 0.6 ms since the rest: no pause yet
	if len(f.pauses) != 0 {
		t.Fatalf("paused: %v", f.pauses)
	}
	p.Write(piece)
	if !reflect.DeepEqual(f.pauses, []string{"sleep 1.2ms"}) {
		t.Fatalf("pauses %v", f.pauses)
	}
}

// TestPacerIdleLoop: while the event loop stands still the pacer only
// yields; it sleeps again once the loop works.
func TestPacerIdleLoop(t *testing.T) {
	busy := []bool{false, false, true, false}
	p, f := fakePacer(io.Discard, 0.5, 2*time.Millisecond)
	p.busy = func() bool {
		b := busy[0]
		busy = busy[1:]
		return b
	}
	p.Write(make([]byte, 4*paceStep))
	want := []string{"yield", "yield", "sleep 2ms", "yield"}
	if !reflect.DeepEqual(f.pauses, want) {
		t.Fatalf("pauses %v, want %v", f.pauses, want)
	}
}

// TestPacerStopsOnError: a failed write ends Write with the bytes passed.
func TestPacerStopsOnError(t *testing.T) {
	calls := 0
	p := newPacer(writerFunc(func(b []byte) (int, error) {
		calls++
		if calls == 2 {
			return 10, io.ErrShortWrite
		}
		return len(b), nil
	}), 0.5, nil)
	n, err := p.Write(make([]byte, 3*paceStep))
	if err != io.ErrShortWrite || n != paceStep+10 || calls != 2 {
		t.Fatalf("Write %d, %v after %d calls", n, err, calls)
	}
}

// TestPacedSnapshotIsTheSame: pacing changes when the bytes are written,
// not which.
func TestPacedSnapshotIsTheSame(t *testing.T) {
	body := testBody(5, 300_000)
	plain := encodeBytes(t, testMeta(5), body)
	for _, share := range []float64{-1, 0.5, 1} {
		var buf bytes.Buffer
		p := newPacer(nil, share, nil)
		p.sleep = func(time.Duration) {}
		if _, err := encode(&buf, testMeta(5), writeBody(body), p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), plain) {
			t.Fatalf("share %v: other bytes", share)
		}
	}
}

// TestEncoderReuse: an encoder back from the pool, even from a failed
// snapshot, writes the same bytes as a new one.
func TestEncoderReuse(t *testing.T) {
	body := testBody(6, 500_000)
	first := encodeBytes(t, testMeta(6), body)
	for range 3 {
		Encode(io.Discard, testMeta(7), func(w io.Writer) error {
			w.Write(body[:200_000])
			return io.ErrUnexpectedEOF
		})
		if again := encodeBytes(t, testMeta(6), body); !bytes.Equal(again, first) {
			t.Fatal("a reused encoder wrote other bytes")
		}
	}
}

// TestEncoderKept: a snapshot after another takes the encoder it left,
// whatever P it runs on and whatever collections ran in between.
func TestEncoderKept(t *testing.T) {
	body := testBody(9, 10_000)
	encodeBytes(t, testMeta(9), body)
	for range 5 {
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		encodeBytes(t, testMeta(9), body)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 2<<20 {
			t.Fatalf("a snapshot of 10 KB allocated %d bytes: a new encoder", n)
		}
	}
}

// withSyncEvery runs the test with snapshot files fsynced every n bytes.
func withSyncEvery(t *testing.T, n int64) {
	saved := syncEvery
	syncEvery = n
	t.Cleanup(func() { syncEvery = saved })
}

// TestWriteSyncsAsItGoes: a snapshot file is fsynced every syncEvery bytes
// while it is written, then once more at the end.
func TestWriteSyncsAsItGoes(t *testing.T) {
	withSyncEvery(t, 64<<10)
	m := newMem(t)
	var syncs, writes int
	var sizes []int64
	m.SetOnOp(func(op vfs.Op, p string) error {
		switch op {
		case vfs.OpWrite:
			writes++
		case vfs.OpSync:
			syncs++
			size, _ := m.Stat(p)
			sizes = append(sizes, size)
		}
		return nil
	})
	info, err := Write(m, snapDir, testMeta(8), writeBody(randomBytes(1_000_000)))
	m.SetOnOp(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Chunks are 256 KiB: one fsync after each chunk, then one after the
	// trailer.
	if want := int((info.Bytes+writeChunk-1)/writeChunk) + 1; syncs != want {
		t.Fatalf("%d fsyncs of a %d-byte file (%d writes), want %d; sizes %v",
			syncs, info.Bytes, writes, want, sizes)
	}
	for i := 1; i < len(sizes); i++ {
		if sizes[i]-sizes[i-1] > writeChunk+chunkHeaderLen+trailerLen {
			t.Fatalf("%d bytes between fsyncs: sizes %v", sizes[i]-sizes[i-1], sizes)
		}
	}
	readSnapshot(t, m.Crash(), info.Path)
}

// TestCheckpointWithShare: a paced checkpoint writes the same snapshot.
func TestCheckpointWithShare(t *testing.T) {
	for _, share := range []float64{-1, 0.5, 2} {
		h := newHarness(t, 40, Config{Share: share})
		res, err := h.c.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, body := readSnapshot(t, h.m, res.Path)
		if !bytes.Equal(body, testBody(40, 3000)) {
			t.Fatalf("share %v: snapshot holds another body", share)
		}
	}
}

// TestInterimSyncFailure: a failed fsync in the middle of a snapshot fails
// it at once, leaves no temporary file and no other snapshot touched, and
// is not retried.
func TestInterimSyncFailure(t *testing.T) {
	withSyncEvery(t, 64<<10)
	m := newMem(t)
	if _, err := Write(m, snapDir, testMeta(10), writeBody(testBody(10, 1000))); err != nil {
		t.Fatal(err)
	}
	syncs := 0
	m.SetOnOp(func(op vfs.Op, p string) error {
		if op == vfs.OpSync {
			syncs++
		}
		return nil
	})
	m.Inject(vfs.Fault{Op: vfs.OpSync, Path: ".tmp", After: 1, Times: 1})
	_, err := Write(m, snapDir, testMeta(20), writeBody(randomBytes(1_000_000)))
	m.SetOnOp(nil)
	m.ClearFaults()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("got %v, want EIO", err)
	}
	if syncs != 2 {
		t.Fatalf("%d fsyncs: the failed one was retried or followed by more", syncs)
	}
	if got := seqs(t, m, snapDir); !reflect.DeepEqual(got, []uint64{10}) {
		t.Fatalf("snapshots %v", got)
	}
	if names, _ := m.List(snapDir); len(names) != 1 {
		t.Fatalf("files %v", names)
	}
}

// TestCheckpointerPacesWhileTheLoopWorks: the Checkpointer's pacer sleeps
// after a slice in which the log's processed seq moved, and only yields
// after one in which it stood still.
func TestCheckpointerPacesWhileTheLoopWorks(t *testing.T) {
	h := newHarness(t, 100, Config{Share: 0.5})
	var pauses []string
	h.c.onPace = func(p *pacer) {
		clock := time.Unix(1000, 0)
		p.since = clock
		p.now = func() time.Time {
			clock = clock.Add(time.Millisecond)
			return clock
		}
		p.sleep = func(d time.Duration) { pauses = append(pauses, "sleep") }
		p.yield = func() { pauses = append(pauses, "yield") }
	}
	h.pub.encode = func(s *state, w io.Writer) error {
		for i, moved := range []bool{true, false, true} {
			if moved {
				h.log.processed.Add(1)
			}
			if _, err := w.Write(s.body[i*1000 : (i+1)*1000]); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := h.c.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"sleep", "yield", "sleep"}; !reflect.DeepEqual(pauses, want) {
		t.Fatalf("pauses %v, want %v", pauses, want)
	}
}
