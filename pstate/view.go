package pstate

import (
	"slices"
	"time"

	"github.com/benbjohnson/immutable"
)

// JobView is a job as the API reads it.
type JobView struct {
	JobID       string            `json:"job_id"`
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	State       string            `json:"state"`
	Worker      string            `json:"worker,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	Steps       []StepView        `json:"steps"`
	Workspaces  []string          `json:"workspaces"`
	SubmittedAt time.Time         `json:"submitted_at"`
	StartedAt   *time.Time        `json:"started_at,omitempty"`
	FinishedAt  *time.Time        `json:"finished_at"`
}

// StepView is one declared step and its attempts, oldest first.
type StepView struct {
	Name     string        `json:"name"`
	Attempts []AttemptView `json:"attempts"`
}

// AttemptView is one attempt of a step. Status is "running" until it
// finishes; FinishedAt and ExitCode are null until then.
type AttemptView struct {
	Attempt    int        `json:"attempt"`
	Status     string     `json:"status"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	ExitCode   *int       `json:"exit_code"`
}

// WorkspaceView is a workspace as the API reads it.
type WorkspaceView struct {
	WorkspaceID string     `json:"workspace_id"`
	JobID       string     `json:"job_id"`
	Path        string     `json:"path"`
	State       string     `json:"state"`
	AllocatedAt time.Time  `json:"allocated_at"`
	ReleasedAt  *time.Time `json:"released_at"`
}

// JobQuery selects a page of jobs in job_id order. State and Label ("k:v")
// filter when set; After is the cursor (the last job_id of the previous
// page); Limit defaults to DefaultLimit and is capped at MaxLimit.
type JobQuery struct {
	State, Label, After string
	Limit               int
}

// WorkspaceQuery selects a page of workspaces in workspace_id order, by state
// and/or job.
type WorkspaceQuery struct {
	State, JobID, After string
	Limit               int
}

// Page sizes of listings.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

func ts(n int64) time.Time { return time.Unix(0, n).UTC() }

// tsp returns the time n when set is true, else nil (null in JSON). The
// caller decides from the state, not from n: 0 is a valid time (1970).
func tsp(n int64, set bool) *time.Time {
	if !set {
		return nil
	}
	t := ts(n)
	return &t
}

// Job returns the job with id.
func (s *State) Job(id string) (JobView, bool) {
	j, ok := s.jobs.Get(id)
	if !ok {
		return JobView{}, false
	}
	return j.view(), true
}

func (j *job) view() JobView {
	v := JobView{
		JobID: j.id, Name: j.name, State: jobStateNames[j.state], Worker: j.worker,
		Reason: j.reason, Labels: make(map[string]string, len(j.labels)),
		Steps:       make([]StepView, len(j.steps)),
		Workspaces:  append([]string{}, j.workspaces...),
		SubmittedAt: ts(j.submitted), StartedAt: tsp(j.started, j.worker != ""),
		FinishedAt: tsp(j.finished, j.state.terminal()),
	}
	for _, l := range j.labels {
		v.Labels[l.key] = l.value
	}
	// One backing array each for the attempts, their finish times and exit
	// codes: a view costs a handful of allocations, not a few per attempt.
	off := make([]int, len(j.steps)+1)
	done := 0
	for _, a := range j.attempts {
		off[a.step+1]++
		if a.status != asRunning {
			done++
		}
	}
	for i := 1; i < len(off); i++ {
		off[i] += off[i-1]
	}
	all := make([]AttemptView, len(j.attempts))
	times, codes := make([]time.Time, 0, done), make([]int, 0, done)
	for i, name := range j.steps {
		v.Steps[i] = StepView{Name: name, Attempts: all[off[i]:off[i]:off[i+1]]}
	}
	for _, a := range j.attempts {
		av := AttemptView{Attempt: int(a.num), Status: StatusRunning, StartedAt: ts(a.started)}
		if a.status != asRunning {
			times, codes = append(times, ts(a.finished)), append(codes, int(a.exit))
			av.Status = statusCodes[a.status]
			av.FinishedAt, av.ExitCode = &times[len(times)-1], &codes[len(codes)-1]
		}
		v.Steps[a.step].Attempts = append(v.Steps[a.step].Attempts, av)
	}
	return v
}

// Jobs returns a page of jobs and the cursor of the next page ("" when this
// is the last). With both filters it walks the two sorted id sets together,
// seeking each to the other's key, so it never scans jobs that match only
// one. An unknown state or label matches nothing.
func (s *State) Jobs(q JobQuery) (jobs []JobView, next string) {
	limit := clampLimit(q.Limit)
	var sets []*idSet
	if q.State != "" {
		st, ok := parseJobState(q.State)
		if !ok {
			return []JobView{}, ""
		}
		sets = append(sets, s.byState[st])
	}
	if q.Label != "" {
		m, ok := s.byLabel.Get(q.Label)
		if !ok {
			return []JobView{}, ""
		}
		sets = append(sets, m)
	}
	if len(sets) == 0 {
		sets = append(sets, s.jobIDs)
	}
	ids := intersect(sets, q.After, limit+1)
	jobs = make([]JobView, 0, min(len(ids), limit))
	for i, id := range ids {
		if i == limit {
			return jobs, jobs[limit-1].JobID
		}
		j, _ := s.jobs.Get(id)
		jobs = append(jobs, j.view())
	}
	return jobs, ""
}

// intersect returns up to max keys held by every set, in order, above the
// key after. Leapfrog: each set seeks to the current target; a set whose
// next key is larger makes that key the target, until all sets agree.
func intersect(sets []*idSet, after string, max int) []string {
	its := make([]*immutable.SortedMapIterator[string, struct{}], len(sets))
	for i, m := range sets {
		its[i] = m.Iterator()
	}
	target := ""
	if after != "" {
		target = after + "\x00" // the smallest string above after
	}
	var out []string
	if len(its) == 1 {
		it := its[0]
		for it.Seek(target); !it.Done() && len(out) < max; {
			k, _, _ := it.Next()
			out = append(out, k)
		}
		return out
	}
	for len(out) < max {
		agreed := 0
		for i := 0; agreed < len(its); i = (i + 1) % len(its) {
			its[i].Seek(target)
			if its[i].Done() {
				return out
			}
			k, _, _ := its[i].Next()
			if k == target {
				agreed++
			} else {
				target, agreed = k, 1
			}
		}
		out = append(out, target)
		target += "\x00"
	}
	return out
}

// Workspace returns the workspace with id.
func (s *State) Workspace(id string) (WorkspaceView, bool) {
	w, ok := s.ws.Get(id)
	if !ok {
		return WorkspaceView{}, false
	}
	return w.view(), true
}

func (w *workspace) view() WorkspaceView {
	return WorkspaceView{
		WorkspaceID: w.id, JobID: w.jobID, Path: w.path, State: w.stateName(),
		AllocatedAt: ts(w.allocated), ReleasedAt: tsp(w.released, w.isReleased),
	}
}

// Workspaces returns a page of workspaces and the next page's cursor.
func (s *State) Workspaces(q WorkspaceQuery) ([]WorkspaceView, string) {
	limit := clampLimit(q.Limit)
	out := []WorkspaceView{}
	if q.State != "" && !ValidWorkspaceState(q.State) {
		return out, ""
	}
	var ids []string
	if q.JobID != "" {
		j, ok := s.jobs.Get(q.JobID)
		if !ok {
			return out, ""
		}
		ids = slices.Sorted(slices.Values(j.workspaces))
	}
	keep := func(w *workspace) bool {
		return (q.State == "" || w.stateName() == q.State) && (q.JobID == "" || w.jobID == q.JobID)
	}
	add := func(id string) bool { // false once the page is full
		w, _ := s.ws.Get(id)
		if !keep(w) {
			return true
		}
		if len(out) == limit {
			return false
		}
		out = append(out, w.view())
		return true
	}
	if q.JobID == "" && q.State != "" {
		return s.workspacesByState(q, limit)
	}
	if q.JobID != "" {
		for _, id := range ids {
			if id > q.After && !add(id) {
				return out, out[limit-1].WorkspaceID
			}
		}
		return out, ""
	}
	it := s.ws.Iterator()
	it.Seek(q.After)
	for !it.Done() {
		id, _, _ := it.Next()
		if id > q.After && !add(id) {
			return out, out[limit-1].WorkspaceID
		}
	}
	return out, ""
}

func (s *State) workspacesByState(q WorkspaceQuery, limit int) ([]WorkspaceView, string) {
	out := []WorkspaceView{}
	set := s.wsByState[0]
	if q.State == StateReleased {
		set = s.wsByState[1]
	}
	it := set.Iterator()
	it.Seek(q.After)
	for !it.Done() {
		id, _, _ := it.Next()
		if id <= q.After {
			continue
		}
		if len(out) == limit {
			return out, out[limit-1].WorkspaceID
		}
		w, _ := s.ws.Get(id)
		out = append(out, w.view())
	}
	return out, ""
}
