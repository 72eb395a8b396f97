package pstate

import (
	"encoding/json"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// benchBody marshals events the way the load generator posts them: every
// event with an id and a time; a job is submitted with 20 steps and 2
// labels, started, given a workspace, runs each step once and releases the
// workspace. The body is a batch of n events, or with n = 1 the single
// event at index one.
func benchBody(b *testing.B, n, one int) []byte {
	b.Helper()
	at := time.Date(2026, 12, 4, 17, 30, 0, 123456789, time.UTC)
	var evs []Event
	add := func(e Event) {
		e.ID = fmt.Sprintf("load-7f3a9c-%08d", len(evs))
		e.Time = at.Add(time.Duration(len(evs)) * time.Millisecond)
		evs = append(evs, e)
	}
	for job := 0; len(evs) < max(n, one+1); job++ {
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
		body, err := json.Marshal(evs[one])
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
// decoder it replaced, on a batch of 100 mixed events and on one event:
// a job.submitted (20 steps, 2 labels) or a step.finished.
func BenchmarkDecodeEvents(b *testing.B) {
	decoders := []struct {
		name   string
		decode func([]byte) ([]Event, error)
	}{{"new", DecodeEvents}, {"old", oldDecodeEvents}}
	for _, body := range []struct {
		name   string
		n, one int
	}{{"batch100", 100, 0}, {"submitted", 1, 0}, {"step-finished", 1, 4}} {
		for _, d := range decoders {
			b.Run(body.name+"/"+d.name, func(b *testing.B) {
				benchDecode(b, benchBody(b, body.n, body.one), body.n, d.decode)
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
	cpu0 := processCPU(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := decode(body); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := processCPU(b) - cpu0
	runtime.ReadMemStats(&after)
	events := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	// CPU time, the garbage collector's included, reads true on a busy
	// machine where the wall clock does not.
	b.ReportMetric(float64(cpu.Nanoseconds())/events, "cpu-ns/event")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/events, "allocs/event")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/events, "B/event")
}

// processCPU is the process's user and system time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
