package workload

import (
	"encoding/json"
	"hash/fnv"
	"reflect"
	"strings"
	"testing"
)

func gen(t *testing.T, cfg Config) *Generator {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestJobDeterministic(t *testing.T) {
	g1 := gen(t, Config{Seed: 7})
	g2 := gen(t, Config{Seed: 7})
	g3 := gen(t, Config{Seed: 8})
	differ := false
	for n := range 200 {
		a, b := g1.Job(n), g2.Job(n)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("job %d differs between two generators with one seed", n)
		}
		if !reflect.DeepEqual(a, g3.Job(n)) {
			differ = true
		}
	}
	if !differ {
		t.Fatal("seeds 7 and 8 gave the same 200 jobs")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{MinSteps: -1},
		{MinSteps: 10, MaxSteps: 5},
		{MaxAttempts: -2},
		{FailRate: 0.7, SkipRate: 0.5},
		{PurgeRate: 2},
	}
	for _, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted a bad config", c)
		}
	}
	g := gen(t, Config{MinSteps: 20, MaxSteps: 20, FailRate: -1, SkipRate: -1, CancelRate: -1})
	for n := range 50 {
		evs := g.Job(n)
		if len(evs[0].Steps) != 20 {
			t.Fatalf("job %d declares %d steps, want 20", n, len(evs[0].Steps))
		}
		for _, e := range evs {
			if e.Type == StepFinished && e.Status != StatusSucceeded {
				t.Fatalf("job %d: status %q with failures and skips disabled", n, e.Status)
			}
			if e.Type == JobFinished {
				t.Fatalf("job %d sent job.finished with cancels and failures disabled", n)
			}
		}
	}
}

// jobModel is the contract's state machine for one job, enough to check
// that a generated sequence is acceptable in order.
type jobModel struct {
	steps    map[string][]string // step -> statuses of its attempts ("" running)
	declared []string
	state    string
	open     map[string]bool
}

func (m *jobModel) allDone() bool {
	for _, s := range m.declared {
		a := m.steps[s]
		if len(a) == 0 {
			return false
		}
		if last := a[len(a)-1]; last != StatusSucceeded && last != StatusSkipped {
			return false
		}
	}
	return true
}

func checkJob(t *testing.T, evs []Event) (final string) {
	t.Helper()
	return checkJobLeaving(t, evs, false)
}

// checkJobLeaving checks one job's sequence; storeReleases allows
// workspaces left open when the job ends (the store releases them).
func checkJobLeaving(t *testing.T, evs []Event, storeReleases bool) (final string) {
	t.Helper()
	m := &jobModel{steps: map[string][]string{}, open: map[string]bool{}}
	fail := func(i int, msg string) {
		t.Fatalf("event %d (%s %s): %s", i, evs[i].Type, evs[i].ID, msg)
	}
	for i, e := range evs {
		if e.ID == "" || e.Type != WorkspaceReleased && e.JobID == "" {
			fail(i, "missing id or job_id")
		}
		switch e.Type {
		case JobSubmitted:
			if i != 0 || len(e.Steps) == 0 {
				fail(i, "submit not first or no steps")
			}
			m.declared, m.state = e.Steps, "queued"
		case JobStarted:
			if m.state != "queued" {
				fail(i, "start of a job in state "+m.state)
			}
			m.state = "running"
		case StepStarted:
			a := m.steps[e.Step]
			if m.state != "running" || e.Attempt != len(a)+1 || len(a) > 0 && a[len(a)-1] == "" {
				fail(i, "step start out of order")
			}
			m.steps[e.Step] = append(a, "")
		case StepFinished:
			a := m.steps[e.Step]
			if m.state != "running" || len(a) != e.Attempt || a[len(a)-1] != "" {
				fail(i, "step finish out of order")
			}
			a[len(a)-1] = e.Status
			if m.allDone() {
				if len(m.open) > 0 && !storeReleases {
					fail(i, "job succeeds with workspaces still open")
				}
				m.state = StatusSucceeded
				clear(m.open)
			}
		case JobFinished:
			if m.state != "running" || e.Status == StatusSucceeded || len(m.open) > 0 && !storeReleases {
				fail(i, "bad job.finished")
			}
			m.state = e.Status
			clear(m.open)
		case WorkspaceAllocated:
			if m.state != "running" || m.open[e.WorkspaceID] {
				fail(i, "bad allocation")
			}
			m.open[e.WorkspaceID] = true
		case WorkspaceReleased:
			if !m.open[e.WorkspaceID] {
				fail(i, "release of a workspace not open")
			}
			delete(m.open, e.WorkspaceID)
		case JobPurged:
			if i != len(evs)-1 || m.state == "running" {
				fail(i, "purge not last or of a running job")
			}
			m.state = "purged"
		default:
			fail(i, "unknown type")
		}
	}
	return m.state
}

func TestJobsFollowTheContract(t *testing.T) {
	g := gen(t, Config{Seed: 42, FailRate: 0.2, CancelRate: 0.1, PurgeRate: 0.3})
	ids := map[string]bool{}
	finals := map[string]int{}
	for n := range 2000 {
		evs := g.Job(n)
		finals[checkJob(t, evs)]++
		for _, e := range evs {
			if ids[e.ID] {
				t.Fatalf("event id %s repeats", e.ID)
			}
			ids[e.ID] = true
		}
	}
	for _, s := range []string{StatusSucceeded, StatusFailed, StatusCanceled, "purged"} {
		if finals[s] == 0 {
			t.Errorf("no job ended %s in 2000: %v", s, finals)
		}
	}
	if finals["running"]+finals["queued"] > 0 {
		t.Errorf("jobs left unfinished: %v", finals)
	}
}

func TestStreamKeepsEachJobsOrder(t *testing.T) {
	g := gen(t, Config{Seed: 3})
	s := g.Stream(100, 300, 16)
	per := map[string][]Event{}
	var order []string
	for e, ok := s.Next(); ok; e, ok = s.Next() {
		id := e.JobID
		if id == "" { // workspace.released names only the workspace
			id = e.WorkspaceID[:strings.LastIndex(e.WorkspaceID, "-")]
		}
		per[id] = append(per[id], e)
		order = append(order, e.ID)
	}
	if len(per) != 300 {
		t.Fatalf("stream yielded %d jobs, want 300", len(per))
	}
	for n := 100; n < 400; n++ {
		if !reflect.DeepEqual(per[g.JobID(n)], g.Job(n)) {
			t.Fatalf("job %d: stream order differs from Job", n)
		}
	}
	s2 := g.Stream(100, 300, 16)
	for i := range order {
		e, _ := s2.Next()
		if e.ID != order[i] {
			t.Fatalf("second stream differs at %d", i)
		}
	}
}

func TestEventJSON(t *testing.T) {
	g := gen(t, Config{Seed: 1})
	b, err := json.Marshal(g.Job(0)[0])
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"type":"job.submitted"`, `"job_id":"job-00000000"`, `"steps":[`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON %s lacks %s", s, want)
		}
	}
	if strings.Contains(s, `"time"`) || strings.Contains(s, `"attempt"`) {
		t.Errorf("JSON %s has fields of other event types", s)
	}
}

func TestPartialRates(t *testing.T) {
	g := gen(t, Config{Seed: 9, FailRate: 0.3, RetryRate: 0.5, WorkspaceRate: 0.5, ReleaseRate: 0.5})
	var noWs, leftOpen, failedEarly int
	for n := range 2000 {
		evs := g.Job(n)
		checkJobLeaving(t, evs, true)
		allocs, releases := 0, 0
		for _, e := range evs {
			switch e.Type {
			case WorkspaceAllocated:
				allocs++
			case WorkspaceReleased:
				releases++
			case JobFinished:
				if e.Status == StatusFailed && !strings.Contains(e.Reason, "after 3 attempts") {
					failedEarly++
				}
			}
		}
		if allocs == 0 {
			noWs++
		}
		if releases < allocs {
			leftOpen++
		}
	}
	if noWs == 0 || leftOpen == 0 || failedEarly == 0 {
		t.Fatalf("jobs without workspaces %d, with some left open %d, failed before the last "+
			"attempt %d", noWs, leftOpen, failedEarly)
	}
}

// pinnedDefaultHash is the FNV-1a hash of the JSON of jobs 0..199 of the
// default configuration with 20 steps and seed 1.
const pinnedDefaultHash = 0x50e95c272ec52700

// TestDefaultRatesKeepSequences pins the events of the default
// configuration, so that new knobs do not change existing workloads.
func TestDefaultRatesKeepSequences(t *testing.T) {
	g := gen(t, Config{Seed: 1, MinSteps: 20, MaxSteps: 20})
	h := fnv.New64a()
	for n := range 200 {
		for _, e := range g.Job(n) {
			b, _ := json.Marshal(e)
			h.Write(b)
		}
	}
	if got := h.Sum64(); got != pinnedDefaultHash {
		t.Fatalf("events of the default configuration changed: hash %#x", got)
	}
}
