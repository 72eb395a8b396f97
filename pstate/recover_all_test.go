package pstate

import (
	"errors"
	"testing"

	"pgregory.net/rapid"
)

// replayAll replays log[from:] (log[i] at seq i+1) through ReplayAll.
func replayAll(r *Recovery, log [][]byte, from int) error {
	return r.ReplayAll(func(fn func(seq uint64, payload []byte) error) error {
		for i := from; i < len(log); i++ {
			if err := fn(uint64(i+1), log[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestPropertyReplayAll: ReplayAll builds the state Replay builds, from a
// snapshot at any prefix and from any record on.
func TestPropertyReplayAll(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		live, log, window := stream(t)
		prefix, r, from := recoveryAtPrefix(t, log, window)
		// A hint of the records to come, right or wrong, changes nothing.
		expect := uint64(rapid.IntRange(0, 2*len(log)).Draw(t, "expect"))
		r.Expect(expect)
		if err := replayAll(r, log, from); err != nil {
			t.Fatal(err)
		}
		assertSameState(t, r.State(), live)

		r = NewRecovery(prefix)
		r.group = rapid.IntRange(1, 5).Draw(t, "group")
		r.Expect(expect)
		if err := replayAll(r, log, from); err != nil {
			t.Fatal(err)
		}
		got := r.State()
		assertSameState(t, got, live)
		if replayAll(r, log, 0) == nil || r.State() != got {
			t.Fatal("a recovery went on after State")
		}
	})
}

// TestReplayAllFaults: a record that does not decode or fit stops the
// replay there, named by its seq, with every record before it applied; an
// error of the log's own is returned after the records handed over.
func TestReplayAllFaults(t *testing.T) {
	const n = 50
	base := benchState(n)
	log := benchLog(n, 5000) // several batches; log[i] at seq i+2
	replay := func(log [][]byte, fail error, at int) (*Recovery, error) {
		r := NewRecovery(base)
		err := r.ReplayAll(func(fn func(seq uint64, payload []byte) error) error {
			for i, rec := range log {
				if i == at {
					return fail
				}
				if err := fn(uint64(i+2), rec); err != nil {
					return err
				}
			}
			return nil
		})
		return r, err
	}
	for _, at := range []int{0, 1, replayBatchLen - 1, replayBatchLen, 3001, len(log) - 1} {
		// A record that does not decode, and one that repeats the record
		// before it (or for the first, the second: a finish before the
		// start), which conflicts.
		again := log[max(at-1, 0)]
		if at == 0 {
			again = log[1]
		}
		for _, bad := range [][]byte{{9}, again} {
			broken := append(append(append([][]byte(nil), log[:at]...), bad), log[at+1:]...)
			r, err := replay(broken, nil, -1)
			var re *RecordError
			if !errors.As(err, &re) || re.Seq != uint64(at+2) || r.Seq() != uint64(at+1) {
				t.Fatalf("record %d broken: err %v, seq %d", at, err, r.Seq())
			}
			var ie *InputError
			var ce *ConflictError
			if !errors.As(err, &ie) && !errors.As(err, &ce) {
				t.Fatalf("record %d broken: %v wraps neither error", at, err)
			}
		}
		boom := errors.New("boom")
		r, err := replay(log, boom, at)
		if err != boom || r.Seq() != uint64(at+1) {
			t.Fatalf("log fails at %d: err %v, seq %d", at, err, r.Seq())
		}
	}
	r, err := replay(log, nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	want := NewRecovery(base)
	for i, rec := range log {
		if err := want.Replay(uint64(i+2), rec); err != nil {
			t.Fatal(err)
		}
	}
	assertSameState(t, r.State(), want.State())
}
