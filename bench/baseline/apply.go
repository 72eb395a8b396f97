package baseline

import (
	"github.com/pstate/pstate/internal/workload"
)

// txn applies a batch to the state in place and can undo it: before the
// first change to a job or workspace it saves the original pointer and puts
// a private copy in the map.
type txn struct {
	s       *state
	seq     uint64
	jobs    map[string]*Job // original, nil when the job did not exist
	ws      map[string]*Workspace
	ids     []string
	touched map[string]bool
}

func newTxn(s *state) *txn {
	return &txn{s: s, seq: s.Seq, jobs: map[string]*Job{}, ws: map[string]*Workspace{},
		touched: map[string]bool{}}
}

func (t *txn) job(id string) *Job {
	j := t.s.Jobs[id]
	if t.touched["j"+id] {
		return j
	}
	t.touched["j"+id] = true
	t.jobs[id] = j
	if j != nil {
		j = j.clone()
		t.s.Jobs[id] = j
	}
	return j
}

func (t *txn) workspace(id string) *Workspace {
	w := t.s.Workspaces[id]
	if t.touched["w"+id] {
		return w
	}
	t.touched["w"+id] = true
	t.ws[id] = w
	if w != nil {
		c := *w
		w = &c
		t.s.Workspaces[id] = w
	}
	return w
}

func (t *txn) rollback() {
	for id, j := range t.jobs {
		if j == nil {
			delete(t.s.Jobs, id)
		} else {
			t.s.Jobs[id] = j
		}
	}
	for id, w := range t.ws {
		if w == nil {
			delete(t.s.Workspaces, id)
		} else {
			t.s.Workspaces[id] = w
		}
	}
	for _, id := range t.ids {
		delete(t.s.IDs, id)
	}
}

func (t *txn) commit() { t.s.Seq = t.seq }

// apply validates e against the state as changed by the batch so far and
// applies it. It returns the event's seq and whether it was a duplicate.
func (t *txn) apply(e *workload.Event) (seq uint64, dup bool, err error) {
	if e.ID != "" {
		if s, ok := t.s.IDs[e.ID]; ok {
			return s, true, nil
		}
	}
	if err := t.applyNew(e); err != nil {
		return 0, false, err
	}
	t.seq++
	if e.ID != "" {
		t.s.IDs[e.ID] = t.seq
		t.ids = append(t.ids, e.ID)
	}
	return t.seq, false, nil
}

func (t *txn) applyNew(e *workload.Event) error {
	if e.Type == workload.WorkspaceReleased {
		return t.release(e)
	}
	if e.JobID == "" {
		return badInput("job_id")
	}
	if e.Type == workload.JobSubmitted {
		return t.submit(e)
	}
	j := t.job(e.JobID)
	if j == nil {
		return conflict("unknown job %s", e.JobID)
	}
	switch e.Type {
	case workload.JobStarted:
		if j.State != StateQueued {
			return conflict("job %s is %s, not queued", j.ID, j.State)
		}
		j.State, j.Worker = StateRunning, e.Worker
	case workload.StepStarted, workload.StepFinished:
		return t.stepEvent(j, e)
	case workload.JobFinished:
		if !terminal(e.Status) {
			return badInput("status")
		}
		if terminal(j.State) {
			return conflict("job %s already %s", j.ID, j.State)
		}
		j.Reason = e.Reason
		t.finish(j, e.Status, e)
	case workload.WorkspaceAllocated:
		return t.allocate(j, e)
	case workload.JobPurged:
		if !terminal(j.State) {
			return conflict("job %s is %s, not finished", j.ID, j.State)
		}
		for _, id := range j.Workspaces {
			t.workspace(id)
			delete(t.s.Workspaces, id)
		}
		delete(t.s.Jobs, j.ID)
	default:
		return badInput("type")
	}
	return nil
}

func (t *txn) submit(e *workload.Event) error {
	if len(e.Steps) == 0 {
		return badInput("steps")
	}
	if t.job(e.JobID) != nil {
		return conflict("job %s exists", e.JobID)
	}
	j := &Job{ID: e.JobID, Name: e.Name, Labels: e.Labels, State: StateQueued,
		Steps: make([]Step, len(e.Steps)), SubmittedAt: e.Time}
	for i, name := range e.Steps {
		if j.step(name) != nil {
			return badInput("steps")
		}
		j.Steps[i].Name = name
	}
	t.s.Jobs[j.ID] = j
	return nil
}

func (t *txn) stepEvent(j *Job, e *workload.Event) error {
	if j.State != StateRunning {
		return conflict("job %s is %s, not running", j.ID, j.State)
	}
	s := j.step(e.Step)
	if s == nil {
		return conflict("job %s has no step %q", j.ID, e.Step)
	}
	n := len(s.Attempts)
	if e.Type == workload.StepStarted {
		if e.Attempt != n+1 || n > 0 && s.Attempts[n-1].Status == StateRunning {
			return conflict("job %s step %s: attempt %d cannot start", j.ID, e.Step, e.Attempt)
		}
		s.Attempts = append(s.Attempts, Attempt{Attempt: e.Attempt, Status: StateRunning,
			StartedAt: e.Time})
		return nil
	}
	switch e.Status {
	case workload.StatusSucceeded, workload.StatusFailed, workload.StatusSkipped:
	default:
		return badInput("status")
	}
	if e.Attempt != n || n == 0 || s.Attempts[n-1].Status != StateRunning {
		return conflict("job %s step %s: attempt %d is not running", j.ID, e.Step, e.Attempt)
	}
	a := &s.Attempts[n-1]
	a.Status, a.FinishedAt, a.ExitCode = e.Status, e.Time, e.ExitCode
	if j.allDone() {
		t.finish(j, workload.StatusSucceeded, e)
	}
	return nil
}

// finish ends a job and releases its workspaces, the effect the contract
// gives a terminal state.
func (t *txn) finish(j *Job, status string, e *workload.Event) {
	j.State, j.FinishedAt = status, e.Time
	for _, id := range j.Workspaces {
		if w := t.workspace(id); w != nil && w.State == StateAllocated {
			w.State, w.ReleasedAt = StateReleased, e.Time
		}
	}
}

func (t *txn) allocate(j *Job, e *workload.Event) error {
	if e.WorkspaceID == "" {
		return badInput("workspace_id")
	}
	if terminal(j.State) {
		return conflict("job %s already %s", j.ID, j.State)
	}
	if t.workspace(e.WorkspaceID) != nil {
		return conflict("workspace %s exists", e.WorkspaceID)
	}
	t.s.Workspaces[e.WorkspaceID] = &Workspace{ID: e.WorkspaceID, JobID: j.ID, Path: e.Path,
		State: StateAllocated, AllocatedAt: e.Time}
	j.Workspaces = append(j.Workspaces, e.WorkspaceID)
	return nil
}

func (t *txn) release(e *workload.Event) error {
	if e.WorkspaceID == "" {
		return badInput("workspace_id")
	}
	w := t.workspace(e.WorkspaceID)
	if w == nil {
		return conflict("unknown workspace %s", e.WorkspaceID)
	}
	if w.State != StateAllocated {
		return conflict("workspace %s already released", w.ID)
	}
	w.State, w.ReleasedAt = StateReleased, e.Time
	return nil
}
