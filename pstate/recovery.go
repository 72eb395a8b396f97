package pstate

import (
	"errors"
	"io"
)

// recoveryGroup is how many records a Recovery over a state with jobs
// applies in one draft before it commits them.
const recoveryGroup = 4096

// errRecoveryDone: Replay after State.
var errRecoveryDone = errors.New("pstate: recovery already ended")

// Recovery rebuilds the state from a snapshot and the log records after
// it, far faster than Replay record by record. Over a freshly decoded
// snapshot (DecodeRecovery) or an empty state, the whole state is held in
// Go maps while records are replayed, and State builds the immutable maps
// once, in sorted order, with their builders. Over a state that has jobs
// (NewRecovery), records are applied in drafts of recoveryGroup records.
// A Recovery is used by one goroutine.
type Recovery struct {
	d     *draft
	n     int // records in the current draft (group mode)
	group int // records per draft in group mode; recoveryGroup
	state *State
}

// NewRecovery starts a recovery from s (nil: NewState()).
func NewRecovery(s *State) *Recovery {
	if s == nil {
		s = NewState()
	}
	if s.jobs.Len() > 0 || s.ws.Len() > 0 {
		return &Recovery{d: newDraft(s, s.ids.indexIDs()), group: recoveryGroup}
	}
	d := newBuildDraft(s.seq, s.ids.max)
	d.ids = s.ids
	for pos := s.ids.start; pos < s.ids.end; pos++ {
		id, _ := s.ids.at(pos)
		d.index.add(id, s.ids.hashAt(pos), pos)
	}
	return &Recovery{d: d, group: recoveryGroup}
}

// DecodeRecovery reads a snapshot body written by EncodeSnapshot, checked
// as DecodeSnapshot checks it, and starts a recovery from it. As
// DecodeSnapshot does, it reads r on a goroutine of its own (unless r is
// in memory), which has ended when it returns.
func DecodeRecovery(r io.Reader, seq uint64) (*Recovery, error) {
	d, err := decodeSnapshot(r, seq)
	if err != nil {
		return nil, err
	}
	return &Recovery{d: d, group: recoveryGroup}, nil
}

// Expect tells the recovery that about n records are to come, so that it
// sizes its index of event ids once, for the ids it will hold after them
// (at most the id window), instead of growing it while they are replayed.
// It is optional and changes nothing but speed.
func (r *Recovery) Expect(n uint64) {
	if r.state != nil || r.d.index == nil {
		return
	}
	want := uint64(r.d.ids.max)
	if held := uint64(r.d.index.len()); n < want-min(held, want) {
		want = held + n
	}
	r.d.index.reserve(int(want))
}

// Seq is the seq of the last record applied (or of the snapshot).
func (r *Recovery) Seq() uint64 { return r.d.seq }

// Replay applies one log record at seq, as Replay does: a record at or
// below Seq() is skipped; one that does not decode or fit is an error
// (wrapping *InputError or *ConflictError) and changes nothing.
func (r *Recovery) Replay(seq uint64, payload []byte) error {
	if r.state != nil {
		return errRecoveryDone
	}
	if seq <= r.d.seq {
		return nil
	}
	if err := r.d.replay(seq, payload); err != nil {
		return err
	}
	r.applied()
	return nil
}

// applied counts a record applied; in group mode it commits the draft
// every r.group records.
func (r *Recovery) applied() {
	if r.n++; !r.d.build && r.n >= r.group {
		r.d.reset(r.d.commit())
		r.n = 0
	}
}

// State ends the recovery and returns the state it built; later calls
// return the same state and Replay fails.
func (r *Recovery) State() *State {
	if r.state == nil {
		r.state = r.d.commit()
		r.d = &draft{seq: r.state.seq}
	}
	return r.state
}
