package pstate

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// benchBody marshals events the way the load generator posts them: every
// event with an id and a time; a job is submitted with 20 steps and 2
// labels, started, given a workspace, runs each step once and releases the
// workspace. The body is a batch of n events, or the single first event.
func benchBody(b *testing.B, n int) []byte {
	b.Helper()
	at := time.Date(2026, 12, 4, 17, 30, 0, 123456789, time.UTC)
	var evs []Event
	add := func(e Event) {
		e.ID = fmt.Sprintf("load-7f3a9c-%08d", len(evs))
		e.Time = at.Add(time.Duration(len(evs)) * time.Millisecond)
		evs = append(evs, e)
	}
	for job := 0; len(evs) < n; job++ {
		id := fmt.Sprintf("load-7f3a9c-%08d", job)
		steps := make([]string, 20)
		for i := range steps {
			steps[i] = fmt.Sprintf("%02d-compile", i)
		}
		add(Event{Type: TypeJobSubmitted, JobID: id, Name: "team-a-pipeline-42",
			Labels: map[string]string{"team": "team-a", "env": "staging"}, Steps: steps})
		add(Event{Type: TypeJobStarted, JobID: id, Worker: "worker-17"})
		add(Event{Type: TypeWorkspaceAllocated, JobID: id, WorkspaceID: id + "-ws",
			Path: "/var/lib/ci/workspaces/" + id + "-ws"})
		for _, s := range steps {
			add(Event{Type: TypeStepStarted, JobID: id, Step: s, Attempt: 1})
			add(Event{Type: TypeStepFinished, JobID: id, Step: s, Attempt: 1,
				Status: StatusSucceeded})
		}
		add(Event{Type: TypeWorkspaceReleased, WorkspaceID: id + "-ws"})
	}
	if n == 1 {
		body, err := json.Marshal(evs[0])
		if err != nil {
			b.Fatal(err)
		}
		return body
	}
	body, err := json.Marshal(struct {
		Events []Event `json:"events"`
	}{evs[:n]})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkDecodeEvents compares DecodeEvents with the encoding/json
// decoder it replaced, on a batch of 100 mixed events and on one event.
func BenchmarkDecodeEvents(b *testing.B) {
	decoders := []struct {
		name   string
		decode func([]byte) ([]Event, error)
	}{{"new", DecodeEvents}, {"old", oldDecodeEvents}}
	for _, size := range []struct {
		name string
		n    int
	}{{"batch100", 100}, {"single", 1}} {
		for _, d := range decoders {
			b.Run(size.name+"/"+d.name, func(b *testing.B) {
				benchDecode(b, benchBody(b, size.n), size.n, d.decode)
			})
		}
	}
}

func benchDecode(b *testing.B, body []byte, n int, decode func([]byte) ([]Event, error)) {
	if evs, err := decode(body); err != nil || len(evs) != n {
		b.Fatalf("%d events, %v", len(evs), err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		if _, err := decode(body); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	events := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/events, "allocs/event")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/events, "B/event")
}
