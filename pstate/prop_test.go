package pstate

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// gen draws events against the evolving state of a stream.
type gen struct {
	t      *rapid.T
	n      int     // counter for fresh ids and times
	sent   []Event // events sent with an id, for duplicates
	window int
}

func setIDs(m *idSet) []string {
	var out []string
	it := m.Iterator()
	for !it.Done() {
		k, _, _ := it.Next()
		out = append(out, k)
	}
	return out
}

func (g *gen) pick(label string, ids []string) string {
	return rapid.SampledFrom(ids).Draw(g.t, label)
}

// valid draws an event that fits s, or ok=false when the drawn kind has
// nothing to act on.
func (g *gen) valid(s *State) (e Event, ok bool) {
	g.n++
	queued, running := setIDs(s.byState[jsQueued]), setIDs(s.byState[jsRunning])
	open := append(append([]string{}, queued...), running...)
	var finished []string
	for _, st := range []jobState{jsSucceeded, jsFailed, jsCanceled} {
		finished = append(finished, setIDs(s.byState[st])...)
	}
	switch rapid.IntRange(0, 9).Draw(g.t, "kind") {
	case 0, 1:
		e = submit(fmt.Sprintf("j%d", g.n), []string{"a", "b", "c"}[:rapid.IntRange(1, 3).Draw(
			g.t, "steps")]...)
		e.Labels = map[string]string{"team": rapid.SampledFrom([]string{"x", "y"}).Draw(g.t, "l")}
	case 2:
		if len(queued) == 0 {
			return e, false
		}
		e = start(g.pick("job", queued))
	case 3, 4, 5:
		if len(running) == 0 {
			return e, false
		}
		return g.stepEvent(s, g.pick("job", running))
	case 6:
		if len(open) == 0 {
			return e, false
		}
		j, _ := s.jobs.Get(g.pick("job", open))
		st := rapid.SampledFrom([]string{StatusFailed, StatusCanceled, StatusSucceeded}).Draw(
			g.t, "status")
		if j.state == jsQueued && st == StatusSucceeded {
			st = StatusCanceled
		}
		e = jobEnd(j.id, st)
	case 7:
		if len(open) == 0 {
			return e, false
		}
		ws := fmt.Sprintf("w%d", g.n)
		if rel := setIDs(s.wsByState[1]); len(rel) > 0 && rapid.Bool().Draw(g.t, "reuse") {
			ws = g.pick("ws", rel)
		}
		e = alloc(ws, g.pick("job", open))
	case 8:
		alloc := setIDs(s.wsByState[0])
		if len(alloc) == 0 {
			return e, false
		}
		e = release(g.pick("ws", alloc))
	case 9:
		if len(finished) == 0 {
			return e, false
		}
		e = purge(g.pick("job", finished))
	}
	return e, true
}

// stepEvent starts the next attempt of a step or finishes the running one.
func (g *gen) stepEvent(s *State, id string) (Event, bool) {
	j, _ := s.jobs.Get(id)
	si := rapid.IntRange(0, len(j.steps)-1).Draw(g.t, "step")
	li := j.lastAttempt(si)
	if li >= 0 && j.attempts[li].status == asRunning {
		st := rapid.SampledFrom([]string{StatusSucceeded, StatusFailed, StatusSkipped}).Draw(
			g.t, "status")
		e := stepEnd(id, j.steps[si], int(j.attempts[li].num), st)
		e.ExitCode = rapid.IntRange(-2, 2).Draw(g.t, "exit")
		return e, true
	}
	next := 1
	if li >= 0 {
		next = int(j.attempts[li].num) + 1
	}
	return stepStart(id, j.steps[si], next), true
}

// invalid draws an event that must be refused with a conflict naming what
// the returned substring says.
func (g *gen) invalid(s *State) (e Event, names string, ok bool) {
	jobs := setIDs(s.jobIDs)
	switch rapid.IntRange(0, 6).Draw(g.t, "bad") {
	case 0:
		return start("ghost"), `job "ghost"`, true
	case 1:
		if len(jobs) == 0 {
			return e, "", false
		}
		id := g.pick("job", jobs)
		return submit(id, "a"), fmt.Sprintf("job %q", id), true
	case 2:
		if q := setIDs(s.byState[jsQueued]); len(q) > 0 {
			id := g.pick("job", q)
			return stepStart(id, "a", 1), fmt.Sprintf("job %q", id), true
		}
	case 3:
		if r := setIDs(s.byState[jsRunning]); len(r) > 0 {
			id := g.pick("job", r)
			return stepStart(id, "zz", 1), `step "zz"`, true
		}
	case 4:
		if r := setIDs(s.byState[jsRunning]); len(r) > 0 {
			id := g.pick("job", r)
			return purge(id), fmt.Sprintf("job %q", id), true
		}
	case 5:
		if rel := setIDs(s.wsByState[1]); len(rel) > 0 {
			w := g.pick("ws", rel)
			return release(w), fmt.Sprintf("workspace %q", w), true
		}
	case 6:
		if r := setIDs(s.byState[jsRunning]); len(r) > 0 {
			id := g.pick("job", r)
			return stepStart(id, "a", 7), fmt.Sprintf("job %q", id), true
		}
	}
	return e, "", false
}

// decorate gives an event an id and a time, or leaves them for the engine.
func (g *gen) decorate(e *Event) {
	if rapid.Bool().Draw(g.t, "has id") {
		e.ID = fmt.Sprintf("e%d", g.n)
	}
	if rapid.Bool().Draw(g.t, "has time") {
		e.Time = t0.Add(time.Duration(g.n) * time.Second)
	}
}

// stream runs a random stream of requests and returns the live state and
// the log records (seq i+1 at index i).
func stream(t *rapid.T) (*State, [][]byte, int) {
	g := &gen{t: t, window: rapid.IntRange(1, 8).Draw(t, "window")}
	s := NewStateWithIDWindow(g.window)
	var log [][]byte
	steps := rapid.IntRange(1, 80).Draw(t, "requests")
	for range steps {
		now := t0.Add(time.Duration(g.n) * time.Second)
		switch rapid.IntRange(0, 9).Draw(t, "request") {
		case 0: // an invalid event, alone or after a valid one
			base, lead := s, []Event{}
			if v, ok := g.valid(s); ok && rapid.Bool().Draw(t, "lead") {
				p, err := prepare(s, s.Seq(), []Event{v}, now, false)
				if err != nil {
					t.Fatalf("valid event %+v refused: %v", v, err)
				}
				base, lead = p.state, []Event{v}
			}
			bad, names, ok := g.invalid(base)
			if !ok {
				continue
			}
			reqs := append(lead, bad)
			_, err := prepare(s, s.Seq(), reqs, now, false)
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Index != len(reqs)-1 ||
				!strings.Contains(err.Error(), names) {
				t.Fatalf("%+v: err = %v, want a conflict naming %s", reqs, err, names)
			}
		case 1: // a duplicate of an earlier event
			if len(g.sent) == 0 {
				continue
			}
			d := rapid.SampledFrom(g.sent).Draw(t, "dup")
			seq, held := s.Applied(d.ID)
			p, err := prepare(s, s.Seq(), []Event{d}, now, false)
			if held && (err != nil || !p.results[0].Duplicate || p.results[0].Seq != seq) {
				t.Fatalf("duplicate %s: %v %v", d.ID, p.results, err)
			}
		default:
			var reqs []Event
			tmp := s
			for range rapid.IntRange(1, 3).Draw(t, "size") {
				e, ok := g.valid(tmp)
				if !ok {
					continue
				}
				g.decorate(&e)
				p, err := prepare(tmp, tmp.Seq(), []Event{e}, now, false)
				if err != nil {
					t.Fatalf("valid event %+v refused: %v", e, err)
				}
				tmp, reqs = p.state, append(reqs, e)
			}
			if len(reqs) == 0 {
				continue
			}
			p, err := prepare(s, s.Seq(), reqs, now, false)
			if err != nil {
				t.Fatalf("valid request refused: %v", err)
			}
			s, log = p.state, append(log, p.payloads...)
			for _, e := range reqs {
				if e.ID != "" {
					g.sent = append(g.sent, e)
				}
			}
		}
		checkEffects(t, s)
	}
	return s, log, g.window
}

// checkEffects: the effects ran, so no finished job holds an allocated
// workspace and no running job has every step done.
func checkEffects(t *rapid.T, s *State) {
	checkInvariants(t, s)
	it := s.jobs.Iterator()
	for !it.Done() {
		_, j, _ := it.Next()
		if j.state.terminal() {
			for _, w := range j.workspaces {
				if ws, _ := s.ws.Get(w); !ws.isReleased {
					t.Fatalf("finished job %q holds allocated workspace %q", j.id, w)
				}
			}
		}
		if j.state == jsRunning && len(effects(s, &Event{Type: TypeStepFinished, JobID: j.id,
			Status: StatusSucceeded})) > 0 {
			t.Fatalf("job %q has every step done but is still running", j.id)
		}
	}
}

func replayRecords(t tb, s *State, log [][]byte, from int) *State {
	for i := from; i < len(log); i++ {
		var err error
		if s, err = Replay(s, uint64(i+1), log[i]); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestPropertyReplayEqualsLive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		live, log, window := stream(t)
		full := replayRecords(t, NewStateWithIDWindow(window), log, 0)
		assertSameState(t, full, live)

		// No later apply changed an earlier root: each prefix state,
		// encoded before and after the rest of the log was applied on top
		// of it, reads the same.
		var roots []*State
		var before [][]byte
		s := NewStateWithIDWindow(window)
		for i, rec := range log {
			var err error
			if s, err = Replay(s, uint64(i+1), rec); err != nil {
				t.Fatal(err)
			}
			roots, before = append(roots, s), append(before, snapshotBytes(t, s))
		}
		for i, r := range roots {
			if !bytes.Equal(snapshotBytes(t, r), before[i]) {
				t.Fatalf("the root at seq %d changed after later events", r.Seq())
			}
			checkInvariants(t, r)
		}

		// Snapshot at any prefix, reload it, replay the rest starting
		// before the snapshot's seq: records it holds are no-ops.
		k := rapid.IntRange(0, len(log)).Draw(t, "prefix")
		prefix := replayRecords(t, NewStateWithIDWindow(window), log[:k], 0)
		var b bytes.Buffer
		if err := prefix.EncodeSnapshot(&b); err != nil {
			t.Fatal(err)
		}
		loaded, err := DecodeSnapshot(&b, prefix.Seq())
		if err != nil {
			t.Fatal(err)
		}
		from := rapid.IntRange(0, k).Draw(t, "replay from")
		assertSameState(t, replayRecords(t, loaded, log, from), live)

		// Applying every record twice equals applying it once.
		twice := NewStateWithIDWindow(window)
		for i, rec := range log {
			for range 2 {
				if twice, err = Replay(twice, uint64(i+1), rec); err != nil {
					t.Fatal(err)
				}
			}
		}
		assertSameState(t, twice, live)

		// Apply with a seq at or below the state's is a no-op.
		if len(log) > 0 {
			e, _ := DecodeEvent(log[len(log)-1])
			if Apply(live, &e, live.Seq()) != live {
				t.Fatal("Apply at an old seq changed the state")
			}
		}
	})
}
