package baseline

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/pstate/pstate/internal/workload"
)

// Attempt is one try of a step.
type Attempt struct {
	Attempt    int
	Status     string // "running" until it finishes
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int
}

// Step is a declared step and its attempts.
type Step struct {
	Name     string
	Attempts []Attempt
}

// Job is one job.
type Job struct {
	ID          string
	Name        string
	Labels      map[string]string
	State       string
	Worker      string
	Reason      string
	Steps       []Step
	Workspaces  []string
	SubmittedAt time.Time
	FinishedAt  time.Time
}

// Workspace is one workspace.
type Workspace struct {
	ID          string
	JobID       string
	Path        string
	State       string
	AllocatedAt time.Time
	ReleasedAt  time.Time
}

// Job and workspace states.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateAllocated = "allocated"
	StateReleased  = "released"
)

// ErrConflict is wrapped by every refusal of an event that does not fit the
// state; ErrInput by every malformed event.
var (
	ErrConflict = errors.New("baseline: conflict")
	ErrInput    = errors.New("baseline: bad input")
)

// state is the whole state; the engine guards it with its state lock.
type state struct {
	Seq        uint64
	Jobs       map[string]*Job
	Workspaces map[string]*Workspace
	IDs        map[string]uint64 // applied event id -> its seq
}

func newState() *state {
	return &state{
		Jobs:       map[string]*Job{},
		Workspaces: map[string]*Workspace{},
		IDs:        map[string]uint64{},
	}
}

func (j *Job) clone() *Job {
	c := *j
	c.Labels = maps.Clone(j.Labels)
	c.Workspaces = slices.Clone(j.Workspaces)
	c.Steps = make([]Step, len(j.Steps))
	for i, s := range j.Steps {
		c.Steps[i] = Step{Name: s.Name, Attempts: slices.Clone(s.Attempts)}
	}
	return &c
}

// clone is the deep copy a checkpoint takes under both locks.
func (s *state) clone() *state {
	c := &state{
		Seq:        s.Seq,
		Jobs:       make(map[string]*Job, len(s.Jobs)),
		Workspaces: make(map[string]*Workspace, len(s.Workspaces)),
		IDs:        maps.Clone(s.IDs),
	}
	for id, j := range s.Jobs {
		c.Jobs[id] = j.clone()
	}
	for id, w := range s.Workspaces {
		ws := *w
		c.Workspaces[id] = &ws
	}
	return c
}

func terminal(state string) bool {
	switch state {
	case workload.StatusSucceeded, workload.StatusFailed, workload.StatusCanceled:
		return true
	}
	return false
}

func (j *Job) step(name string) *Step {
	for i := range j.Steps {
		if j.Steps[i].Name == name {
			return &j.Steps[i]
		}
	}
	return nil
}

func (j *Job) allDone() bool {
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

func conflict(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}

func badInput(field string) error {
	return fmt.Errorf("%w: field %s", ErrInput, field)
}
