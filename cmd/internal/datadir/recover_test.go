package datadir

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const dir = "/data"

var (
	walDir  = filepath.Join(dir, WALDir)
	snapDir = filepath.Join(dir, SnapshotDir)
)

// fixture is a data dir on a Mem whose log holds n job.submitted records;
// states[i] is the state after record i.
type fixture struct {
	fs     *vfs.Mem
	states []*pstate.State
}

func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	f := &fixture{fs: vfs.NewMem(), states: []*pstate.State{pstate.NewState()}}
	rec, err := Recover(dir, RecoverOptions{FS: f.fs})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Log.Close()
	for i := 1; i <= n; i++ {
		e := pstate.Event{Type: pstate.TypeJobSubmitted, ID: fmt.Sprintf("e%d", i),
			JobID: fmt.Sprintf("j%d", i), Name: "n", Steps: []string{"s"},
			Time: time.Unix(int64(i), 0).UTC()}
		payload := pstate.AppendEvent(nil, &e)
		_, last, err := rec.Log.Append([][]byte{payload})
		if err != nil {
			t.Fatal(err)
		}
		st, err := pstate.Replay(f.states[i-1], last, payload)
		if err != nil {
			t.Fatal(err)
		}
		f.states = append(f.states, st)
	}
	return f
}

// snapshot writes a snapshot of the state after record seq.
func (f *fixture) snapshot(t *testing.T, seq uint64) checkpoint.Info {
	t.Helper()
	st := f.states[seq]
	s, counts := st.Meta()
	info, err := checkpoint.Write(f.fs, snapDir, checkpoint.Meta{Seq: s, Counts: counts,
		Time: time.Unix(100, 0)}, st.EncodeSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// truncate drops the log's records before seq.
func (f *fixture) truncate(t *testing.T, seq uint64) {
	t.Helper()
	l, err := wal.Open(walDir, wal.Options{FS: f.fs})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.TruncateBefore(seq); err != nil {
		t.Fatal(err)
	}
}

// damage flips a byte in the middle of a file.
func (f *fixture) damage(t *testing.T, path string) {
	t.Helper()
	b, err := f.fs.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := f.fs.WriteFile(path, b); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) recover(t *testing.T) (*Recovered, error) {
	t.Helper()
	rec, err := Recover(dir, RecoverOptions{FS: f.fs})
	if err == nil {
		t.Cleanup(func() { rec.Log.Close() })
	}
	return rec, err
}

func TestRecoverLogOnly(t *testing.T) {
	f := newFixture(t, 5)
	var reports []Progress
	rec, err := Recover(dir, RecoverOptions{FS: f.fs, ProgressEvery: time.Nanosecond,
		Progress: func(p Progress) { reports = append(reports, p) }})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Log.Close()
	if rec.State.Seq() != 5 || rec.Records != 5 || rec.Snapshot.Path != "" {
		t.Fatalf("recovered seq %d, %d records, snapshot %q", rec.State.Seq(), rec.Records,
			rec.Snapshot.Path)
	}
	if n := len(reports); n == 0 || !reports[n-1].Done || reports[n-1].Records != 5 {
		t.Fatalf("progress reports %+v", reports)
	}
	if rec.Log.Processed() != 5 {
		t.Fatalf("processed %d", rec.Log.Processed())
	}
}

func TestRecoverSnapshotAndLog(t *testing.T) {
	f := newFixture(t, 6)
	f.snapshot(t, 4)
	f.truncate(t, 5)
	rec, err := f.recover(t)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Snapshot.Seq != 4 || rec.Records != 2 || rec.State.Seq() != 6 {
		t.Fatalf("snapshot %d, %d records, seq %d", rec.Snapshot.Seq, rec.Records,
			rec.State.Seq())
	}
	if _, ok := rec.State.Job("j6"); !ok {
		t.Fatal("job j6 missing")
	}
}

// TestRecoverFallback: a damaged newest snapshot is reported and the older
// one used, because the log still covers the gap.
func TestRecoverFallback(t *testing.T) {
	f := newFixture(t, 6)
	f.snapshot(t, 2)
	newest := f.snapshot(t, 5)
	f.truncate(t, 3)
	f.damage(t, newest.Path)
	rec, err := f.recover(t)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Snapshot.Seq != 2 || len(rec.Damaged) != 1 || rec.State.Seq() != 6 {
		t.Fatalf("snapshot %d, damaged %v, seq %d", rec.Snapshot.Seq, rec.Damaged,
			rec.State.Seq())
	}
	if !strings.Contains(rec.Damaged[0].Error(), newest.Path) {
		t.Fatalf("damage does not name %s: %v", newest.Path, rec.Damaged[0])
	}
}

// TestRecoverGap: with the newest snapshot damaged and the log truncated
// past the older one, recovery refuses and names what is missing.
func TestRecoverGap(t *testing.T) {
	f := newFixture(t, 6)
	f.snapshot(t, 2)
	newest := f.snapshot(t, 5)
	f.truncate(t, 6)
	f.damage(t, newest.Path)
	_, err := f.recover(t)
	var ge *checkpoint.GapError
	if !errors.As(err, &ge) || !strings.Contains(err.Error(), newest.Path) {
		t.Fatalf("err %v; want a gap error naming %s", err, newest.Path)
	}
}

// TestRecoverBasesLog: a snapshot with the log lost bases a new log after
// it, so that new records never reuse its seqs.
func TestRecoverBasesLog(t *testing.T) {
	f := newFixture(t, 4)
	f.snapshot(t, 4)
	names, err := f.fs.List(walDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := f.fs.Remove(filepath.Join(walDir, n)); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := f.recover(t)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State.Seq() != 4 || rec.Log.NextSeq() != 5 {
		t.Fatalf("seq %d, log next seq %d; want 4 and 5", rec.State.Seq(), rec.Log.NextSeq())
	}
}

// TestRecoverDamagedLog: damage inside the log is an error naming the file
// and offset.
func TestRecoverDamagedLog(t *testing.T) {
	f := newFixture(t, 6)
	names, _ := f.fs.List(walDir)
	path := filepath.Join(walDir, names[0])
	f.damage(t, path)
	_, err := f.recover(t)
	var ce *wal.CorruptionError
	if !errors.As(err, &ce) || ce.File != path || ce.Offset <= 0 {
		t.Fatalf("err %v; want a *wal.CorruptionError in %s", err, path)
	}
}

// TestRecoverBadEvent: a record the log holds soundly (its checksum
// agrees) but that is no event, or one that cannot apply, stops the
// recovery with the record's seq, file and offset; it is never skipped.
func TestRecoverBadEvent(t *testing.T) {
	conflict := pstate.AppendEvent(nil, &pstate.Event{Type: pstate.TypeStepStarted,
		JobID: "j1", Step: "nope", Attempt: 1, Time: time.Unix(50, 0).UTC()})
	for name, payload := range map[string][]byte{
		"garbage": []byte("not an event"), "conflict": conflict} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 3000) // records beyond the bad one keep the reader busy
			l, err := wal.Open(walDir, wal.Options{FS: f.fs})
			if err != nil {
				t.Fatal(err)
			}
			_, bad, err := l.Append([][]byte{payload})
			if err == nil {
				_, _, err = l.Append([][]byte{pstate.AppendEvent(nil, &pstate.Event{
					Type: pstate.TypeJobPurged, JobID: "j1", Time: time.Unix(60, 0).UTC()})})
			}
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			_, err = f.recover(t)
			var ce *wal.CorruptionError
			if !errors.As(err, &ce) || ce.Kind != "event" || ce.Offset <= 0 ||
				!strings.Contains(err.Error(), fmt.Sprintf("seq %d", bad)) {
				t.Fatalf("err %v; want a *wal.CorruptionError of kind event at seq %d", err, bad)
			}
		})
	}
}

// TestRecoverRemovesTemp: a snapshot .tmp left by a crash is removed.
func TestRecoverRemovesTemp(t *testing.T) {
	f := newFixture(t, 1)
	tmp := filepath.Join(snapDir, "snap-00000000000000000001.pst.tmp")
	if err := f.fs.WriteFile(tmp, []byte("half")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.recover(t); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fs.Stat(tmp); err == nil {
		t.Fatal("temporary snapshot left")
	}
}
