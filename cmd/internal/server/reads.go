package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pstate/pstate/pstate"
)

// listParams reads ?limit= and ?after=; on false it has answered 400.
func listParams(w http.ResponseWriter, r *http.Request) (limit int, after string, ok bool) {
	q := r.URL.Query()
	limit = DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, CodeBadRequest,
				fmt.Sprintf("limit=%q: want 1 to %d", v, MaxLimit))
			return 0, "", false
		}
		limit = n
	}
	return limit, q.Get("after"), true
}

func (s *Server) getJobs(w http.ResponseWriter, r *http.Request, rt *runtime) {
	limit, after, ok := listParams(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && !pstate.ValidJobState(state) {
		writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf(
			"state=%q: want one of %s", state, strings.Join(jobStates, ", ")))
		return
	}
	label := q.Get("label")
	if label != "" {
		if k, _, found := strings.Cut(label, ":"); !found || k == "" {
			writeError(w, http.StatusBadRequest, CodeBadRequest,
				fmt.Sprintf("label=%q: want key:value", label))
			return
		}
	}
	root, ok := s.read(w, r, rt)
	if !ok {
		return
	}
	jobs, next := root.Jobs(pstate.JobQuery{State: state, Label: label, After: after,
		Limit: limit})
	if jobs == nil {
		jobs = []pstate.JobView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"seq": root.Seq(), "jobs": jobs, "next": next})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, rt *runtime) {
	id := r.PathValue("id")
	root, ok := s.read(w, r, rt)
	if !ok {
		return
	}
	job, found := root.Job(id)
	if !found {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("job %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"seq": root.Seq(), "job": job})
}

func (s *Server) getWorkspaces(w http.ResponseWriter, r *http.Request, rt *runtime) {
	limit, after, ok := listParams(w, r)
	if !ok {
		return
	}
	state := r.URL.Query().Get("state")
	if state != "" && !pstate.ValidWorkspaceState(state) {
		writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf(
			"state=%q: want one of %s", state, strings.Join(workspaceStates, ", ")))
		return
	}
	root, ok := s.read(w, r, rt)
	if !ok {
		return
	}
	list, next := root.Workspaces(pstate.WorkspaceQuery{State: state, After: after,
		Limit: limit})
	if list == nil {
		list = []pstate.WorkspaceView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"seq": root.Seq(), "workspaces": list,
		"next": next})
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request, rt *runtime) {
	id := r.PathValue("id")
	root, ok := s.read(w, r, rt)
	if !ok {
		return
	}
	ws, found := root.Workspace(id)
	if !found {
		writeError(w, http.StatusNotFound, CodeNotFound,
			fmt.Sprintf("workspace %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"seq": root.Seq(), "workspace": ws})
}

// statusBody is the answer of GET /v1/status.
type statusBody struct {
	Seq            uint64                 `json:"seq"`
	DurableSeq     uint64                 `json:"durable_seq"`
	Jobs           pstate.JobCounts       `json:"jobs"`
	Workspaces     pstate.WorkspaceCounts `json:"workspaces"`
	WALBytes       int64                  `json:"wal_bytes"`
	WALFirstSeq    uint64                 `json:"wal_first_seq"`
	LastCheckpoint *lastCheckpoint        `json:"last_checkpoint"`
	Sync           string                 `json:"sync"`
	Version        string                 `json:"version"`
	ReadOnly       string                 `json:"read_only,omitempty"` // the reason
}

type lastCheckpoint struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	Bytes      int64     `json:"bytes"`
	DurationMS float64   `json:"duration_ms"`
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request, rt *runtime) {
	root, ok := s.read(w, r, rt)
	if !ok {
		return
	}
	c := root.Counts()
	b := statusBody{
		Seq:         root.Seq(),
		DurableSeq:  rt.wal.DurableSeq(),
		Jobs:        c.Jobs,
		Workspaces:  c.Workspaces,
		WALBytes:    rt.wal.Size(),
		WALFirstSeq: rt.wal.FirstSeq(),
		Sync:        s.cfg.Sync.String(),
		Version:     s.cfg.Version,
		ReadOnly:    s.readOnlyReason(),
	}
	if res, ok := rt.ckpt.Last(); ok {
		b.LastCheckpoint = &lastCheckpoint{Seq: res.Seq, Time: res.Time.UTC(), Bytes: res.Bytes,
			DurationMS: ms(res.Duration)}
	} else if rt.snapshot.Path != "" {
		// No checkpoint since the start: the snapshot recovery used.
		b.LastCheckpoint = &lastCheckpoint{Seq: rt.snapshot.Seq, Time: rt.snapTime.UTC(),
			Bytes: rt.snapshot.Bytes}
	}
	writeJSON(w, http.StatusOK, b)
}

// The scrape-time gauges (see metrics.go).

func (s *Server) walBytes() float64 {
	if rt := s.rt.Load(); rt != nil {
		return float64(rt.wal.Size())
	}
	return 0
}

func (s *Server) stateSeq() float64 {
	if rt := s.rt.Load(); rt != nil {
		return float64(rt.engine.Root().Seq())
	}
	return 0
}

func (s *Server) durableSeq() float64 {
	if rt := s.rt.Load(); rt != nil {
		return float64(rt.wal.DurableSeq())
	}
	return 0
}

func (s *Server) readOnly() float64 {
	if s.readOnlyReason() != "" {
		return 1
	}
	return 0
}

func (s *Server) ready() float64 {
	if s.Ready() {
		return 1
	}
	return 0
}

func (s *Server) counts() (jobs, workspaces map[string]uint64) {
	jobs, workspaces = map[string]uint64{}, map[string]uint64{}
	rt := s.rt.Load()
	if rt == nil {
		return jobs, workspaces
	}
	c := rt.engine.Root().Counts()
	jobs["queued"], jobs["running"] = c.Jobs.Queued, c.Jobs.Running
	jobs["succeeded"], jobs["failed"] = c.Jobs.Succeeded, c.Jobs.Failed
	jobs["canceled"] = c.Jobs.Canceled
	workspaces["allocated"], workspaces["released"] = c.Workspaces.Allocated, c.Workspaces.Released
	return jobs, workspaces
}
