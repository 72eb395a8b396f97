package pstate

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func submit(job string, steps ...string) Event {
	return Event{Type: TypeJobSubmitted, JobID: job, Name: "n-" + job, Steps: steps,
		Labels: map[string]string{"team": "core"}}
}
func start(job string) Event { return Event{Type: TypeJobStarted, JobID: job, Worker: "w1"} }
func stepStart(job, step string, n int) Event {
	return Event{Type: TypeStepStarted, JobID: job, Step: step, Attempt: n}
}
func stepEnd(job, step string, n int, status string) Event {
	return Event{Type: TypeStepFinished, JobID: job, Step: step, Attempt: n, Status: status}
}
func jobEnd(job, status string) Event {
	return Event{Type: TypeJobFinished, JobID: job, Status: status}
}
func alloc(ws, job string) Event {
	return Event{Type: TypeWorkspaceAllocated, WorkspaceID: ws, JobID: job, Path: "/w/" + ws}
}
func release(ws string) Event { return Event{Type: TypeWorkspaceReleased, WorkspaceID: ws} }
func purge(job string) Event  { return Event{Type: TypeJobPurged, JobID: job} }

// run prepares events as one request (with effects) and returns the state
// and the records; it fails the test on refusal.
func run(t tb, s *State, events ...Event) (*State, [][]byte) {
	t.Helper()
	p, err := prepare(s, s.Seq(), events, t0, false)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	return p.state, p.payloads
}

func TestConflicts(t *testing.T) {
	base, _ := run(t, NewState(),
		submit("q", "a"), submit("r", "a", "b"), start("r"), stepStart("r", "a", 1),
		submit("done", "a"), jobEnd("done", StatusCanceled),
		alloc("wr", "r"), submit("o", "a"), alloc("wo", "o"), release("wo"))
	cases := []struct {
		name  string
		ev    Event
		names []string // what the message must name
	}{
		{"unknown job", start("nope"), []string{`job "nope"`, "unknown job"}},
		{"submitted twice", submit("q", "a"), []string{`job "q"`, "already submitted"}},
		{"started twice", start("r"), []string{`job "r"`, "not queued"}},
		{"start finished", start("done"), []string{`job "done"`, "canceled"}},
		{"step not declared", stepStart("r", "zz", 1), []string{`step "zz"`, "not declared"}},
		{"step before job started", stepStart("q", "a", 1), []string{`job "q"`, `step "a"`,
			"queued"}},
		{"attempt while running", stepStart("r", "a", 2), []string{`step "a"`, "running"}},
		{"attempt skipped", stepStart("r", "b", 2), []string{`step "b"`, "not the next"}},
		{"finish before start", stepEnd("r", "b", 1, StatusFailed), []string{`step "b"`,
			"before it started"}},
		{"attempt mismatch", stepEnd("r", "a", 2, StatusFailed), []string{`step "a"`,
			"attempt 2"}},
		{"step on finished job", stepStart("done", "a", 1), []string{`job "done"`, "canceled"}},
		{"second terminal status", jobEnd("done", StatusFailed), []string{`job "done"`,
			"already finished"}},
		{"succeed unstarted", jobEnd("q", StatusSucceeded), []string{`job "q"`, "never started"}},
		{"alloc twice", alloc("wr", "q"), []string{`workspace "wr"`, "already allocated"}},
		{"alloc unknown job", alloc("new", "nope"), []string{`workspace "new"`, `job "nope"`}},
		{"alloc finished job", alloc("new", "done"), []string{`workspace "new"`, `job "done"`}},
		{"release unknown", release("nope"), []string{`workspace "nope"`, "unknown"}},
		{"release twice", release("wo"), []string{`workspace "wo"`, "already released"}},
		{"purge running", purge("r"), []string{`job "r"`, "not finished"}},
		{"purge unknown", purge("nope"), []string{`job "nope"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(base, &c.ev)
			var ce *ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *ConflictError", err)
			}
			for _, n := range c.names {
				if !strings.Contains(err.Error(), n) {
					t.Fatalf("%q does not name %q", err, n)
				}
			}
			// Apply of a refused event moves only the seq.
			after := Apply(base, &c.ev, base.Seq()+1)
			if after.Seq() != base.Seq()+1 {
				t.Fatalf("seq %d after a refused event", after.Seq())
			}
			moved := *base
			moved.seq = after.Seq()
			assertSameState(t, after, &moved)
		})
	}
}

func TestEffects(t *testing.T) {
	s, recs := run(t, NewState(), submit("j", "a", "b"), start("j"), alloc("w1", "j"),
		alloc("w2", "j"), release("w2"),
		stepStart("j", "a", 1), stepEnd("j", "a", 1, StatusFailed),
		stepStart("j", "a", 2), stepEnd("j", "a", 2, StatusSucceeded),
		stepStart("j", "b", 1), stepEnd("j", "b", 1, StatusSkipped))
	if len(recs) != 13 {
		t.Fatalf("%d records, want 11 events and 2 effects", len(recs))
	}
	fin, _ := DecodeEvent(recs[11])
	rel, _ := DecodeEvent(recs[12])
	if fin.Type != TypeJobFinished || !fin.Effect || fin.Status != StatusSucceeded ||
		!fin.Time.Equal(t0) {
		t.Fatalf("effect 1 = %+v", fin)
	}
	if rel.Type != TypeWorkspaceReleased || !rel.Effect || rel.WorkspaceID != "w1" {
		t.Fatalf("effect 2 = %+v", rel)
	}
	j, _ := s.Job("j")
	if j.State != StateSucceeded || len(j.Steps[0].Attempts) != 2 || j.FinishedAt == nil {
		t.Fatalf("job = %+v", j)
	}
	w, _ := s.Workspace("w1")
	if w.State != StateReleased {
		t.Fatalf("workspace = %+v", w)
	}
	c := s.Counts()
	if c.Jobs.Succeeded != 1 || c.Workspaces.Released != 2 || c.Workspaces.Allocated != 0 {
		t.Fatalf("counts = %+v", c)
	}
	s, _ = run(t, s, purge("j"))
	if _, ok := s.Job("j"); ok || s.Counts().Workspaces.Released != 0 {
		t.Fatal("purge left the job or its workspaces")
	}
}

func TestDuplicatesAndAllOrNothing(t *testing.T) {
	a := submit("j", "a")
	a.ID = "e1"
	s, _ := run(t, NewState(), a)
	b := start("j")
	b.ID = "e2"
	p, err := prepare(s, s.Seq(), []Event{a, b, b}, t0, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{{1, true}, {2, false}, {2, true}}
	for i, r := range p.results {
		if r != want[i] {
			t.Fatalf("results = %v, want %v", p.results, want)
		}
	}
	_, err = prepare(s, s.Seq(), []Event{b, start("j")}, t0, false)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Index != 1 {
		t.Fatalf("err = %v, want a conflict at index 1", err)
	}
}

func TestJobsListing(t *testing.T) {
	var evs []Event
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		e := submit(id, "s")
		if id == "b" || id == "d" || id == "f" {
			e.Labels = map[string]string{"team": "x"}
		}
		evs = append(evs, e)
	}
	evs = append(evs, start("c"), start("d"), start("f"))
	s, _ := run(t, NewState(), evs...)
	ids := func(js []JobView) string {
		var out []string
		for _, j := range js {
			out = append(out, j.JobID)
		}
		return strings.Join(out, ",")
	}
	cases := []struct {
		q          JobQuery
		want, next string
	}{
		{JobQuery{}, "a,b,c,d,e,f", ""},
		{JobQuery{Limit: 2}, "a,b", "b"},
		{JobQuery{Limit: 2, After: "b"}, "c,d", "d"},
		{JobQuery{State: StateRunning}, "c,d,f", ""},
		{JobQuery{Label: "team:x"}, "b,d,f", ""},
		{JobQuery{Label: "team:x", State: StateRunning}, "d,f", ""},
		{JobQuery{Label: "team:x", State: StateRunning, Limit: 1}, "d", "d"},
		{JobQuery{Label: "team:x", State: StateRunning, After: "d"}, "f", ""},
		{JobQuery{Label: "team:none"}, "", ""},
		{JobQuery{State: "bogus"}, "", ""},
	}
	for _, c := range cases {
		got, next := s.Jobs(c.q)
		if ids(got) != c.want || next != c.next {
			t.Errorf("%+v: got %q next %q, want %q next %q", c.q, ids(got), next, c.want, c.next)
		}
	}
}

func TestWorkspacesListing(t *testing.T) {
	s, _ := run(t, NewState(), submit("j", "a"), submit("k", "a"), alloc("w3", "j"),
		alloc("w1", "j"), alloc("w2", "k"), release("w1"))
	ids := func(ws []WorkspaceView) string {
		var out []string
		for _, w := range ws {
			out = append(out, w.WorkspaceID)
		}
		return strings.Join(out, ",")
	}
	cases := []struct {
		q          WorkspaceQuery
		want, next string
	}{
		{WorkspaceQuery{}, "w1,w2,w3", ""},
		{WorkspaceQuery{Limit: 1, After: "w1"}, "w2", "w2"},
		{WorkspaceQuery{State: StateAllocated}, "w2,w3", ""},
		{WorkspaceQuery{JobID: "j"}, "w1,w3", ""},
		{WorkspaceQuery{JobID: "j", State: StateAllocated}, "w3", ""},
		{WorkspaceQuery{JobID: "j", Limit: 1}, "w1", "w1"},
	}
	for _, c := range cases {
		got, next := s.Workspaces(c.q)
		if ids(got) != c.want || next != c.next {
			t.Errorf("%+v: got %q next %q, want %q next %q", c.q, ids(got), next, c.want, c.next)
		}
	}
	// A released workspace id may be allocated again, to another job.
	s, _ = run(t, s, alloc("w1", "k"))
	j, _ := s.Job("j")
	k, _ := s.Job("k")
	if strings.Join(j.Workspaces, ",") != "w3" || strings.Join(k.Workspaces, ",") != "w2,w1" {
		t.Fatalf("j lists %v, k lists %v", j.Workspaces, k.Workspaces)
	}
}
