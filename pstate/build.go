package pstate

import (
	"fmt"
	"slices"

	"github.com/benbjohnson/immutable"
)

type idSetBuilder = immutable.SortedMapBuilder[string, struct{}]

func newIDSetBuilder() *idSetBuilder {
	return immutable.NewSortedMapBuilder[string, struct{}](strComparer{})
}

// newBuildDraft returns a draft in build mode at seq: its Go maps hold the
// whole state (the base is empty), filled by a snapshot's decoder and then
// by replayed records; buildState makes the root once, with the maps'
// builders, which change their own nodes in place and are an order of
// magnitude cheaper than persistent sets.
func newBuildDraft(seq uint64, window int) *draft {
	base := NewStateWithIDWindow(window)
	base.seq = seq
	d := newDraft(base, map[string]uint64{})
	d.build = true
	return d
}

// addJob adds a job that passed checkJob; jobs come in ascending id order.
func (d *draft) addJob(j *job) {
	d.jobs[j.id] = jobEntry{cur: j, attOwned: true, wsOwned: true}
	d.order = append(d.order, j.id)
	d.wsRefs += len(j.workspaces)
}

// addWorkspace adds a workspace whose job was added and lists it; they come
// in ascending id order.
func (d *draft) addWorkspace(w *workspace) error {
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
	j, ok := d.job(w.jobID)
	if !ok {
		return fmt.Errorf("workspace %q: unknown job %q", w.id, w.jobID)
	}
	if !slices.Contains(j.workspaces, w.id) {
		return fmt.Errorf("workspace %q: job %q does not list it", w.id, w.jobID)
	}
	d.ws[w.id] = wsEntry{cur: w}
	d.wsOrd = append(d.wsOrd, w.id)
	return nil
}

// addSnapshotID remembers an event id read from a snapshot; ids come oldest
// first.
func (d *draft) addSnapshotID(id string, seq uint64) error {
	if id == "" {
		return fmt.Errorf("empty id")
	}
	if err := checkString("id", id, MaxIDBytes, true); err != nil {
		return err
	}
	if seq == 0 || seq > d.seq {
		return fmt.Errorf("id %q: seq %d outside 1..%d", id, seq, d.seq)
	}
	if d.ids.len() > 0 {
		if _, last := d.ids.at(d.ids.end - 1); seq <= last {
			return fmt.Errorf("id %q: seq %d not above the previous id's %d", id, seq, last)
		}
	}
	if _, dup := d.applied(id); dup {
		return fmt.Errorf("id %q held twice", id)
	}
	d.addID(id, seq)
	return nil
}

// mergeIDs returns the ids of sorted and of added (unordered), ascending,
// each once.
func mergeIDs(sorted, added []string) []string {
	if len(added) == 0 {
		return sorted
	}
	slices.Sort(added)
	out := make([]string, 0, len(sorted)+len(added))
	i, k := 0, 0
	for i < len(sorted) || k < len(added) {
		var id string
		switch {
		case k == len(added) || (i < len(sorted) && sorted[i] < added[k]):
			id, i = sorted[i], i+1
		default:
			id, k = added[k], k+1
		}
		if n := len(out); n == 0 || out[n-1] != id {
			out = append(out, id)
		}
	}
	return out
}

// buildState makes the root from a build-mode draft, adding jobs and
// workspaces in ascending id order. The draft must not be used after.
func (d *draft) buildState() *State {
	jobs := immutable.NewMapBuilder[string, *job](strHasher{})
	jobIDs, finished := newIDSetBuilder(), newIDSetBuilder()
	var byState [numJobStates]*idSetBuilder
	for i := range byState {
		byState[i] = newIDSetBuilder()
	}
	byLabel := map[string]*idSetBuilder{}
	for _, id := range mergeIDs(d.order, d.added) {
		j := d.jobs[id].cur
		if j == nil {
			continue
		}
		jobs.Set(id, j)
		jobIDs.Set(id, struct{}{})
		byState[j.state].Set(id, struct{}{})
		for _, l := range j.labels {
			k := l.key + ":" + l.value
			m, ok := byLabel[k]
			if !ok {
				m = newIDSetBuilder()
				byLabel[k] = m
			}
			m.Set(id, struct{}{})
		}
		if j.state.terminal() {
			finished.Set(finishKey(j.finished, id), struct{}{})
		}
	}
	ws := immutable.NewSortedMapBuilder[string, *workspace](strComparer{})
	wsByState := [2]*idSetBuilder{newIDSetBuilder(), newIDSetBuilder()}
	for _, id := range mergeIDs(d.wsOrd, d.wsAdd) {
		if w := d.ws[id].cur; w != nil {
			ws.Set(id, w)
			wsByState[w.stateIndex()].Set(id, struct{}{})
		}
	}
	labels := immutable.NewMapBuilder[string, *idSet](strHasher{})
	for k, m := range byLabel {
		labels.Set(k, m.Map())
	}
	s := &State{
		seq: d.seq, jobs: jobs.Map(),
		indexes: &indexes{jobIDs: jobIDs.Map(), byLabel: labels.Map(),
			finished: finished.Map(), ws: ws.Map()},
		ids: d.ids,
	}
	for i := range s.byState {
		s.byState[i] = byState[i].Map()
	}
	for i := range s.wsByState {
		s.wsByState[i] = wsByState[i].Map()
	}
	d.jobs, d.ws = nil, nil
	return s
}

// checkJob checks a decoded job's own consistency.
func checkJob(j *job) error { return checkJobShared(j, false, false) }

// checkJobShared is checkJob that skips the steps or the labels when they
// are a list an earlier job shared and passed with.
func checkJobShared(j *job, stepsChecked, labelsChecked bool) error {
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
	if !stepsChecked {
		if err := checkSteps(j.steps); err != nil {
			return err
		}
	}
	for i, l := range j.labels {
		if labelsChecked {
			break
		}
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
	// Most jobs declare few steps: keep the counters on the stack.
	var nb [32]uint32
	var rb [32]bool
	next, running := nb[:], rb[:]
	if len(j.steps) > len(nb) {
		next, running = make([]uint32, len(j.steps)), make([]bool, len(j.steps))
	}
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
