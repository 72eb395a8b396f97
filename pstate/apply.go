package pstate

import (
	"fmt"
	"maps"
	"slices"
)

// Validate checks e against s: first its shape (an *InputError), then
// whether it fits the state (a *ConflictError naming the job, step or
// workspace). Both carry Index 0; the engine stamps the batch index. It does
// not look at e.ID: duplicates are the engine's to answer.
func Validate(s *State, e *Event) error {
	if err := checkEvent(e); err != nil {
		return err
	}
	_, err := conflict(s, e)
	return err
}

// conflict checks that a well-formed e fits the state. It returns the job
// the event names, when it exists, so apply need not look it up again.
func conflict(s *State, e *Event) (*job, error) {
	switch e.Type {
	case TypeJobSubmitted:
		if _, ok := s.jobs.Get(e.JobID); ok {
			return nil, &ConflictError{JobID: e.JobID, Message: "already submitted"}
		}
		return nil, nil
	case TypeWorkspaceAllocated:
		return allocConflict(s, e)
	case TypeWorkspaceReleased:
		w, ok := s.ws.Get(e.WorkspaceID)
		if !ok {
			return nil, &ConflictError{WorkspaceID: e.WorkspaceID, Message: "unknown workspace"}
		}
		if w.isReleased {
			return nil, &ConflictError{WorkspaceID: e.WorkspaceID, JobID: w.jobID,
				Message: "already released"}
		}
		return nil, nil
	}
	j, ok := s.jobs.Get(e.JobID)
	if !ok {
		return nil, &ConflictError{JobID: e.JobID, Message: "unknown job"}
	}
	switch e.Type {
	case TypeJobPurged:
		if !j.state.terminal() {
			return nil, jobConflict(j, "cannot be purged: not finished")
		}
		return j, nil
	case TypeJobStarted:
		if j.state != jsQueued {
			return nil, jobConflict(j, "cannot start: not queued")
		}
		return j, nil
	case TypeJobFinished:
		if j.state.terminal() {
			return nil, jobConflict(j, "already finished")
		}
		if j.state == jsQueued && e.Status == StatusSucceeded {
			return nil, jobConflict(j, "cannot succeed: never started")
		}
		return j, nil
	}
	return j, stepConflict(j, e)
}

func jobConflict(j *job, msg string) error {
	return &ConflictError{JobID: j.id, Message: fmt.Sprintf("%s (job is %s)", msg,
		jobStateNames[j.state])}
}

// stepConflict checks step.started and step.finished.
func stepConflict(j *job, e *Event) error {
	if j.state != jsRunning {
		verb := "started"
		if e.Type == TypeStepFinished {
			verb = "finished"
		}
		return &ConflictError{JobID: j.id, Step: e.Step, Message: fmt.Sprintf(
			"step %s while the job is %s", verb, jobStateNames[j.state])}
	}
	si := j.stepIndex(e.Step)
	if si < 0 {
		return &ConflictError{JobID: j.id, Step: e.Step, Message: "step not declared"}
	}
	li := j.lastAttempt(si)
	var last attempt
	if li >= 0 {
		last = j.attempts[li]
	}
	c := func(format string, args ...any) error {
		return &ConflictError{JobID: j.id, Step: e.Step, Message: fmt.Sprintf(format, args...)}
	}
	if e.Type == TypeStepStarted {
		switch {
		case li >= 0 && last.status == asRunning:
			return c("attempt %d started while attempt %d is running", e.Attempt, last.num)
		case e.Attempt != int(last.num)+1:
			return c("attempt %d is not the next one (want %d)", e.Attempt, last.num+1)
		}
		return nil
	}
	switch {
	case li < 0 || e.Attempt > int(last.num):
		return c("attempt %d finished before it started", e.Attempt)
	case e.Attempt < int(last.num):
		return c("attempt %d is not the last one (%d)", e.Attempt, last.num)
	case last.status != asRunning:
		return c("attempt %d already finished (%s)", e.Attempt, statusCodes[last.status])
	}
	return nil
}

func allocConflict(s *State, e *Event) (*job, error) {
	if w, ok := s.ws.Get(e.WorkspaceID); ok && !w.isReleased {
		return nil, &ConflictError{WorkspaceID: e.WorkspaceID, JobID: w.jobID,
			Message: "already allocated"}
	}
	j, ok := s.jobs.Get(e.JobID)
	if !ok {
		return nil, &ConflictError{WorkspaceID: e.WorkspaceID, JobID: e.JobID, Message: "unknown job"}
	}
	if j.state.terminal() {
		return nil, &ConflictError{WorkspaceID: e.WorkspaceID, JobID: e.JobID, Message: fmt.Sprintf(
			"job is finished (%s)", jobStateNames[j.state])}
	}
	if len(j.workspaces) >= MaxJobWorkspaces && !slices.Contains(j.workspaces, e.WorkspaceID) {
		return nil, &ConflictError{WorkspaceID: e.WorkspaceID, JobID: e.JobID, Message: fmt.Sprintf(
			"job already lists %d workspaces, the most it may", MaxJobWorkspaces)}
	}
	return j, nil
}

// Apply returns the state after the event at seq. It is pure: s is not
// changed, and the same (s, e, seq) always gives the same state. When seq is
// not above s.Seq() it returns s (replaying a log over a snapshot that holds
// part of it is harmless). An event that Validate refuses changes nothing
// but the seq; the engine never logs one. Effects are not computed here:
// they are events of their own in the log.
func Apply(s *State, e *Event, seq uint64) *State {
	if seq <= s.seq {
		return s
	}
	if checkEvent(e) != nil {
		return s.withSeq(seq)
	}
	j, err := conflict(s, e)
	if err != nil {
		return s.withSeq(seq)
	}
	return apply(s, e, seq, j)
}

func (s *State) withSeq(seq uint64) *State {
	n := *s
	n.seq = seq
	return &n
}

// apply applies an event that passed Validate against s; j is the job
// conflict returned.
func apply(s *State, e *Event, seq uint64, j *job) *State {
	n := *s
	n.seq = seq
	if e.Type != TypeStepStarted && e.Type != TypeStepFinished {
		// Step events, the bulk, touch only the jobs map; the others get
		// their own copy of the indexes to change.
		x := *s.indexes
		n.indexes = &x
	}
	t := e.Time.UnixNano()
	switch e.Type {
	case TypeJobSubmitted:
		n.submit(e, t)
	case TypeJobStarted:
		j := copyJob(j)
		j.worker, j.started = e.Worker, t
		n.moveJob(j, jsRunning)
	case TypeStepStarted:
		j := copyJob(j)
		j.attempts = appendCopy(j.attempts, attempt{
			started: t, num: uint32(e.Attempt), step: uint16(j.stepIndex(e.Step)),
		})
		n.jobs = n.jobs.Set(j.id, j)
	case TypeStepFinished:
		j := copyJob(j)
		i := j.lastAttempt(j.stepIndex(e.Step))
		j.attempts = slices.Clone(j.attempts)
		a := &j.attempts[i]
		a.finished, a.exit = t, int32(e.ExitCode)
		a.status = uint8(slices.Index(statusCodes, e.Status))
		n.jobs = n.jobs.Set(j.id, j)
	case TypeJobFinished:
		j := copyJob(j)
		j.finished, j.reason = t, e.Reason
		st, _ := parseJobState(e.Status)
		n.moveJob(j, st)
		n.finished = n.finished.Set(finishKey(t, j.id), struct{}{})
	case TypeWorkspaceAllocated:
		n.allocate(e, t, j)
	case TypeWorkspaceReleased:
		w, _ := n.ws.Get(e.WorkspaceID)
		w2 := *w
		w2.isReleased, w2.released = true, t
		n.ws = n.ws.Set(w2.id, &w2)
		n.wsByState[0] = n.wsByState[0].Delete(w2.id)
		n.wsByState[1] = n.wsByState[1].Set(w2.id, struct{}{})
	case TypeJobPurged:
		n.purge(e.JobID)
	}
	if e.ID != "" {
		n.ids = n.ids.add(e.ID, seq)
	}
	return &n
}

// appendCopy returns a new slice holding s and v, sized exactly: the slice
// of a published job is never appended to in place, and no spare capacity
// is kept in the state.
func appendCopy[T any](s []T, v T) []T {
	c := make([]T, len(s)+1)
	copy(c, s)
	c[len(s)] = v
	return c
}

// copyJob returns a shallow copy of j.
func copyJob(j *job) *job {
	c := *j
	return &c
}

// moveJob stores j in state st, updating the state index.
func (n *State) moveJob(j *job, st jobState) {
	n.byState[j.state] = n.byState[j.state].Delete(j.id)
	n.byState[st] = n.byState[st].Set(j.id, struct{}{})
	j.state = st
	n.jobs = n.jobs.Set(j.id, j)
}

func (n *State) submit(e *Event, t int64) {
	j := &job{id: e.JobID, name: e.Name, steps: slices.Clone(e.Steps), submitted: t}
	if len(e.Labels) > 0 {
		j.labels = make([]label, 0, len(e.Labels))
		for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
			j.labels = append(j.labels, label{k, e.Labels[k]})
		}
	}
	n.jobs = n.jobs.Set(j.id, j)
	n.jobIDs = n.jobIDs.Set(j.id, struct{}{})
	n.byState[jsQueued] = n.byState[jsQueued].Set(j.id, struct{}{})
	for _, l := range j.labels {
		n.labelIndex(l, func(m *idSet) *idSet { return m.Set(j.id, struct{}{}) })
	}
}

// labelIndex replaces the id set of label l with fn(set); an emptied set is
// dropped.
func (n *State) labelIndex(l label, fn func(*idSet) *idSet) {
	k := l.key + ":" + l.value
	m, ok := n.byLabel.Get(k)
	if !ok {
		m = newIDSet()
	}
	if m = fn(m); m.Len() == 0 {
		n.byLabel = n.byLabel.Delete(k)
		return
	}
	n.byLabel = n.byLabel.Set(k, m)
}

// allocate records a workspace. Reusing the id of a released workspace
// replaces it; when it belonged to another job, that job stops listing it.
func (n *State) allocate(e *Event, t int64, owner *job) {
	if old, ok := n.ws.Get(e.WorkspaceID); ok {
		n.wsByState[1] = n.wsByState[1].Delete(old.id)
		if oj, ok := n.jobs.Get(old.jobID); ok && old.jobID != e.JobID {
			c := *oj
			c.workspaces = slices.DeleteFunc(slices.Clone(c.workspaces),
				func(id string) bool { return id == old.id })
			n.jobs = n.jobs.Set(c.id, &c)
		}
	}
	w := &workspace{id: e.WorkspaceID, jobID: e.JobID, path: e.Path, allocated: t}
	n.ws = n.ws.Set(w.id, w)
	n.wsByState[0] = n.wsByState[0].Set(w.id, struct{}{})
	j := copyJob(owner) // not the previous owner: that one differs
	if !slices.Contains(j.workspaces, w.id) {
		j.workspaces = appendCopy(j.workspaces, w.id)
		n.jobs = n.jobs.Set(j.id, j)
	}
}

// purge drops a finished job, its index entries and its workspaces.
func (n *State) purge(id string) {
	j, _ := n.jobs.Get(id)
	n.jobs = n.jobs.Delete(id)
	n.jobIDs = n.jobIDs.Delete(id)
	n.byState[j.state] = n.byState[j.state].Delete(id)
	n.finished = n.finished.Delete(finishKey(j.finished, id))
	for _, l := range j.labels {
		n.labelIndex(l, func(m *idSet) *idSet { return m.Delete(id) })
	}
	for _, wid := range j.workspaces {
		w, ok := n.ws.Get(wid)
		if !ok || w.jobID != id {
			continue
		}
		n.ws = n.ws.Delete(wid)
		n.wsByState[w.stateIndex()] = n.wsByState[w.stateIndex()].Delete(wid)
	}
}

// effects returns the follow-up events of e, which was just applied giving
// s. They take e's time, so they are the same whenever e is.
func effects(s *State, e *Event) []Event {
	switch e.Type {
	case TypeStepFinished:
		if e.Status == StatusFailed {
			return nil
		}
		j, _ := s.jobs.Get(e.JobID)
		if j.state != jsRunning {
			return nil
		}
		for si := range j.steps {
			li := j.lastAttempt(si)
			if li < 0 {
				return nil
			}
			if st := j.attempts[li].status; st != asSucceeded && st != asSkipped {
				return nil
			}
		}
		return []Event{{Type: TypeJobFinished, Time: e.Time, JobID: j.id,
			Status: StatusSucceeded, Effect: true}}
	case TypeJobFinished:
		j, _ := s.jobs.Get(e.JobID)
		var out []Event
		for _, wid := range j.workspaces {
			if w, ok := s.ws.Get(wid); ok && w.jobID == j.id && !w.isReleased {
				out = append(out, Event{Type: TypeWorkspaceReleased, Time: e.Time,
					WorkspaceID: wid, Effect: true})
			}
		}
		return out
	}
	return nil
}

// purgeable returns up to max ids of jobs finished at or before cutoff
// (Unix nanoseconds), oldest first.
func (s *State) purgeable(cutoff int64, max int) []string {
	var ids []string
	it := s.finished.Iterator()
	for !it.Done() && len(ids) < max {
		k, _, _ := it.Next()
		t, id := parseFinishKey(k)
		if t > cutoff {
			break
		}
		ids = append(ids, id)
	}
	return ids
}
