package pstate

import (
	"fmt"
	"time"
)

// Replay applies one log record at seq to s during recovery: it decodes the
// payload and applies it. Effects are records of their own, so none are
// computed. A record at or below s.Seq() is skipped (the snapshot already
// holds it). A record that does not decode or does not fit the state is an
// error: the log no longer matches the state it was written against.
func Replay(s *State, seq uint64, payload []byte) (*State, error) {
	if seq <= s.seq {
		return s, nil
	}
	e, err := DecodeEvent(payload)
	if err != nil {
		return nil, fmt.Errorf("decode record %d: %w", seq, err)
	}
	j, err := conflict(s, &e)
	if err != nil {
		return nil, fmt.Errorf("apply record %d: %w", seq, err)
	}
	return apply(s, &e, seq, j), nil
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
// merely written) is seq: it answers duplicates, gives events without a time
// the time now, validates, applies with the seqs the records will get, and
// appends each event's effects right after it. All or nothing: the first
// invalid event fails the whole request, with its index. internal lets the
// engine submit effects of its own (purges).
func prepare(s *State, seq uint64, events []Event, now time.Time, internal bool,
) (prepared, error) {
	p := prepared{results: make([]Result, len(events))}
	// Records share one buffer; a record's slice stays valid when the buffer
	// grows, since it keeps pointing at the old array.
	var buf []byte
	for i := range events {
		ev := events[i]
		if ev.Effect && !internal {
			return prepared{}, &InputError{Index: i, Field: "effect",
				Message: "set only by the engine"}
		}
		if old, dup := s.Applied(ev.ID); dup {
			p.results[i] = Result{Seq: old, Duplicate: true}
			continue
		}
		if ev.Time.IsZero() {
			ev.Time = now
		}
		if err := checkEvent(&ev); err != nil {
			return prepared{}, setIndex(err, i)
		}
		j, err := conflict(s, &ev)
		if err != nil {
			return prepared{}, setIndex(err, i)
		}
		queue := []Event{ev}
		for k := 0; k < len(queue); k++ {
			x := &queue[k]
			if k > 0 {
				// Effects are built to fit; a refusal is a bug in effects.
				if j, err = conflict(s, x); err != nil {
					return prepared{}, fmt.Errorf("pstate: effect of event %d refused: %w", i, err)
				}
			}
			seq++
			s = apply(s, x, seq, j)
			n := len(buf)
			buf = AppendEvent(buf, x)
			p.payloads = append(p.payloads, buf[n:len(buf):len(buf)])
			if k == 0 {
				p.results[i] = Result{Seq: seq}
			}
			queue = append(queue, effects(s, x)...)
		}
	}
	p.state = s
	return p, nil
}
