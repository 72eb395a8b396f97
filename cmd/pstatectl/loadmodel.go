package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// modelConfig shapes the jobs the load generator simulates.
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

// jobPhase is where a simulated job stands: what its next event is.
type jobPhase uint8

const (
	phSubmit     jobPhase = iota // next: job.submitted
	phStart                      // next: job.started
	phAllocate                   // next: workspace.allocated (wsPlan left)
	phStepStart                  // next: release before the last step, cancel, or step.started
	phStepFinish                 // next: step.finished
	phFinish                     // next: job.finished (failed or canceled)
	phPurge                      // next: job.purged
	phDone                       // no more events
)

// simJob is one job the generator drives through its lifecycle. Its events
// are produced in an order the daemon accepts: every event fits the state
// the previous ones (and the daemon's effects) left.
type simJob struct {
	id       string
	steps    []string
	phase    jobPhase
	step     int      // index of the current step
	attempt  int      // attempt of the current step
	wsPlan   int      // workspaces still to allocate
	held     []string // workspaces allocated and not released
	cancelAt int      // step index before which the job is canceled, -1 never
	finish   string   // terminal status to send in phFinish
	reason   string
	purge    bool // purge once finished

	// waiting is set when the next event depends on an effect the daemon
	// writes after an event not yet answered (a job finished by its last
	// step): the next event waits for that answer.
	waiting bool
}

// generator makes the jobs and events of one client. It is not safe for
// concurrent use; each client has its own.
type generator struct {
	cfg    modelConfig
	rng    *rand.Rand
	prefix string // run id and client, making every id unique
	jobs   int
	events int
	ws     int
}

func newGenerator(cfg modelConfig, seed uint64, runID string, client int) *generator {
	return &generator{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(seed, uint64(client)+1)),
		prefix: runID + "-c" + strconv.Itoa(client),
	}
}

var (
	jobNames = []string{"nightly-build", "integration-tests", "train-model", "deploy",
		"etl-import", "backup", "lint", "release"}
	stepNames = []string{"checkout", "setup", "build", "unit-test", "integration-test",
		"package", "scan", "publish", "deploy", "verify", "cleanup"}
	teams    = []string{"infra", "ml", "web", "data", "mobile", "platform"}
	priority = []string{"low", "normal", "normal", "normal", "high", "urgent"}
)

// newJob plans a job: its steps, workspaces, whether it is canceled and
// whether it is purged once finished.
func (g *generator) newJob() *simJob {
	g.jobs++
	j := &simJob{id: g.prefix + "-j" + strconv.Itoa(g.jobs), cancelAt: -1}
	n := g.cfg.MinSteps
	if g.cfg.MaxSteps > n {
		n += g.rng.IntN(g.cfg.MaxSteps - n + 1)
	}
	j.steps = make([]string, n)
	for i := range j.steps {
		j.steps[i] = stepName(i)
	}
	if g.rng.Float64() < g.cfg.WorkspaceRate {
		j.wsPlan = 1 + g.rng.IntN(2)
	}
	if g.rng.Float64() < g.cfg.CancelRate {
		j.cancelAt = g.rng.IntN(n)
	}
	j.purge = g.rng.Float64() < g.cfg.PurgeRate
	return j
}

// stepName names the i-th step of a job; names repeat with a suffix past
// the end of the list, so they stay unique within the job.
func stepName(i int) string {
	name := stepNames[i%len(stepNames)]
	if r := i / len(stepNames); r > 0 {
		name += "-" + strconv.Itoa(r+1)
	}
	return name
}

// nextID returns a fresh event id.
func (g *generator) nextID() string {
	g.events++
	return g.prefix + "-e" + strconv.Itoa(g.events)
}

// next returns the job's next event and advances the job. It must not be
// called on a job that is waiting or done.
func (g *generator) next(j *simJob) loadEvent {
	if j.waiting || j.phase == phDone {
		panic(fmt.Sprintf("load: next on job %s (phase %d, waiting %v)", j.id, j.phase, j.waiting))
	}
	e := loadEvent{ID: g.nextID(), JobID: j.id}
	switch j.phase {
	case phSubmit:
		g.submitted(j, &e)
	case phStart:
		e.Type, e.Worker = evJobStarted, "worker-"+strconv.Itoa(g.rng.IntN(200))
		j.phase = phAllocate
		if j.wsPlan == 0 {
			j.phase = phStepStart
		}
	case phAllocate:
		g.ws++
		id := g.prefix + "-w" + strconv.Itoa(g.ws)
		e.Type, e.WorkspaceID, e.Path = evWSAllocated, id, "/var/lib/pstate/ws/"+id
		j.held = append(j.held, id)
		if j.wsPlan--; j.wsPlan == 0 {
			j.phase = phStepStart
		}
	case phStepStart:
		g.stepStart(j, &e)
	case phStepFinish:
		g.stepFinished(j, &e)
	case phFinish:
		e.Type, e.Status, e.Reason = evJobFinished, j.finish, j.reason
		g.terminal(j)
	case phPurge:
		e.Type = evJobPurged
		j.phase = phDone
	}
	return e
}

// submitted fills the job.submitted event.
func (g *generator) submitted(j *simJob, e *loadEvent) {
	e.Type = evJobSubmitted
	e.Name = jobNames[g.rng.IntN(len(jobNames))]
	e.Labels = [][2]string{
		{"team", teams[g.rng.IntN(len(teams))]},
		{"priority", priority[g.rng.IntN(len(priority))]},
	}
	if g.rng.IntN(4) == 0 {
		e.Labels = append(e.Labels, [2]string{"env", "staging"})
	}
	e.Steps = j.steps
	j.phase = phStart
}

// stepStart fills the event before a step: the release of a held
// workspace before the last step, the cancel of the job, or step.started.
func (g *generator) stepStart(j *simJob, e *loadEvent) {
	if j.step == len(j.steps)-1 && j.attempt == 0 && len(j.held) > 0 {
		// Before the last step some workspaces are released by the client;
		// the others are released by the daemon when the job ends.
		id := j.held[len(j.held)-1]
		j.held = j.held[:len(j.held)-1]
		if g.rng.Float64() < g.cfg.ReleaseRate {
			e.Type, e.JobID, e.WorkspaceID = evWSReleased, "", id
			return
		}
	}
	if j.step == j.cancelAt && j.attempt == 0 {
		e.Type, e.Status, e.Reason = evJobFinished, statusCanceled, "canceled by user"
		g.terminal(j)
		return
	}
	j.attempt++
	e.Type, e.Step, e.Attempt = evStepStarted, j.steps[j.step], j.attempt
	j.phase = phStepFinish
}

// stepFinished fills step.finished and decides what follows: a retry, the
// next step, the failure of the job, or its end (the daemon finishes a job
// whose steps all succeeded or were skipped).
func (g *generator) stepFinished(j *simJob, e *loadEvent) {
	e.Type, e.Step, e.Attempt = evStepFinished, j.steps[j.step], j.attempt
	r := g.rng.Float64()
	switch {
	case r < g.cfg.FailRate:
		e.Status, e.ExitCode = statusFailed, 1+g.rng.IntN(125)
		if j.attempt < g.cfg.MaxAttempts && g.rng.Float64() < g.cfg.RetryRate {
			j.phase = phStepStart
			return
		}
		j.phase, j.finish = phFinish, statusFailed
		j.reason = "step " + e.Step + " failed after " + strconv.Itoa(j.attempt) + " attempts"
		return
	case r < g.cfg.FailRate+g.cfg.SkipRate:
		e.Status = statusSkipped
	default:
		e.Status = statusSucceeded
	}
	j.step++
	j.attempt = 0
	j.phase = phStepStart
	if j.step == len(j.steps) {
		// The daemon writes job.finished (and the releases) itself.
		g.terminal(j)
	}
}

// terminal moves a job that reached its terminal state on to its purge or
// its end. The purge waits for the answer to the terminal event, so that it
// never depends on how the daemon orders its effects within a batch.
func (g *generator) terminal(j *simJob) {
	j.held = nil
	j.phase = phDone
	if j.purge {
		j.phase = phPurge
		j.waiting = true
	}
}
