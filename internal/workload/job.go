package workload

import (
	"math/rand/v2"
	"strconv"
)

// jobBuilder appends the events of one job; rng is seeded by the job's
// number alone, so the sequence does not depend on who asks or when.
type jobBuilder struct {
	cfg   *Config
	rng   *rand.Rand
	id    string
	evs   []Event
	open  []string // workspaces allocated and not yet released
	count int      // events appended so far, for ids
}

func (b *jobBuilder) add(e Event) {
	e.ID = b.id + "-e" + strconv.Itoa(b.count)
	if e.Type != WorkspaceReleased {
		e.JobID = b.id
	}
	b.count++
	b.evs = append(b.evs, e)
}

func (b *jobBuilder) allocate(suffix string) {
	ws := b.id + "-" + suffix
	b.add(Event{Type: WorkspaceAllocated, WorkspaceID: ws, Path: "/var/lib/pstate-ws/" + ws})
	b.open = append(b.open, ws)
}

// releaseAll releases the open workspaces before the event that ends the
// job; with a ReleaseRate below 1 some are left to the store, which
// releases them when the job ends.
func (b *jobBuilder) releaseAll() {
	for _, ws := range b.open {
		if b.cfg.ReleaseRate >= 1 || b.rng.Float64() < b.cfg.ReleaseRate {
			b.add(Event{Type: WorkspaceReleased, WorkspaceID: ws})
		}
	}
	b.open = b.open[:0]
}

// chance draws from the job's generator only for a rate below 1, so the
// default rates leave the sequences of earlier configurations unchanged.
func (b *jobBuilder) chance(rate float64) bool {
	return rate >= 1 || b.rng.Float64() < rate
}

func (b *jobBuilder) release(ws string) {
	for i, o := range b.open {
		if o == ws {
			b.add(Event{Type: WorkspaceReleased, WorkspaceID: ws})
			b.open = append(b.open[:i], b.open[i+1:]...)
			return
		}
	}
}

// AppendJob appends the events of job n to dst and returns the result.
func (g *Generator) AppendJob(dst []Event, n int) []Event {
	c := &g.cfg
	b := &jobBuilder{cfg: c, rng: rand.New(rand.NewPCG(c.Seed, uint64(n))), id: g.JobID(n), evs: dst}
	r := b.rng

	nsteps := c.MinSteps + r.IntN(c.MaxSteps-c.MinSteps+1)
	steps := make([]string, nsteps)
	for i := range steps {
		steps[i] = pad2(i) + "-" + stepNames[i%len(stepNames)]
	}
	team := teams[r.IntN(len(teams))]
	labels := map[string]string{
		"team":     team,
		"env":      envs[r.IntN(len(envs))],
		"priority": prios[r.IntN(len(prios))],
	}
	b.add(Event{Type: JobSubmitted, Name: team + "-pipeline-" + strconv.Itoa(n%997),
		Labels: labels, Steps: steps})
	b.add(Event{Type: JobStarted, Worker: "worker-" + pad2(r.IntN(64))})
	withWs := b.chance(c.WorkspaceRate)
	if withWs {
		b.allocate("ws")
	}

	cancelAt, scratchAt := -1, -1
	if nsteps > 1 && r.Float64() < c.CancelRate {
		cancelAt = 1 + r.IntN(nsteps-1)
	}
	if r.Float64() < c.ScratchRate && withWs {
		scratchAt = r.IntN(nsteps)
	}
	for i, step := range steps {
		if i == cancelAt {
			b.releaseAll()
			b.add(Event{Type: JobFinished, Status: StatusCanceled, Reason: "canceled by user"})
			break
		}
		if i == scratchAt {
			b.allocate("scratch")
		}
		if !b.runStep(step, i == nsteps-1) {
			break
		}
		if i == scratchAt {
			b.release(b.id + "-scratch")
		}
	}
	if r.Float64() < c.PurgeRate {
		b.add(Event{Type: JobPurged})
	}
	return b.evs
}

// runStep appends the attempts of one step and reports whether the job goes
// on. The last step's final attempt ends the job when it succeeds, so the
// workspaces are released before it.
func (b *jobBuilder) runStep(step string, last bool) bool {
	c, r := b.cfg, b.rng
	for attempt := 1; ; attempt++ {
		b.add(Event{Type: StepStarted, Step: step, Attempt: attempt})
		status, code := StatusSucceeded, 0
		switch x := r.Float64(); {
		case attempt == 1 && x < c.SkipRate:
			status = StatusSkipped
		case x >= c.SkipRate && x < c.SkipRate+c.FailRate:
			status, code = StatusFailed, 1+r.IntN(125)
		}
		fin := Event{Type: StepFinished, Step: step, Attempt: attempt, Status: status, ExitCode: code}
		switch {
		case status == StatusFailed && attempt < c.MaxAttempts && b.chance(c.RetryRate):
			b.add(fin)
			continue
		case status == StatusFailed:
			b.releaseAll()
			b.add(fin)
			b.add(Event{Type: JobFinished, Status: StatusFailed,
				Reason: "step " + step + " failed after " + strconv.Itoa(attempt) + " attempts"})
			return false
		case last:
			b.releaseAll()
		}
		b.add(fin)
		return true
	}
}

func pad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
