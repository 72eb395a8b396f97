package main

import (
	"strconv"
	"unicode/utf8"
)

// Event types of the contract.
const (
	evJobSubmitted  = "job.submitted"
	evJobStarted    = "job.started"
	evStepStarted   = "step.started"
	evStepFinished  = "step.finished"
	evJobFinished   = "job.finished"
	evWSAllocated   = "workspace.allocated"
	evWSReleased    = "workspace.released"
	evJobPurged     = "job.purged"
	statusSucceeded = "succeeded"
	statusFailed    = "failed"
	statusSkipped   = "skipped"
	statusCanceled  = "canceled"
)

// loadEvent is an event as the load generator sends it. Its JSON encoding
// (appendJSON) is the wire format of the contract; it is written by hand
// because encoding/json would cost the generator a good part of a core at
// the rates it is meant to reach.
type loadEvent struct {
	Type        string
	ID          string
	JobID       string
	Name        string
	Labels      [][2]string // key, value; keys unique
	Steps       []string
	Worker      string
	Step        string
	Attempt     int
	Status      string
	ExitCode    int
	Reason      string
	WorkspaceID string
	Path        string
}

// appendJSON appends the event as one JSON object. Fields that the event's
// type does not use are left out.
func (e *loadEvent) appendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, e.Type)
	b = appendField(b, "id", e.ID)
	b = appendField(b, "job_id", e.JobID)
	b = appendField(b, "name", e.Name)
	if e.Type == evJobSubmitted {
		b = append(b, `,"labels":{`...)
		for i, kv := range e.Labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, kv[0])
			b = append(b, ':')
			b = appendString(b, kv[1])
		}
		b = append(b, `},"steps":[`...)
		for i, s := range e.Steps {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	}
	b = appendField(b, "worker", e.Worker)
	b = appendField(b, "step", e.Step)
	if e.Attempt > 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(e.Attempt), 10)
	}
	b = appendField(b, "status", e.Status)
	if e.Type == evStepFinished {
		b = append(b, `,"exit_code":`...)
		b = strconv.AppendInt(b, int64(e.ExitCode), 10)
	}
	b = appendField(b, "reason", e.Reason)
	b = appendField(b, "workspace_id", e.WorkspaceID)
	b = appendField(b, "path", e.Path)
	return append(b, '}')
}

// appendField appends ,"name":"value" unless value is empty.
func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does. Runs of plain bytes are copied whole.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c >= utf8.RuneSelf {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
