package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

// recorder appends one NDJSON line per answered event to the --record file:
//
//	{"id":"...","seq":N,"type":"...","job_id":"...","workspace_id":"..."}
//
// (job_id and workspace_id only when the event has them). Each answered
// request is one write, so the file holds whole requests even if the load
// generator is killed.
type recorder struct {
	mu   sync.Mutex // guards f, err and buf
	f    *os.File
	err  error
	buf  []byte
	path string
}

func openRecorder(path string) (*recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open record file: %w", err)
	}
	return &recorder{f: f, path: path}, nil
}

// write records the events of one answered request. After a failed write
// the recorder stops writing and Close reports the error.
func (r *recorder) write(evs []loadEvent, res []result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	r.buf = r.buf[:0]
	for i := range evs {
		r.buf = appendRecord(r.buf, &evs[i], res[i].Seq)
	}
	if _, err := r.f.Write(r.buf); err != nil {
		r.err = fmt.Errorf("write record file %s: %w", r.path, err)
	}
}

// appendRecord appends the record line of one event.
func appendRecord(b []byte, e *loadEvent, seq uint64) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = appendField(b, "job_id", e.JobID)
	b = appendField(b, "workspace_id", e.WorkspaceID)
	return append(b, '}', '\n')
}

// Close syncs and closes the file and returns the first error.
func (r *recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.err
	if serr := r.f.Sync(); serr != nil && err == nil {
		err = fmt.Errorf("sync record file %s: %w", r.path, serr)
	}
	if cerr := r.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close record file %s: %w", r.path, cerr)
	}
	return err
}
