package pstate

import (
	"fmt"

	"github.com/benbjohnson/immutable"
)

type idSetBuilder = immutable.SortedMapBuilder[string, struct{}]

func newIDSetBuilder() *idSetBuilder {
	return immutable.NewSortedMapBuilder[string, struct{}](strComparer{})
}

// stateBuilder builds a State from scratch with the maps' builders, which
// change their own nodes in place: far cheaper than persistent sets. Jobs are
// added first (in job_id order), then workspaces, then event ids (oldest
// first). Nothing built is shared until state() returns.
type stateBuilder struct {
	seq       uint64
	window    int
	jobs      *immutable.MapBuilder[string, *job]
	jobIDs    *idSetBuilder
	byState   [numJobStates]*idSetBuilder
	byLabel   map[string]*idSetBuilder
	finished  *idSetBuilder
	ws        *immutable.SortedMapBuilder[string, *workspace]
	wsByState [2]*idSetBuilder
	wsRefs    int // workspace ids listed by jobs
	seqs      *immutable.MapBuilder[string, uint64]
	ring      *immutable.ListBuilder[string]
}

func newStateBuilder(seq uint64, window int) *stateBuilder {
	b := &stateBuilder{
		seq: seq, window: window,
		jobs:     immutable.NewMapBuilder[string, *job](strHasher{}),
		jobIDs:   newIDSetBuilder(),
		byLabel:  map[string]*idSetBuilder{},
		finished: newIDSetBuilder(),
		ws:       immutable.NewSortedMapBuilder[string, *workspace](strComparer{}),
		seqs:     immutable.NewMapBuilder[string, uint64](strHasher{}),
		ring:     immutable.NewListBuilder[string](),
	}
	for i := range b.byState {
		b.byState[i] = newIDSetBuilder()
	}
	for i := range b.wsByState {
		b.wsByState[i] = newIDSetBuilder()
	}
	return b
}

// addJob adds a job that passed checkJob.
func (b *stateBuilder) addJob(j *job) {
	b.jobs.Set(j.id, j)
	b.jobIDs.Set(j.id, struct{}{})
	b.byState[j.state].Set(j.id, struct{}{})
	for _, l := range j.labels {
		k := l.key + ":" + l.value
		m, ok := b.byLabel[k]
		if !ok {
			m = newIDSetBuilder()
			b.byLabel[k] = m
		}
		m.Set(j.id, struct{}{})
	}
	if j.state.terminal() {
		b.finished.Set(finishKey(j.finished, j.id), struct{}{})
	}
	b.wsRefs += len(j.workspaces)
}

// addWorkspace adds a workspace whose job was added and lists it.
func (b *stateBuilder) addWorkspace(w *workspace) error {
	for _, f := range []struct{ name, v string }{{"workspace_id", w.id}, {"job_id", w.jobID}} {
		if f.v == "" {
			return fmt.Errorf("empty %s", f.name)
		}
		if err := checkString(f.name, f.v, MaxIDBytes, true); err != nil {
			return err
		}
	}
	if err := checkString("path", w.path, MaxPathBytes, false); err != nil {
		return err
	}
	j, ok := b.jobs.Get(w.jobID)
	if !ok {
		return fmt.Errorf("workspace %q: unknown job %q", w.id, w.jobID)
	}
	listed := false
	for _, id := range j.workspaces {
		listed = listed || id == w.id
	}
	if !listed {
		return fmt.Errorf("workspace %q: job %q does not list it", w.id, w.jobID)
	}
	b.ws.Set(w.id, w)
	b.wsByState[w.stateIndex()].Set(w.id, struct{}{})
	return nil
}

// addID remembers an event id; ids come oldest first.
func (b *stateBuilder) addID(id string, seq uint64) error {
	if id == "" {
		return fmt.Errorf("empty id")
	}
	if err := checkString("id", id, MaxIDBytes, true); err != nil {
		return err
	}
	if seq == 0 || seq > b.seq {
		return fmt.Errorf("id %q: seq %d outside 1..%d", id, seq, b.seq)
	}
	if _, dup := b.seqs.Get(id); dup {
		return fmt.Errorf("id %q held twice", id)
	}
	b.seqs.Set(id, seq)
	b.ring.Append(id)
	return nil
}

// state finishes the build.
func (b *stateBuilder) state() (*State, error) {
	if b.ws.Len() != b.wsRefs {
		return nil, &CorruptionError{Kind: fmt.Sprintf(
			"jobs list %d workspaces, the body holds %d", b.wsRefs, b.ws.Len())}
	}
	labels := immutable.NewMapBuilder[string, *idSet](strHasher{})
	for k, m := range b.byLabel {
		labels.Set(k, m.Map())
	}
	ring := b.ring.List()
	s := &State{
		seq: b.seq, jobs: b.jobs.Map(),
		indexes: &indexes{jobIDs: b.jobIDs.Map(), byLabel: labels.Map(),
			finished: b.finished.Map(), ws: b.ws.Map()},
		ids: idWindow{max: b.window, count: uint64(ring.Len()), seqs: b.seqs.Map(), ring: ring},
	}
	for i := range s.byState {
		s.byState[i] = b.byState[i].Map()
	}
	for i := range s.wsByState {
		s.wsByState[i] = b.wsByState[i].Map()
	}
	return s, nil
}

// checkJob checks a decoded job's own consistency.
func checkJob(j *job) error {
	if j.id == "" || j.name == "" {
		return fmt.Errorf("empty id or name")
	}
	for _, f := range []struct {
		name, v string
		max     int
		ident   bool
	}{
		{"job_id", j.id, MaxIDBytes, true}, {"name", j.name, MaxNameBytes, false},
		{"worker", j.worker, MaxNameBytes, false}, {"reason", j.reason, MaxReasonBytes, false},
	} {
		if err := checkString(f.name, f.v, f.max, f.ident); err != nil {
			return err
		}
	}
	if j.state >= numJobStates {
		return fmt.Errorf("bad state byte %d", j.state)
	}
	if len(j.steps) == 0 {
		return fmt.Errorf("no steps")
	}
	if err := checkSteps(j.steps); err != nil {
		return err
	}
	for i, l := range j.labels {
		if i > 0 && l.key <= j.labels[i-1].key {
			return fmt.Errorf("label keys not ascending")
		}
		if err := checkLabels(map[string]string{l.key: l.value}); err != nil {
			return err
		}
	}
	if err := checkAttempts(j); err != nil {
		return err
	}
	for i, w := range j.workspaces {
		for _, prev := range j.workspaces[:i] {
			if prev == w {
				return fmt.Errorf("workspace %q listed twice", w)
			}
		}
	}
	return nil
}

// checkAttempts checks that each step's attempts are numbered 1, 2, ... and
// that only a step's last attempt may still be running.
func checkAttempts(j *job) error {
	next := make([]uint32, len(j.steps))
	running := make([]bool, len(j.steps))
	for _, a := range j.attempts {
		if int(a.step) >= len(j.steps) {
			return fmt.Errorf("attempt of undeclared step %d", a.step)
		}
		if a.num != next[a.step]+1 || running[a.step] {
			return fmt.Errorf("step %q: attempt %d out of order", j.steps[a.step], a.num)
		}
		if a.status > asSkipped {
			return fmt.Errorf("step %q: bad status byte %d", j.steps[a.step], a.status)
		}
		next[a.step], running[a.step] = a.num, a.status == asRunning
	}
	return nil
}
