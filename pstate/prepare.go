package pstate

import (
	"fmt"
	"time"
)

// Replay applies one log record at seq to s during recovery: it decodes the
// payload and applies it. Effects are records of their own, so none are
// computed. A record at or below s.Seq() is skipped (the snapshot already
// holds it). A record that does not decode or does not fit the state is an
// error: the log no longer matches the state it was written against. For
// many records, a Recovery is far cheaper.
func Replay(s *State, seq uint64, payload []byte) (*State, error) {
	if seq <= s.seq {
		return s, nil
	}
	d := newDraft(s, nil)
	if err := d.replay(seq, payload); err != nil {
		return nil, err
	}
	return d.commit(), nil
}

// replay decodes and applies one record above d.seq.
func (d *draft) replay(seq uint64, payload []byte) error {
	e, err := DecodeEvent(payload)
	if err != nil {
		return fmt.Errorf("decode record %d: %w", seq, err)
	}
	if _, err := conflict(d, &e); err != nil {
		return fmt.Errorf("apply record %d: %w", seq, err)
	}
	d.apply(&e, seq)
	return nil
}

// prepared is one request's outcome against the evolving state: the state
// after it, its log records (the events and their effects, in order) and one
// result per event.
type prepared struct {
	state    *State
	payloads [][]byte
	results  []Result
}

// prepare runs a request's events against s, whose last seq (applied or
// merely written) is seq, in a draft of its own; see draft.prepare.
func prepare(s *State, seq uint64, events []Event, now time.Time, internal bool,
) (prepared, error) {
	d := newDraft(s, nil)
	d.seq, d.record = seq, true
	p, err := d.prepare(events, now, internal)
	if err != nil {
		return prepared{}, err
	}
	p.state = d.commit()
	return p, nil
}

// prepare runs a request's events against the draft: it answers
// duplicates, gives events without a time the time now, validates, applies
// with the seqs the records will get, and appends each event's effects
// right after it. All or nothing: the first invalid event fails the whole
// request, with its index, and the draft is rolled back to where it was.
// internal lets the engine submit effects of its own (purges). p.state is
// not set: the caller commits the draft.
func (d *draft) prepare(events []Event, now time.Time, internal bool,
) (p prepared, err error) {
	m := d.mark()
	defer func() {
		if err != nil {
			d.rollback(m)
			p = prepared{}
		} else {
			d.accept()
		}
	}()
	p.results = make([]Result, len(events))
	// Records share one buffer; a record's slice stays valid when the buffer
	// grows, since it keeps pointing at the old array.
	var buf []byte
	var queue []Event
	for i := range events {
		ev := events[i]
		if ev.Effect && !internal {
			return p, &InputError{Index: i, Field: "effect", Message: "set only by the engine"}
		}
		if old, dup := d.applied(ev.ID); dup {
			p.results[i] = Result{Seq: old, Duplicate: true}
			continue
		}
		if ev.Time.IsZero() {
			ev.Time = now
		}
		if err := checkEvent(&ev); err != nil {
			return p, setIndex(err, i)
		}
		if _, err := conflict(d, &ev); err != nil {
			return p, setIndex(err, i)
		}
		queue = append(queue[:0], ev)
		for k := 0; k < len(queue); k++ {
			x := &queue[k]
			if k > 0 {
				// Effects are built to fit; a refusal is a bug in effects.
				if _, err := conflict(d, x); err != nil {
					return p, fmt.Errorf("pstate: effect of event %d refused: %w", i, err)
				}
			}
			d.apply(x, d.seq+1)
			n := len(buf)
			buf = AppendEvent(buf, x)
			p.payloads = append(p.payloads, buf[n:len(buf):len(buf)])
			if k == 0 {
				p.results[i] = Result{Seq: d.seq}
			}
			queue = append(queue, effects(d, x)...)
		}
	}
	return p, nil
}
