package pstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The snapshot body, written inside the checkpoint file's framing (which
// compresses it and checksums it). Integers are uvarints, times zigzag
// varints of Unix nanoseconds, strings a uvarint length and the bytes.
//
//	+---------+-----+-----------+-------+-------+------------+-------+---------+
//	| version | seq | id window | njobs | job * | nworkspace | ws *  | nids .. |
//	|  0x01   |     |   (max)   |       |       |            |       |         |
//	+---------+-----+-----------+-------+-------+------------+-------+---------+
//
//	job:   id name worker reason | state byte | submitted started finished |
//	       nlabels (key value)* | nsteps name* |
//	       nattempts (step num status-byte started finished exit)* |
//	       nworkspaces id*
//	ws:    id job_id path | released byte (0/1) | allocated released
//	ids:   nids (id seq)*   oldest first
//
// Jobs come in job_id order and workspaces in workspace_id order, straight
// from the sorted maps, so equal states give equal bytes. The body ends
// right after the last id.
const snapshotVersion = 1

// CorruptionError is a snapshot body that cannot be decoded: Offset is the
// byte offset in the (decompressed) body, Kind says what is wrong.
type CorruptionError struct {
	Offset int64
	Kind   string
	Err    error
}

func (e *CorruptionError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("pstate: snapshot body at offset %d: %s: %v", e.Offset, e.Kind, e.Err)
	}
	return fmt.Sprintf("pstate: snapshot body at offset %d: %s", e.Offset, e.Kind)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// EncodeSnapshot writes the state's snapshot body to w, streaming from the
// immutable maps: memory use does not grow with the state. It may run on
// any goroutine while the engine goes on: s never changes.
func (s *State) EncodeSnapshot(w io.Writer) error {
	e := snapWriter{w: w, b: make([]byte, 0, snapFlushAt+4<<10)}
	e.b = append(e.b, snapshotVersion)
	e.uvarint(s.seq)
	e.uvarint(uint64(s.ids.max))
	e.uvarint(uint64(s.jobIDs.Len()))
	it := s.jobIDs.Iterator()
	for !it.Done() && e.err == nil {
		id, _, _ := it.Next()
		j, _ := s.jobs.Get(id)
		e.job(j)
		e.flushIfFull()
	}
	e.uvarint(uint64(s.ws.Len()))
	wit := s.ws.Iterator()
	for !wit.Done() && e.err == nil {
		_, w, _ := wit.Next()
		e.str(w.id)
		e.str(w.jobID)
		e.str(w.path)
		e.bool(w.isReleased)
		e.varint(w.allocated)
		e.varint(w.released)
		e.flushIfFull()
	}
	e.uvarint(uint64(s.ids.len()))
	_ = s.ids.each(func(id string, seq uint64) error {
		e.str(id)
		e.uvarint(seq)
		e.flushIfFull()
		return e.err
	})
	e.flush()
	if e.err != nil {
		return fmt.Errorf("write snapshot: %w", e.err)
	}
	return nil
}

// snapFlushAt is how many bytes snapWriter gathers before it writes them.
const snapFlushAt = 64 << 10

// snapWriter appends the body to b and writes b to w in pieces of about
// snapFlushAt bytes: one call per field into a buffered writer, each with
// its error check, took most of a checkpoint's CPU.
type snapWriter struct {
	w   io.Writer
	b   []byte
	err error
}

func (e *snapWriter) flushIfFull() {
	if len(e.b) >= snapFlushAt {
		e.flush()
	}
}

func (e *snapWriter) flush() {
	if e.err == nil && len(e.b) > 0 {
		_, e.err = e.w.Write(e.b)
	}
	e.b = e.b[:0]
}

func (e *snapWriter) bool(b bool) {
	if b {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *snapWriter) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *snapWriter) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *snapWriter) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *snapWriter) job(j *job) {
	e.str(j.id)
	e.str(j.name)
	e.str(j.worker)
	e.str(j.reason)
	e.b = append(e.b, byte(j.state))
	e.varint(j.submitted)
	e.varint(j.started)
	e.varint(j.finished)
	e.uvarint(uint64(len(j.labels)))
	for _, l := range j.labels {
		e.str(l.key)
		e.str(l.value)
	}
	e.uvarint(uint64(len(j.steps)))
	for _, s := range j.steps {
		e.str(s)
	}
	e.uvarint(uint64(len(j.attempts)))
	for _, a := range j.attempts {
		e.uvarint(uint64(a.step))
		e.uvarint(uint64(a.num))
		e.b = append(e.b, a.status)
		e.varint(a.started)
		e.varint(a.finished)
		e.varint(int64(a.exit))
	}
	e.uvarint(uint64(len(j.workspaces)))
	for _, w := range j.workspaces {
		e.str(w)
	}
}

// DecodeSnapshot reads a snapshot body written by EncodeSnapshot and builds
// the state with the maps' builders. seq is the snapshot's seq from its
// header; the body must hold the same. Bad bytes and any inconsistency (ids
// out of order, a workspace whose job does not list it, an attempt of an
// undeclared step...) give a *CorruptionError with the body offset.
//
// Unless r is in memory (*bytes.Reader, *bytes.Buffer, *strings.Reader),
// it is read a few buffers ahead on a goroutine of its own, so that the
// work behind r's Read (a snapshot file's decompression) runs beside the
// decoding; that goroutine has ended when DecodeSnapshot returns.
func DecodeSnapshot(r io.Reader, seq uint64) (*State, error) {
	b, err := decodeSnapshot(r, seq)
	if err != nil {
		return nil, err
	}
	return b.buildState(), nil
}

// decodeSnapshot reads a snapshot body into a draft in build mode.
func decodeSnapshot(r io.Reader, seq uint64) (*draft, error) {
	r, stop := readAhead(r)
	defer stop()
	d := newSnapReader(r)
	b, err := d.state(seq)
	if err != nil {
		var ce *CorruptionError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, &CorruptionError{Offset: d.offset(), Kind: "read", Err: err}
	}
	return b, nil
}
