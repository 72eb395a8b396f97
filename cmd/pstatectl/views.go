package main

import "encoding/json"

// The answers of the read API as the client decodes them (the wire format is
// the contract; fields the client does not print are left out).

// statusView is GET /v1/status.
type statusView struct {
	Seq            uint64            `json:"seq"`
	DurableSeq     uint64            `json:"durable_seq"`
	Jobs           map[string]uint64 `json:"jobs"`
	Workspaces     map[string]uint64 `json:"workspaces"`
	WALBytes       int64             `json:"wal_bytes"`
	LastCheckpoint *checkpointView   `json:"last_checkpoint"`
	Sync           string            `json:"sync"`
	Version        string            `json:"version"`
}

// checkpointView is the answer of POST /v1/checkpoint and the
// last_checkpoint of the status.
type checkpointView struct {
	Seq        uint64  `json:"seq"`
	Time       string  `json:"time"`
	Bytes      int64   `json:"bytes"`
	DurationMS float64 `json:"duration_ms"`
	Skipped    bool    `json:"skipped"` // POST /v1/checkpoint: nothing new, file kept
}

// jobView is one job.
type jobView struct {
	JobID       string            `json:"job_id"`
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	State       string            `json:"state"`
	Steps       []stepView        `json:"steps"`
	Workspaces  []string          `json:"workspaces"`
	SubmittedAt string            `json:"submitted_at"`
	FinishedAt  string            `json:"finished_at"`
}

// stepView is one declared step of a job with its attempts.
type stepView struct {
	Name     string        `json:"name"`
	Attempts []attemptView `json:"attempts"`
}

// attemptView is one attempt of a step.
type attemptView struct {
	Attempt    int    `json:"attempt"`
	Status     string `json:"status"`
	StartedAt  string `json:"started_at"`
	FinishedAt string `json:"finished_at"`
	ExitCode   int    `json:"exit_code"`
}

// done reports whether the step's last attempt succeeded or was skipped.
func (s *stepView) done() bool {
	if len(s.Attempts) == 0 {
		return false
	}
	st := s.Attempts[len(s.Attempts)-1].Status
	return st == "succeeded" || st == "skipped"
}

// workspaceView is one workspace.
type workspaceView struct {
	WorkspaceID string `json:"workspace_id"`
	JobID       string `json:"job_id"`
	Path        string `json:"path"`
	State       string `json:"state"`
	AllocatedAt string `json:"allocated_at"`
	ReleasedAt  string `json:"released_at"`
}

// page is one page of a list: the items stay raw so that --json can print
// them as the server sent them.
type page struct {
	Seq        uint64            `json:"seq"`
	Jobs       []json.RawMessage `json:"jobs,omitempty"`
	Workspaces []json.RawMessage `json:"workspaces,omitempty"`
	Next       string            `json:"next"`
}
