package harness

import (
	"fmt"
	"time"

	"github.com/pstate/pstate/bench/baseline"
	"github.com/pstate/pstate/internal/workload"
)

// LoadSet is the state every system is loaded with before a scenario: the
// end state of jobs 0..n-1, computed once and handed to each system's bulk
// loader. Loading is not measured; what follows it is.
type LoadSet struct {
	Jobs       []*baseline.Job // live jobs, in job_id order
	Workspaces [][]baseline.Workspace
	Records    uint64 // events and effects the history took
	Events     int    // events of the history, effects not counted
	Time       time.Time
}

// buildLoadSet folds the history of jobs 0..n-1, every event at time t.
func buildLoadSet(g *workload.Generator, n int, t time.Time) (*LoadSet, error) {
	ls := &LoadSet{Time: t}
	var evs []workload.Event
	for i := range n {
		evs = g.AppendJob(evs[:0], i)
		j, ws, recs, err := fold(evs, t)
		if err != nil {
			return nil, fmt.Errorf("fold job %d: %w", i, err)
		}
		ls.Records += uint64(recs)
		ls.Events += len(evs)
		if j != nil {
			ls.Jobs = append(ls.Jobs, j)
			ls.Workspaces = append(ls.Workspaces, ws)
		}
	}
	return ls, nil
}

// fold applies one job's events, in order, to nothing and returns what is
// left: the job (nil once purged), its workspaces and the number of log
// records the history takes (its events plus the success effect). It
// relies on the generator's sequences being valid and checks only what it
// needs to stay in bounds.
func fold(evs []workload.Event, t time.Time) (*baseline.Job, []baseline.Workspace, int, error) {
	var j *baseline.Job
	var ws []baseline.Workspace
	recs := 0
	for i := range evs {
		e := &evs[i]
		recs++
		if e.Type == workload.JobSubmitted {
			j = &baseline.Job{ID: e.JobID, Name: e.Name, Labels: e.Labels,
				State: baseline.StateQueued, Steps: make([]baseline.Step, len(e.Steps)),
				SubmittedAt: t}
			for k, s := range e.Steps {
				j.Steps[k].Name = s
			}
			continue
		}
		if j == nil {
			return nil, nil, 0, fmt.Errorf("event %d before job.submitted", i)
		}
		switch e.Type {
		case workload.JobStarted:
			j.State, j.Worker = baseline.StateRunning, e.Worker
		case workload.StepStarted:
			s := stepOf(j, e.Step)
			if s == nil {
				return nil, nil, 0, fmt.Errorf("event %d: unknown step %q", i, e.Step)
			}
			s.Attempts = append(s.Attempts, baseline.Attempt{Attempt: e.Attempt,
				Status: baseline.StateRunning, StartedAt: t})
		case workload.StepFinished:
			s := stepOf(j, e.Step)
			if s == nil || len(s.Attempts) == 0 {
				return nil, nil, 0, fmt.Errorf("event %d: step %q not started", i, e.Step)
			}
			a := &s.Attempts[len(s.Attempts)-1]
			a.Status, a.FinishedAt, a.ExitCode = e.Status, t, e.ExitCode
			if e.Status != workload.StatusFailed && allDone(j) {
				j.State, j.FinishedAt = workload.StatusSucceeded, t
				recs++ // the success effect is a record of its own
			}
		case workload.JobFinished:
			j.State, j.FinishedAt, j.Reason = e.Status, t, e.Reason
		case workload.WorkspaceAllocated:
			ws = append(ws, baseline.Workspace{ID: e.WorkspaceID, JobID: j.ID, Path: e.Path,
				State: baseline.StateAllocated, AllocatedAt: t})
			j.Workspaces = append(j.Workspaces, e.WorkspaceID)
		case workload.WorkspaceReleased:
			for k := range ws {
				if ws[k].ID == e.WorkspaceID {
					ws[k].State, ws[k].ReleasedAt = baseline.StateReleased, t
				}
			}
		case workload.JobPurged:
			return nil, nil, recs, nil
		}
	}
	return j, ws, recs, nil
}

func stepOf(j *baseline.Job, name string) *baseline.Step {
	for k := range j.Steps {
		if j.Steps[k].Name == name {
			return &j.Steps[k]
		}
	}
	return nil
}

func allDone(j *baseline.Job) bool {
	for _, s := range j.Steps {
		n := len(s.Attempts)
		if n == 0 {
			return false
		}
		if st := s.Attempts[n-1].Status; st != workload.StatusSucceeded && st != workload.StatusSkipped {
			return false
		}
	}
	return true
}
