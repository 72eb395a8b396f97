package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/pstate/pstate/internal/workload"
)

// modelConfig shapes the jobs the load generator simulates; it maps onto
// internal/workload's model (workloadConfig), which the benchmarks share.
type modelConfig struct {
	MinSteps, MaxSteps int     // steps per job, uniform in [MinSteps, MaxSteps]
	FailRate           float64 // chance that an attempt fails
	RetryRate          float64 // chance that a failed attempt is retried
	MaxAttempts        int     // attempts of a step at most
	SkipRate           float64 // chance that a step is skipped
	CancelRate         float64 // chance that a job is canceled midway
	PurgeRate          float64 // chance that a finished job is purged
	WorkspaceRate      float64 // chance that a job allocates workspaces
	ReleaseRate        float64 // chance that a workspace is released before the job ends
}

// defaultModel is the model of `pstatectl load` before its flags.
var defaultModel = modelConfig{
	MinSteps:      5,
	MaxSteps:      50,
	FailRate:      0.05,
	RetryRate:     0.9,
	MaxAttempts:   3,
	SkipRate:      0.02,
	CancelRate:    0.02,
	PurgeRate:     0.3,
	WorkspaceRate: 0.6,
	ReleaseRate:   0.5,
}

// workloadConfig is the model as internal/workload takes it: there a zero
// rate means its default, so a rate of 0 here becomes "never" (-1).
func workloadConfig(m modelConfig, seed uint64, prefix string) workload.Config {
	r := func(v float64) float64 {
		if v == 0 {
			return -1
		}
		return v
	}
	return workload.Config{
		Seed: seed, Prefix: prefix, MinSteps: m.MinSteps, MaxSteps: m.MaxSteps,
		MaxAttempts: m.MaxAttempts, FailRate: r(m.FailRate),
		SkipRate:   r(min(m.SkipRate, 1-m.FailRate)), // the two share one draw
		CancelRate: r(m.CancelRate), PurgeRate: r(m.PurgeRate), RetryRate: r(m.RetryRate),
		WorkspaceRate: r(m.WorkspaceRate), ReleaseRate: r(m.ReleaseRate),
	}
}

// jobPhase is whether a simulated job has events left.
type jobPhase uint8

const (
	phRun  jobPhase = iota // events left to send
	phDone                 // no more events
)

// simJob is one job the generator drives through its lifecycle: the
// sequence internal/workload made for it, sent in order. Every event fits
// the state the previous ones (and the daemon's effects) left.
type simJob struct {
	id    string
	steps []string
	phase jobPhase
	evs   []workload.Event
	pos   int // next event to send

	// waiting is set when the next event depends on an effect the daemon
	// writes after an event not yet answered (a purge after the event that
	// ended the job): the next event waits for that answer.
	waiting bool
}

// generator makes the jobs and events of one client. It is not safe for
// concurrent use; each client has its own.
type generator struct {
	model *workload.Generator
	rng   *rand.Rand
	jobs  int
}

func newGenerator(cfg modelConfig, seed uint64, runID string, client int) *generator {
	prefix := runID + "-c" + strconv.Itoa(client)
	model, err := workload.New(workloadConfig(cfg, seed^uint64(client)<<32, prefix))
	if err != nil {
		panic(fmt.Sprintf("load: model %+v: %v", cfg, err)) // flags are checked before
	}
	return &generator{model: model, rng: rand.New(rand.NewPCG(seed, uint64(client)+1))}
}

// newJob plans the next job of this client.
func (g *generator) newJob() *simJob {
	evs := g.model.Job(g.jobs)
	g.jobs++
	return &simJob{id: evs[0].JobID, steps: evs[0].Steps, evs: evs}
}

// next returns the job's next event and advances the job. It must not be
// called on a job that is waiting or done.
func (g *generator) next(j *simJob) loadEvent {
	if j.waiting || j.phase == phDone {
		panic(fmt.Sprintf("load: next on job %s (phase %d, waiting %v)", j.id, j.phase, j.waiting))
	}
	w := &j.evs[j.pos]
	e := loadEvent{Type: w.Type, ID: w.ID, JobID: w.JobID, Name: w.Name, Steps: w.Steps,
		Worker: w.Worker, Step: w.Step, Attempt: w.Attempt, Status: w.Status,
		ExitCode: w.ExitCode, Reason: w.Reason, WorkspaceID: w.WorkspaceID, Path: w.Path}
	for _, k := range slices.Sorted(maps.Keys(w.Labels)) {
		e.Labels = append(e.Labels, [2]string{k, w.Labels[k]})
	}
	j.pos++
	switch {
	case j.pos == len(j.evs):
		j.phase = phDone
	case j.evs[j.pos].Type == workload.JobPurged:
		// The purge waits for the answer to the event that ended the job,
		// so that it never depends on how the daemon orders its effects.
		j.waiting = true
	}
	return e
}
