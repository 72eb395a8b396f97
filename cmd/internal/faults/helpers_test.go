package faults

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/pstate/pstate/internal/workload"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// soak reports whether the long run was asked for (PSTATE_SOAK=1, as
// `make soak` sets it): every crash point, more seeds, more rounds.
func soak() bool { return os.Getenv("PSTATE_SOAK") != "" }

// pick returns short in the normal run and long under soak.
func pick(short, long int) int {
	if soak() {
		return long
	}
	return short
}

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// toEvent converts a generated event to the engine's type; the field names
// are the same.
func toEvent(w workload.Event) pstate.Event {
	return pstate.Event{Type: w.Type, ID: w.ID, Time: w.Time, JobID: w.JobID,
		Name: w.Name, Labels: w.Labels, Steps: w.Steps, Worker: w.Worker,
		Step: w.Step, Attempt: w.Attempt, Status: w.Status, ExitCode: w.ExitCode,
		Reason: w.Reason, WorkspaceID: w.WorkspaceID, Path: w.Path}
}

// answer is one event a caller got a success answer for.
type answer struct {
	id  string
	seq uint64
}

// ledger keeps the events answered so far, in the order they were
// answered. It only grows, so a length taken at a crash point names the
// events answered before it.
type ledger struct {
	mu  sync.Mutex
	ans []answer
	// added gets a signal (it holds at most one) after each add.
	added chan struct{}
}

func newLedger() *ledger { return &ledger{added: make(chan struct{}, 1)} }

func (l *ledger) add(evs []pstate.Event, res []pstate.Result) {
	l.mu.Lock()
	for i, r := range res {
		if !r.Duplicate {
			l.ans = append(l.ans, answer{id: evs[i].ID, seq: r.Seq})
		}
	}
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
}

func (l *ledger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ans)
}

func (l *ledger) upTo(n int) []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ans[:n:n]
}

// recLog is a *wal.Log that keeps a copy of every record written, by seq:
// the history a recovered state must be a prefix of.
type recLog struct {
	*wal.Log
	hist *history
}

type history struct {
	mu   sync.Mutex
	recs map[uint64][]byte
}

func newHistory() *history { return &history{recs: map[uint64][]byte{}} }

func (r *recLog) Write(payloads [][]byte) (first, last uint64, err error) {
	first, last, err = r.Log.Write(payloads)
	if err == nil {
		r.hist.mu.Lock()
		for i, p := range payloads {
			r.hist.recs[first+uint64(i)] = append([]byte(nil), p...)
		}
		r.hist.mu.Unlock()
	}
	return first, last, err
}

// replayPrefix builds the state of a fresh replay of records 1..seq of the
// history.
func (h *history) replayPrefix(seq uint64) (*pstate.State, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := pstate.NewState()
	for s := uint64(1); s <= seq; s++ {
		p, ok := h.recs[s]
		if !ok {
			return nil, fmt.Errorf("record %d was never written", s)
		}
		next, err := pstate.Replay(st, s, p)
		if err != nil {
			return nil, fmt.Errorf("fresh replay of record %d: %w", s, err)
		}
		st = next
	}
	return st, nil
}

// sameState reports whether two states are equal: equal states encode to
// equal snapshot bodies.
func sameState(a, b *pstate.State) (bool, error) {
	var ab, bb bytes.Buffer
	if err := a.EncodeSnapshot(&ab); err != nil {
		return false, err
	}
	if err := b.EncodeSnapshot(&bb); err != nil {
		return false, err
	}
	return bytes.Equal(ab.Bytes(), bb.Bytes()), nil
}

// tempFiles lists the *.tmp files under the data dir's wal/ and snapshots/.
func tempFiles(fsys vfs.FS, dataDir string) []string {
	var out []string
	for _, sub := range []string{"wal", "snapshots"} {
		dir := dataDir + "/" + sub
		names, _ := fsys.List(dir)
		for _, n := range names {
			if strings.HasSuffix(n, ".tmp") {
				out = append(out, dir+"/"+n)
			}
		}
	}
	return out
}
