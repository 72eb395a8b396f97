package workload

import "time"

// Event types, as in the contract.
const (
	JobSubmitted       = "job.submitted"
	JobStarted         = "job.started"
	StepStarted        = "step.started"
	StepFinished       = "step.finished"
	JobFinished        = "job.finished"
	WorkspaceAllocated = "workspace.allocated"
	WorkspaceReleased  = "workspace.released"
	JobPurged          = "job.purged"
)

// Statuses of a step attempt and of a finished job, as in the contract.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
	StatusCanceled  = "canceled"
)

// Event is one event, with the contract's JSON field names. Marshaled with
// encoding/json it is a valid body for POST /v1/events. Fields that do not
// belong to an event's type are left zero and omitted.
type Event struct {
	Type        string            `json:"type"`
	ID          string            `json:"id,omitempty"`
	Time        time.Time         `json:"time,omitzero"`
	JobID       string            `json:"job_id,omitempty"`
	Name        string            `json:"name,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Steps       []string          `json:"steps,omitempty"`
	Worker      string            `json:"worker,omitempty"`
	Step        string            `json:"step,omitempty"`
	Attempt     int               `json:"attempt,omitempty"`
	Status      string            `json:"status,omitempty"`
	ExitCode    int               `json:"exit_code,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	WorkspaceID string            `json:"workspace_id,omitempty"`
	Path        string            `json:"path,omitempty"`
}
