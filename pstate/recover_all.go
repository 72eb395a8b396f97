package pstate

import (
	"errors"
	"fmt"
)

// RecordError is a log record that Recovery.ReplayAll could not apply: it
// does not decode (Err wraps an *InputError) or does not fit the state
// (Err wraps a *ConflictError). Err names the seq too.
type RecordError struct {
	Seq uint64
	Err error
}

func (e *RecordError) Error() string { return e.Err.Error() }
func (e *RecordError) Unwrap() error { return e.Err }

// replayBatch is a run of records decoded by ReplayAll's reader: err[i] is
// nil or why record seq[i] did not decode; skip marks one already held;
// hash[i] is the hash of ev[i].ID, when it has one.
type replayBatch struct {
	seq  []uint64
	ev   []Event
	hash []uint64
	err  []error
	skip []bool
}

const (
	replayBatchLen = 512 // records a batch
	replayBatches  = 4   // batches decoded ahead of the applying
)

// errReplayStopped ends the reading after a record failed.
var errReplayStopped = errors.New("pstate: replay stopped")

// ReplayAll applies the records each yields, in order, as Replay applies
// each one, and decodes them on a goroutine of its own while it applies the
// records before: on two cores it replays about twice as fast. each is
// called once, on that goroutine, with a function to call for every record
// (the payload need be valid only during the call, as wal.Log.Replay gives
// it); each should stop and return that function's error when it fails.
//
// It returns the first record that does not decode or fit, as a
// *RecordError (every record before it applied, none after), or else
// each's own error (every record handed over before it applied).
func (r *Recovery) ReplayAll(each func(fn func(seq uint64, payload []byte) error) error) error {
	if r.state != nil {
		return errRecoveryDone
	}
	full := make(chan *replayBatch, replayBatches)
	free := make(chan *replayBatch, replayBatches+2)
	stop := make(chan struct{})
	held := r.d.seq // records up to it are skipped undecoded
	var eachErr error
	go func() {
		defer close(full)
		b := &replayBatch{}
		send := func() bool {
			select {
			case full <- b:
			case <-stop:
				return false
			}
			select {
			case b = <-free:
			default:
				b = &replayBatch{}
			}
			return true
		}
		eachErr = each(func(seq uint64, payload []byte) error {
			var e Event
			var err error
			var h uint64
			if seq > held {
				if e, err = DecodeEvent(payload); err == nil && e.ID != "" {
					h = hashID(e.ID)
				}
			}
			b.seq, b.ev, b.hash = append(b.seq, seq), append(b.ev, e), append(b.hash, h)
			b.err, b.skip = append(b.err, err), append(b.skip, seq <= held)
			if len(b.seq) == replayBatchLen && !send() {
				return errReplayStopped
			}
			return nil
		})
		if len(b.seq) > 0 {
			send()
		}
	}()

	var failed error
	for b := range full {
		if failed == nil {
			if failed = r.applyBatch(b); failed != nil {
				close(stop)
			}
		}
		clear(b.ev) // drop the events' references before reuse
		b.seq, b.ev, b.hash = b.seq[:0], b.ev[:0], b.hash[:0]
		b.err, b.skip = b.err[:0], b.skip[:0]
		select {
		case free <- b:
		default:
		}
	}
	// full is closed once the goroutine is done with eachErr.
	if failed != nil {
		return failed
	}
	return eachErr
}

// applyBatch applies b's records in order up to the first that fails.
func (r *Recovery) applyBatch(b *replayBatch) error {
	for i, seq := range b.seq {
		if b.skip[i] || seq <= r.d.seq {
			continue
		}
		if err := b.err[i]; err != nil {
			return &RecordError{Seq: seq, Err: fmt.Errorf("decode record %d: %w", seq, err)}
		}
		e := &b.ev[i]
		f, err := conflict(r.d, e)
		if err != nil {
			return &RecordError{Seq: seq, Err: fmt.Errorf("apply record %d: %w", seq, err)}
		}
		r.d.applyFound(e, seq, f, b.hash[i])
		r.applied()
	}
	return nil
}
