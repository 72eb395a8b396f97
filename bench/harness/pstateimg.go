package harness

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pstate/pstate/bench/baseline"
	"github.com/pstate/pstate/pstate"
)

// pstate's snapshot body (pstate/snapshot.go) is written here straight from
// a LoadSet, so a large state is built by pstate.DecodeSnapshot, which
// checks every job and workspace, instead of by replaying tens of millions
// of events. The state is the one recovery would build from a backup of
// the same history; the remembered event ids are left out (the history's
// ids are not resent). Byte layout (uvarints; times zigzag varints of Unix
// nanoseconds; strings a uvarint length and the bytes):
//
//	version seq idwindow | njobs job* | nworkspaces ws* | nids (0)
//
//	job: id name worker reason | state | submitted started finished |
//	     nlabels (key value)* | nsteps name* |
//	     nattempts (step num status started finished exit)* | nws id*
//	ws:  id job_id path | released | allocated released
const pstateSnapshotVersion = 1

var (
	jobStateByte = map[string]byte{
		"queued": 0, "running": 1, "succeeded": 2, "failed": 3, "canceled": 4,
	}
	attemptStateByte = map[string]byte{"running": 0, "succeeded": 1, "failed": 2, "skipped": 3}
)

type bodyWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (b *bodyWriter) uvarint(v uint64) { b.buf = binary.AppendUvarint(b.buf, v) }
func (b *bodyWriter) varint(v int64)   { b.buf = binary.AppendVarint(b.buf, v) }
func (b *bodyWriter) byte(v byte)      { b.buf = append(b.buf, v) }
func (b *bodyWriter) str(s string)     { b.uvarint(uint64(len(s))); b.buf = append(b.buf, s...) }

func (b *bodyWriter) flush() error {
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// writePstateBody writes ls as a pstate snapshot body at seq.
func writePstateBody(w io.Writer, ls *LoadSet, seq uint64) error {
	b := &bodyWriter{w: bufio.NewWriterSize(w, 1<<20)}
	t := ls.Time.UnixNano()
	b.byte(pstateSnapshotVersion)
	b.uvarint(seq)
	b.uvarint(pstate.DefaultIDWindow)
	b.uvarint(uint64(len(ls.Jobs)))
	nws := 0
	for i, j := range ls.Jobs {
		if i > 0 && j.ID <= ls.Jobs[i-1].ID {
			return fmt.Errorf("jobs out of order at %s", j.ID)
		}
		if err := b.job(j, t); err != nil {
			return err
		}
		nws += len(ls.Workspaces[i])
		if err := b.flush(); err != nil {
			return err
		}
	}
	b.uvarint(uint64(nws))
	for _, ws := range ls.Workspaces {
		ws = slices.Clone(ws)
		slices.SortFunc(ws, func(a, c baseline.Workspace) int { return strings.Compare(a.ID, c.ID) })
		for _, x := range ws {
			b.str(x.ID)
			b.str(x.JobID)
			b.str(x.Path)
			rel := int64(0)
			if x.State == baseline.StateReleased {
				b.byte(1)
				rel = x.ReleasedAt.UnixNano()
			} else {
				b.byte(0)
			}
			b.varint(x.AllocatedAt.UnixNano())
			b.varint(rel)
		}
		if err := b.flush(); err != nil {
			return err
		}
	}
	b.uvarint(0)
	if err := b.flush(); err != nil {
		return err
	}
	return b.w.Flush()
}

func (b *bodyWriter) job(j *baseline.Job, t int64) error {
	st, ok := jobStateByte[j.State]
	if !ok {
		return fmt.Errorf("job %s: state %q", j.ID, j.State)
	}
	b.str(j.ID)
	b.str(j.Name)
	b.str(j.Worker)
	b.str(j.Reason)
	b.byte(st)
	b.varint(j.SubmittedAt.UnixNano())
	started, finished := int64(0), int64(0)
	if j.State != baseline.StateQueued {
		started = t
	}
	if !j.FinishedAt.IsZero() {
		finished = j.FinishedAt.UnixNano()
	}
	b.varint(started)
	b.varint(finished)
	keys := make([]string, 0, len(j.Labels))
	for k := range j.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.uvarint(uint64(len(keys)))
	for _, k := range keys {
		b.str(k)
		b.str(j.Labels[k])
	}
	b.uvarint(uint64(len(j.Steps)))
	natt := 0
	for _, s := range j.Steps {
		b.str(s.Name)
		natt += len(s.Attempts)
	}
	// Attempts in the order they happened: steps run one after another.
	b.uvarint(uint64(natt))
	for si, s := range j.Steps {
		for _, a := range s.Attempts {
			as, ok := attemptStateByte[a.Status]
			if !ok {
				return fmt.Errorf("job %s: attempt status %q", j.ID, a.Status)
			}
			fin := int64(0)
			if !a.FinishedAt.IsZero() {
				fin = a.FinishedAt.UnixNano()
			}
			b.uvarint(uint64(si))
			b.uvarint(uint64(a.Attempt))
			b.byte(as)
			b.varint(a.StartedAt.UnixNano())
			b.varint(fin)
			b.varint(int64(a.ExitCode))
		}
	}
	b.uvarint(uint64(len(j.Workspaces)))
	for _, w := range j.Workspaces {
		b.str(w)
	}
	return nil
}

// buildPstateState builds pstate's state for ls through DecodeSnapshot.
func buildPstateState(ls *LoadSet) (*pstate.State, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writePstateBody(pw, ls, ls.Records)) }()
	st, err := pstate.DecodeSnapshot(pr, ls.Records)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return nil, fmt.Errorf("build pstate state: %w", err)
	}
	return st, nil
}
