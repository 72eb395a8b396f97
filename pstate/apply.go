package pstate

import (
	"fmt"
	"maps"
	"slices"
	"sync"
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

// view reads jobs and workspaces: a *State, or a draft over one.
type view interface {
	getJob(id string) (*job, bool)
	getWS(id string) (*workspace, bool)
}

func (s *State) getJob(id string) (*job, bool)      { return s.jobs.Get(id) }
func (s *State) getWS(id string) (*workspace, bool) { return s.ws.Get(id) }
func (d *draft) getJob(id string) (*job, bool)      { return d.job(id) }
func (d *draft) getWS(id string) (*workspace, bool) { return d.workspace(id) }

// found is what conflict looked up, for apply: the job the event names,
// when it exists, and for a step event that fits, the step's index in the
// job's steps and its last attempt's in the job's attempts (-1: none).
type found struct {
	j          *job
	step, last int
}

// conflict checks that a well-formed e fits the state. It returns what it
// looked up, so apply need not look it up again.
func conflict(s view, e *Event) (found, error) {
	switch e.Type {
	case TypeJobSubmitted:
		if _, ok := s.getJob(e.JobID); ok {
			return found{}, &ConflictError{JobID: e.JobID, Message: "already submitted"}
		}
		return found{}, nil
	case TypeWorkspaceAllocated:
		return allocConflict(s, e)
	case TypeWorkspaceReleased:
		w, ok := s.getWS(e.WorkspaceID)
		if !ok {
			return found{}, &ConflictError{WorkspaceID: e.WorkspaceID, Message: "unknown workspace"}
		}
		if w.isReleased {
			return found{}, &ConflictError{WorkspaceID: e.WorkspaceID, JobID: w.jobID,
				Message: "already released"}
		}
		return found{}, nil
	}
	j, ok := s.getJob(e.JobID)
	if !ok {
		return found{}, &ConflictError{JobID: e.JobID, Message: "unknown job"}
	}
	switch e.Type {
	case TypeJobPurged:
		if !j.state.terminal() {
			return found{}, jobConflict(j, "cannot be purged: not finished")
		}
		return found{j: j}, nil
	case TypeJobStarted:
		if j.state != jsQueued {
			return found{}, jobConflict(j, "cannot start: not queued")
		}
		return found{j: j}, nil
	case TypeJobFinished:
		if j.state.terminal() {
			return found{}, jobConflict(j, "already finished")
		}
		if j.state == jsQueued && e.Status == StatusSucceeded {
			return found{}, jobConflict(j, "cannot succeed: never started")
		}
		return found{j: j}, nil
	}
	return stepConflict(j, e)
}

func jobConflict(j *job, msg string) error {
	return &ConflictError{JobID: j.id, Message: fmt.Sprintf("%s (job is %s)", msg,
		jobStateNames[j.state])}
}

// stepConflict checks step.started and step.finished.
func stepConflict(j *job, e *Event) (found, error) {
	if j.state != jsRunning {
		verb := "started"
		if e.Type == TypeStepFinished {
			verb = "finished"
		}
		return found{}, &ConflictError{JobID: j.id, Step: e.Step, Message: fmt.Sprintf(
			"step %s while the job is %s", verb, jobStateNames[j.state])}
	}
	si := j.stepIndex(e.Step)
	if si < 0 {
		return found{}, &ConflictError{JobID: j.id, Step: e.Step,
			Message: "step not declared"}
	}
	li := j.lastAttempt(si)
	var last attempt
	if li >= 0 {
		last = j.attempts[li]
	}
	c := func(format string, args ...any) (found, error) {
		return found{}, &ConflictError{JobID: j.id, Step: e.Step,
			Message: fmt.Sprintf(format, args...)}
	}
	if e.Type == TypeStepStarted {
		switch {
		case li >= 0 && last.status == asRunning:
			return c("attempt %d started while attempt %d is running", e.Attempt, last.num)
		case e.Attempt != int(last.num)+1:
			return c("attempt %d is not the next one (want %d)", e.Attempt, last.num+1)
		}
		return found{j, si, li}, nil
	}
	switch {
	case li < 0 || e.Attempt > int(last.num):
		return c("attempt %d finished before it started", e.Attempt)
	case e.Attempt < int(last.num):
		return c("attempt %d is not the last one (%d)", e.Attempt, last.num)
	case last.status != asRunning:
		return c("attempt %d already finished (%s)", e.Attempt, statusCodes[last.status])
	}
	return found{j, si, li}, nil
}

func allocConflict(s view, e *Event) (found, error) {
	if w, ok := s.getWS(e.WorkspaceID); ok && !w.isReleased {
		return found{}, &ConflictError{WorkspaceID: e.WorkspaceID, JobID: w.jobID,
			Message: "already allocated"}
	}
	c := func(msg string) (found, error) {
		return found{}, &ConflictError{WorkspaceID: e.WorkspaceID, JobID: e.JobID,
			Message: msg}
	}
	j, ok := s.getJob(e.JobID)
	if !ok {
		return c("unknown job")
	}
	if j.state.terminal() {
		return c(fmt.Sprintf("job is finished (%s)", jobStateNames[j.state]))
	}
	if len(j.workspaces) >= MaxJobWorkspaces && !slices.Contains(j.workspaces, e.WorkspaceID) {
		return c(fmt.Sprintf("job already lists %d workspaces, the most it may",
			MaxJobWorkspaces))
	}
	return found{j: j}, nil
}

// Apply returns the state after the event at seq. It is pure: s is not
// changed, and the same (s, e, seq) always gives the same state. When seq is
// not above s.Seq() it returns s (replaying a log over a snapshot that holds
// part of it is harmless). An event that Validate refuses changes nothing
// but the seq; the engine never logs one. Effects are not computed here:
// they are events of their own in the log. It is a draft of one event,
// committed.
func Apply(s *State, e *Event, seq uint64) *State {
	if seq <= s.seq {
		return s
	}
	if checkEvent(e) != nil {
		return s.withSeq(seq)
	}
	d := applyDrafts.Get().(*draft)
	d.reset(s)
	defer applyDrafts.Put(d)
	if _, err := conflict(d, e); err != nil {
		d.release()
		return s.withSeq(seq)
	}
	d.apply(e, seq)
	n := d.commit()
	d.release()
	return n
}

// applyDrafts keeps drafts (and their maps' storage) for Apply.
var applyDrafts = sync.Pool{New: func() any { return newDraft(NewState(), nil) }}

func (s *State) withSeq(seq uint64) *State {
	n := *s
	n.seq = seq
	return &n
}

// apply applies an event that passed checkEvent and conflict against d.
func (d *draft) apply(e *Event, seq uint64) {
	var h uint64
	if e.ID != "" {
		h = hashID(e.ID)
	}
	d.applyFound(e, seq, found{}, h)
}

// applyFound is apply given what conflict found against d just before (f
// zero: look it up again) and the hash of e.ID (when it has one).
func (d *draft) applyFound(e *Event, seq uint64, f found, h uint64) {
	d.seq = seq
	t := e.Time.UnixNano()
	switch e.Type {
	case TypeJobSubmitted:
		d.submit(e, t)
	case TypeJobStarted:
		j := d.touchFound(e.JobID, f.j, false)
		j.worker, j.started, j.state = e.Worker, t, jsRunning
	case TypeStepStarted:
		j, si := d.touchFound(e.JobID, f.j, true), f.step
		if f.j == nil {
			si = j.stepIndex(e.Step)
		}
		j.attempts = append(j.attempts, attempt{
			started: t, num: uint32(e.Attempt), step: uint16(si),
		})
	case TypeStepFinished:
		j, i := d.touchFound(e.JobID, f.j, true), f.last
		if f.j == nil {
			i = j.lastAttempt(j.stepIndex(e.Step))
		}
		a := j.attempts[i]
		a.finished, a.exit = t, int32(e.ExitCode)
		a.status = uint8(slices.Index(statusCodes, e.Status))
		d.setAttempt(j, i, a)
	case TypeJobFinished:
		j := d.touchFound(e.JobID, f.j, false)
		j.finished, j.reason = t, e.Reason
		j.state, _ = parseJobState(e.Status)
	case TypeWorkspaceAllocated:
		d.allocate(e, t)
	case TypeWorkspaceReleased:
		w, _ := d.workspace(e.WorkspaceID)
		w2 := *w
		w2.isReleased, w2.released = true, t
		d.setWS(w2.id, &w2)
	case TypeJobPurged:
		d.purge(e.JobID)
	}
	if e.ID != "" {
		d.addIDHash(e.ID, h, seq)
	}
}

// touchFound is touch for job id, which conflict found as j (nil: not
// looked up). A build draft that keeps no undo records owns every job it
// holds, slices included: j is already the one to change in place.
func (d *draft) touchFound(id string, j *job, attempts bool) *job {
	if j != nil && d.build && !d.record {
		return j
	}
	return d.touch(id, attempts, false)
}

func (d *draft) submit(e *Event, t int64) {
	j := &job{id: e.JobID, name: e.Name, steps: slices.Clone(e.Steps), submitted: t}
	if len(e.Labels) > 0 {
		j.labels = make([]label, 0, len(e.Labels))
		for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
			j.labels = append(j.labels, label{k, e.Labels[k]})
		}
	}
	d.setJob(j.id, j)
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
func (d *draft) allocate(e *Event, t int64) {
	if old, ok := d.workspace(e.WorkspaceID); ok && old.jobID != e.JobID {
		if _, ok := d.job(old.jobID); ok {
			// A fresh slice: the undo of a refused request restores the
			// job's slice header, not elements shifted in place.
			oj := d.touch(old.jobID, false, true)
			oj.workspaces = slices.DeleteFunc(slices.Clone(oj.workspaces),
				func(id string) bool { return id == old.id })
		}
	}
	w := &workspace{id: e.WorkspaceID, jobID: e.JobID, path: e.Path, allocated: t}
	d.setWS(w.id, w)
	if owner, _ := d.job(e.JobID); !slices.Contains(owner.workspaces, w.id) {
		j := d.touch(e.JobID, false, true)
		j.workspaces = append(j.workspaces, w.id)
	}
}

// purge drops a finished job and its workspaces; commit drops its index
// entries.
func (d *draft) purge(id string) {
	j, _ := d.job(id)
	for _, wid := range j.workspaces {
		if w, ok := d.workspace(wid); ok && w.jobID == id {
			d.setWS(wid, nil)
		}
	}
	d.setJob(id, nil)
}

// effects returns the follow-up events of e, which was just applied giving
// s. They take e's time, so they are the same whenever e is.
func effects(s view, e *Event) []Event {
	switch e.Type {
	case TypeStepFinished:
		if e.Status == StatusFailed {
			return nil
		}
		j, _ := s.getJob(e.JobID)
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
		j, _ := s.getJob(e.JobID)
		var out []Event
		for _, wid := range j.workspaces {
			if w, ok := s.getWS(wid); ok && w.jobID == j.id && !w.isReleased {
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
