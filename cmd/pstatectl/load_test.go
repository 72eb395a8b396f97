package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
)

// engineSender delivers requests to a real pstate engine over a real log,
// decoding each body as the daemon does, so the test checks the wire
// encoding and the validity of every event (with the engine's effects).
type engineSender struct {
	eng   *pstate.Engine
	calls atomic.Int64
}

func newEngineSender(t *testing.T) *engineSender {
	t.Helper()
	l, err := wal.Open(t.TempDir(), wal.Options{Sync: wal.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	eng := pstate.Start(pstate.NewState(), l, pstate.Options{})
	t.Cleanup(func() {
		eng.Close()
		l.Close()
	})
	return &engineSender{eng: eng}
}

func (s *engineSender) send(ctx context.Context, body []byte, n int) ([]result, error) {
	s.calls.Add(1)
	evs, err := pstate.DecodeEvents(body)
	if err != nil {
		return nil, &APIError{Status: 400, Code: "bad_request", Message: err.Error(), Index: -1}
	}
	if len(evs) != n {
		return nil, errors.New("body holds a different number of events")
	}
	res, err := s.eng.Submit(ctx, evs)
	if err != nil {
		var ce *pstate.ConflictError
		if errors.As(err, &ce) {
			return nil, &APIError{Status: 409, Code: "conflict", Message: err.Error(), Index: -1}
		}
		return nil, err
	}
	out := make([]result, len(res))
	for i, r := range res {
		out[i] = result{Seq: r.Seq, Duplicate: r.Duplicate}
	}
	return out, nil
}

func testLoadConfig(jobs, concurrency, batch int) *loadConfig {
	return &loadConfig{jobs: jobs, concurrency: concurrency, batch: batch, seed: 7,
		runID: "T", model: defaultModel}
}

// TestLoadEventsAreValid drives every job of the load to its end through
// the engine: any event that does not fit the state would be a 409.
func TestLoadEventsAreValid(t *testing.T) {
	for _, batch := range []int{1, 7, 100, 1000} {
		t.Run("batch"+strconv.Itoa(batch), func(t *testing.T) {
			snd := newEngineSender(t)
			cfg := testLoadConfig(120, 4, batch)
			cfg.model.FailRate, cfg.model.CancelRate = 0.2, 0.1 // exercise the rare paths
			rep, err := runLoadClients(context.Background(), cfg, shared(snd), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.err(); err != nil {
				t.Fatal(err)
			}
			if rep.jobs != 120 || rep.active != 0 || rep.dropped != 0 {
				t.Fatalf("jobs %d active %d dropped %d", rep.jobs, rep.active, rep.dropped)
			}
			c := snd.eng.Root().Counts()
			if c.Jobs.Queued != 0 || c.Jobs.Running != 0 || c.Workspaces.Allocated != 0 {
				t.Fatalf("jobs left unfinished: %+v", c)
			}
			if c.Jobs.Succeeded == 0 || c.Jobs.Failed == 0 || c.Jobs.Canceled == 0 {
				t.Fatalf("a terminal state never happened: %+v", c)
			}
			if batch > 1 && rep.requests >= rep.events {
				t.Fatalf("%d requests for %d events: batches not used", rep.requests, rep.events)
			}
		})
	}
}

// TestLoadRecordFile checks the --record file: one line per answered
// event, with its id, seq, type and ids, every id once.
func TestLoadRecordFile(t *testing.T) {
	snd := newEngineSender(t)
	cfg := testLoadConfig(40, 3, 50)
	cfg.record = filepath.Join(t.TempDir(), "rec.ndjson")
	rep, err := runLoadClients(context.Background(), cfg, shared(snd), io.Discard)
	if err != nil || rep.err() != nil {
		t.Fatal(err, rep.err())
	}

	f, err := os.Open(cfg.record)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]bool{}
	seqs := map[uint64]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			ID          string `json:"id"`
			Seq         uint64 `json:"seq"`
			Type        string `json:"type"`
			JobID       string `json:"job_id"`
			WorkspaceID string `json:"workspace_id"`
		}
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if r.ID == "" || r.Seq == 0 || r.Type == "" || ids[r.ID] || seqs[r.Seq] {
			t.Fatalf("bad or repeated record %q", sc.Text())
		}
		if strings.HasPrefix(r.Type, "workspace.") != (r.WorkspaceID != "") {
			t.Fatalf("workspace_id wrong in %q", sc.Text())
		}
		if r.Type != evWSReleased && r.JobID == "" {
			t.Fatalf("job_id missing in %q", sc.Text())
		}
		ids[r.ID], seqs[r.Seq] = true, true

		// The recorded seq holds the recorded event.
		if got, ok := snd.eng.Root().Applied(r.ID); !ok || got != r.Seq {
			t.Fatalf("id %s: state has seq %d (%v), record says %d", r.ID, got, ok, r.Seq)
		}
	}
	if uint64(len(ids)) != rep.events {
		t.Fatalf("%d records, %d events answered", len(ids), rep.events)
	}
}

// failingSender refuses every third request with a 409.
type failingSender struct {
	inner *engineSender
	n     atomic.Int64
}

func (f *failingSender) send(ctx context.Context, body []byte, n int) ([]result, error) {
	if f.n.Add(1)%3 == 0 {
		return nil, &APIError{Status: 409, Code: "conflict", Message: "made up", Index: 0}
	}
	return f.inner.send(ctx, body, n)
}

func TestLoadReportsFailures(t *testing.T) {
	snd := &failingSender{inner: newEngineSender(t)}
	cfg := testLoadConfig(30, 2, 20)
	rep, err := runLoadClients(context.Background(), cfg, shared(snd), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = rep.err()
	if err == nil || !strings.Contains(err.Error(), "409 conflict") ||
		!strings.Contains(err.Error(), "made up") {
		t.Fatalf("err %v", err)
	}
	if rep.failed == 0 || rep.dropped == 0 || rep.jobs+rep.dropped != 30 {
		t.Fatalf("failed %d dropped %d done %d", rep.failed, rep.dropped, rep.jobs)
	}
}

// stopSender cancels the run after a number of requests.
type stopSender struct {
	inner  sender
	cancel context.CancelFunc
	n      atomic.Int64
}

func (s *stopSender) send(ctx context.Context, body []byte, n int) ([]result, error) {
	if s.n.Add(1) == 20 {
		s.cancel()
	}
	return s.inner.send(ctx, body, n)
}

func TestLoadStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	snd := &stopSender{inner: newEngineSender(t), cancel: cancel}
	cfg := testLoadConfig(0, 4, 10)
	cfg.duration = 1 << 62 // only the cancel ends it
	rep, err := runLoadClients(ctx, cfg, shared(snd), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.interrupted || rep.requests == 0 || rep.failed != 0 {
		t.Fatalf("interrupted %v requests %d failed %d", rep.interrupted, rep.requests, rep.failed)
	}
}

// TestGeneratorLifecycle checks each job's own sequence: ids unique, steps
// started in order with consecutive attempts, a step finished only after it
// started, nothing after the end but a purge.
func TestGeneratorLifecycle(t *testing.T) {
	g := newGenerator(defaultModel, 3, "G", 0)
	ids := map[string]bool{}
	for range 300 {
		j := g.newJob()
		if n := len(j.steps); n < 5 || n > 50 {
			t.Fatalf("job has %d steps", n)
		}
		var evs []loadEvent
		for k := 0; j.phase != phDone; k++ {
			if k > 10000 {
				t.Fatal("job does not end")
			}
			j.waiting = false
			evs = append(evs, g.next(j))
		}
		checkJobEvents(t, j, evs)
		for _, e := range evs {
			if ids[e.ID] {
				t.Fatalf("id %s twice", e.ID)
			}
			ids[e.ID] = true
		}
	}
}

func checkJobEvents(t *testing.T, j *simJob, evs []loadEvent) {
	t.Helper()
	if evs[0].Type != evJobSubmitted || evs[1].Type != evJobStarted {
		t.Fatalf("job %s starts with %s, %s", j.id, evs[0].Type, evs[1].Type)
	}
	step, attempt, open, ended := 0, 0, false, false
	for _, e := range evs[2:] {
		switch {
		case ended && e.Type != evJobPurged:
			t.Fatalf("job %s: %s after the end", j.id, e.Type)
		case e.Type == evStepStarted:
			if open || e.Step != j.steps[step] || e.Attempt != attempt+1 {
				t.Fatalf("job %s: step.started %s/%d at step %d attempt %d", j.id, e.Step,
					e.Attempt, step, attempt)
			}
			open, attempt = true, e.Attempt
		case e.Type == evStepFinished:
			if !open || e.Step != j.steps[step] || e.Attempt != attempt {
				t.Fatalf("job %s: step.finished %s/%d unexpected", j.id, e.Step, e.Attempt)
			}
			open = false
			if e.Status != statusFailed {
				step, attempt = step+1, 0
				ended = step == len(j.steps)
			}
		case e.Type == evJobFinished:
			if open || e.Status == statusSucceeded {
				t.Fatalf("job %s: job.finished %s with a step open %v", j.id, e.Status, open)
			}
			ended = true
		}
	}
	if !ended {
		t.Fatalf("job %s never ended", j.id)
	}
}

// shared gives every client the same sender.
func shared(s sender) func() sender { return func() sender { return s } }
