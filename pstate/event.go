package pstate

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Event types, as they appear in the "type" field.
const (
	TypeJobSubmitted       = "job.submitted"
	TypeJobStarted         = "job.started"
	TypeStepStarted        = "step.started"
	TypeStepFinished       = "step.finished"
	TypeJobFinished        = "job.finished"
	TypeWorkspaceAllocated = "workspace.allocated"
	TypeWorkspaceReleased  = "workspace.released"
	TypeJobPurged          = "job.purged"
)

// Statuses carried by step.finished and job.finished, and the states a job
// or a workspace reads as.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
	StatusCanceled  = "canceled"
	StatusRunning   = "running" // an attempt that has not finished

	StateQueued    = "queued"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateCanceled  = "canceled"

	StateAllocated = "allocated"
	StateReleased  = "released"
)

// Limits checked by every decoder and by Validate. They keep one encoded
// event well under 128 KiB, far below the log's record limit.
const (
	MaxIDBytes       = 128  // event id, job_id, workspace_id, step names
	MaxNameBytes     = 256  // job name, worker
	MaxReasonBytes   = 1024 // job.finished reason
	MaxPathBytes     = 4096 // workspace path
	MaxLabels        = 64   // labels per job
	MaxLabelKey      = 128  // bytes; non-empty, no ':' (the "k:v" filter)
	MaxLabelValue    = 256  // bytes
	MaxSteps         = 256  // declared steps per job
	MaxAttempt       = 1000 // attempts of one step
	MaxJobWorkspaces = 4096 // workspaces one job may list
	MaxBatchEvents   = 1000 // events in one {"events": [...]} body
	minExitCode      = -1 << 31
	maxExitCode      = 1<<31 - 1
	maxEventPayload  = 128 << 10
)

// Event is one change to the state, as posted to the API and written to the
// log. Which fields an event carries depends on its Type (see the contract);
// the others stay zero.
type Event struct {
	Type        string            `json:"type"`
	ID          string            `json:"id,omitempty"`
	Time        time.Time         `json:"time"`
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

	// Effect marks an event the engine derived from another one (a job
	// finishing when its last step succeeds, workspaces released when a job
	// ends, purges). It is kept in the log so replay applies effects instead
	// of computing them again. The API never accepts it.
	Effect bool `json:"effect,omitempty"`
}

// InputError is a malformed event: a 400. Index is the event's position in
// its batch (0 for a single event), Field the JSON name of the offending
// field ("" when the event as a whole is wrong).
type InputError struct {
	Index   int
	Field   string
	Message string
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("event %d: %s", e.Index, e.Message)
	}
	return fmt.Sprintf("event %d: field %s: %s", e.Index, e.Field, e.Message)
}

// ConflictError is an event that does not fit the state: a 409. It names the
// job, step or workspace concerned (whichever apply) and the event's index
// in its batch.
type ConflictError struct {
	Index       int
	JobID       string
	Step        string
	WorkspaceID string
	Message     string
}

func (e *ConflictError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "event %d: ", e.Index)
	if e.WorkspaceID != "" {
		fmt.Fprintf(&b, "workspace %q: ", e.WorkspaceID)
	}
	if e.JobID != "" {
		fmt.Fprintf(&b, "job %q: ", e.JobID)
	}
	if e.Step != "" {
		fmt.Fprintf(&b, "step %q: ", e.Step)
	}
	b.WriteString(e.Message)
	return b.String()
}

// setIndex stamps the batch index on an *InputError or *ConflictError.
func setIndex(err error, i int) error {
	var ie *InputError
	if errors.As(err, &ie) {
		ie.Index = i
	}
	var ce *ConflictError
	if errors.As(err, &ce) {
		ce.Index = i
	}
	return err
}

// eventType numbers the types; the number is the type byte of the log
// encoding, so it never changes.
type eventType uint8

const (
	evJobSubmitted eventType = iota + 1
	evJobStarted
	evStepStarted
	evStepFinished
	evJobFinished
	evWorkspaceAllocated
	evWorkspaceReleased
	evJobPurged
	evMax
)

var typeNames = [evMax]string{
	"", TypeJobSubmitted, TypeJobStarted, TypeStepStarted, TypeStepFinished,
	TypeJobFinished, TypeWorkspaceAllocated, TypeWorkspaceReleased, TypeJobPurged,
}

func parseType(s string) (eventType, bool) {
	for t := evJobSubmitted; t < evMax; t++ {
		if typeNames[t] == s {
			return t, true
		}
	}
	return 0, false
}

// Field bits: which fields each type requires and allows. They double as
// the field tags of the log encoding (tag = bit index), so they never change.
const (
	fID uint32 = 1 << iota
	fTime
	fJobID
	fName
	fLabels
	fSteps
	fWorker
	fStep
	fAttempt
	fStatus
	fExitCode
	fReason
	fWorkspaceID
	fPath
	fieldCount = iota
)

var fieldNames = [fieldCount]string{
	"id", "time", "job_id", "name", "labels", "steps", "worker", "step",
	"attempt", "status", "exit_code", "reason", "workspace_id", "path",
}

// fieldBit maps a JSON name to its bit; 0 when unknown.
func fieldBit(name string) uint32 {
	for i, n := range fieldNames {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

// typeFields lists, per type, the required and the optional fields (id and
// time are optional everywhere).
var typeFields = [evMax]struct{ required, optional uint32 }{
	evJobSubmitted:       {fJobID | fName | fSteps, fLabels},
	evJobStarted:         {fJobID | fWorker, 0},
	evStepStarted:        {fJobID | fStep | fAttempt, 0},
	evStepFinished:       {fJobID | fStep | fAttempt | fStatus, fExitCode},
	evJobFinished:        {fJobID | fStatus, fReason},
	evWorkspaceAllocated: {fWorkspaceID | fJobID | fPath, 0},
	evWorkspaceReleased:  {fWorkspaceID, 0},
	evJobPurged:          {fJobID, 0},
}

func allowed(t eventType) uint32 {
	return typeFields[t].required | typeFields[t].optional | fID | fTime
}

// presentFields reports which fields of e hold a non-zero value.
func presentFields(e *Event) uint32 {
	var m uint32
	set := func(b uint32, ok bool) {
		if ok {
			m |= b
		}
	}
	set(fID, e.ID != "")
	set(fTime, !e.Time.IsZero())
	set(fJobID, e.JobID != "")
	set(fName, e.Name != "")
	set(fLabels, len(e.Labels) > 0)
	set(fSteps, len(e.Steps) > 0)
	set(fWorker, e.Worker != "")
	set(fStep, e.Step != "")
	set(fAttempt, e.Attempt != 0)
	set(fStatus, e.Status != "")
	set(fExitCode, e.ExitCode != 0)
	set(fReason, e.Reason != "")
	set(fWorkspaceID, e.WorkspaceID != "")
	set(fPath, e.Path != "")
	return m
}

// checkEvent checks an event's shape: known type, the fields its type
// requires, none it does not allow, and every value within its limits. It
// does not look at the state. The error is an *InputError with Index 0.
func checkEvent(e *Event) error {
	t, ok := parseType(e.Type)
	if !ok {
		if e.Type == "" {
			return &InputError{Field: "type", Message: "missing"}
		}
		return &InputError{Field: "type", Message: fmt.Sprintf("unknown type %q", e.Type)}
	}
	have := presentFields(e)
	if extra := have &^ allowed(t); extra != 0 {
		return &InputError{Field: firstField(extra), Message: "not allowed for " + e.Type}
	}
	if missing := typeFields[t].required &^ have; missing != 0 {
		return &InputError{Field: firstField(missing), Message: "missing"}
	}
	return checkValues(e)
}

func firstField(mask uint32) string {
	for i := range fieldCount {
		if mask&(1<<i) != 0 {
			return fieldNames[i]
		}
	}
	return ""
}

// checkValues checks the limits of every present field.
func checkValues(e *Event) error {
	strs := []struct {
		field, v string
		max      int
		ident    bool
	}{
		{"id", e.ID, MaxIDBytes, true}, {"job_id", e.JobID, MaxIDBytes, true},
		{"name", e.Name, MaxNameBytes, false}, {"worker", e.Worker, MaxNameBytes, false},
		{"step", e.Step, MaxIDBytes, true}, {"reason", e.Reason, MaxReasonBytes, false},
		{"workspace_id", e.WorkspaceID, MaxIDBytes, true},
		{"path", e.Path, MaxPathBytes, false},
	}
	for _, s := range strs {
		if err := checkString(s.field, s.v, s.max, s.ident); err != nil {
			return err
		}
	}
	if !e.Time.IsZero() {
		if y := e.Time.Year(); y < 1678 || y > 2261 {
			return &InputError{Field: "time", Message: "out of range (years 1678 to 2261)"}
		}
	}
	if err := checkSteps(e.Steps); err != nil {
		return err
	}
	if err := checkLabels(e.Labels); err != nil {
		return err
	}
	if e.Attempt < 0 || e.Attempt > MaxAttempt {
		return &InputError{Field: "attempt", Message: fmt.Sprintf("must be 1 to %d", MaxAttempt)}
	}
	if e.ExitCode < minExitCode || e.ExitCode > maxExitCode {
		return &InputError{Field: "exit_code", Message: "out of the 32-bit range"}
	}
	return checkStatus(e)
}

func checkStatus(e *Event) error {
	if e.Status == "" {
		return nil
	}
	var ok bool
	switch e.Type {
	case TypeStepFinished:
		ok = e.Status == StatusSucceeded || e.Status == StatusFailed || e.Status == StatusSkipped
	case TypeJobFinished:
		ok = e.Status == StatusSucceeded || e.Status == StatusFailed || e.Status == StatusCanceled
	}
	if !ok {
		return &InputError{Field: "status", Message: fmt.Sprintf("%q is not a status of %s",
			e.Status, e.Type)}
	}
	return nil
}

func checkSteps(steps []string) error {
	if len(steps) > MaxSteps {
		return &InputError{Field: "steps", Message: fmt.Sprintf("more than %d steps", MaxSteps)}
	}
	for i, s := range steps {
		if s == "" {
			return &InputError{Field: "steps", Message: fmt.Sprintf("step %d: empty name", i)}
		}
		if err := checkString("steps", s, MaxIDBytes, true); err != nil {
			return err
		}
		for _, prev := range steps[:i] {
			if prev == s {
				return &InputError{Field: "steps", Message: fmt.Sprintf("step %q declared twice", s)}
			}
		}
	}
	return nil
}

func checkLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return &InputError{Field: "labels", Message: fmt.Sprintf("more than %d labels", MaxLabels)}
	}
	for k, v := range labels {
		if k == "" || strings.IndexByte(k, ':') >= 0 {
			return &InputError{Field: "labels", Message: fmt.Sprintf(
				"key %q: must be non-empty and hold no ':'", k)}
		}
		if err := checkString("labels", k, MaxLabelKey, true); err != nil {
			return err
		}
		if err := checkString("labels", v, MaxLabelValue, false); err != nil {
			return err
		}
	}
	return nil
}

// checkString accepts valid UTF-8 of at most max bytes. Identifiers (ids,
// step names, label keys) may not hold control characters; free text may
// hold any but NUL.
func checkString(field, s string, max int, ident bool) error {
	if len(s) > max {
		return &InputError{Field: field, Message: fmt.Sprintf("%d bytes, more than %d",
			len(s), max)}
	}
	// Plain ASCII, nearly every string, is checked a byte at a time.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return checkUnicode(field, s, ident)
		}
		if c == 0 || (ident && (c < 0x20 || c == 0x7f)) {
			return &InputError{Field: field, Message: "holds a control character"}
		}
	}
	return nil
}

// checkUnicode is checkString's check of a string that is not all ASCII.
func checkUnicode(field, s string, ident bool) error {
	if !utf8.ValidString(s) {
		return &InputError{Field: field, Message: "invalid UTF-8"}
	}
	for _, r := range s {
		if r == 0 || (ident && (r < 0x20 || r == 0x7f)) {
			return &InputError{Field: field, Message: "holds a control character"}
		}
	}
	return nil
}
