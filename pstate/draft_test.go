package pstate

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestPropertyDraftGroups runs groups of requests through one draft with an
// id index, as the engine's loop does, some refused in the middle of a
// group. Each group's root must equal the state built from the accepted
// requests alone, one pure prepare each, and the log must replay to it.
func TestPropertyDraftGroups(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := &gen{t: t, window: rapid.IntRange(1, 8).Draw(t, "window")}
		model := NewStateWithIDWindow(g.window)
		cur := model
		d := newDraft(cur, cur.ids.indexIDs())
		d.record = true
		var log [][]byte
		for range rapid.IntRange(1, 8).Draw(t, "groups") {
			d.reset(cur)
			for range rapid.IntRange(1, 6).Draw(t, "requests") {
				now := t0.Add(time.Duration(g.n) * time.Second)
				reqs, bad := g.request(model, now)
				if len(reqs) == 0 {
					continue
				}
				p, err := d.prepare(reqs, now, false)
				want, werr := prepare(model, model.Seq(), reqs, now, false)
				if bad && err == nil {
					t.Fatalf("%+v: accepted, want a refusal", reqs)
				}
				if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
					t.Fatalf("%+v: draft says %v, a request alone %v", reqs, err, werr)
				}
				if err != nil {
					continue
				}
				if !slices.Equal(p.results, want.results) ||
					!slices.EqualFunc(p.payloads, want.payloads, slices.Equal) {
					t.Fatalf("draft gave %v, a request alone %v", p.results, want.results)
				}
				model, log = want.state, append(log, p.payloads...)
				for _, e := range reqs {
					if e.ID != "" {
						g.sent = append(g.sent, e)
					}
				}
			}
			cur = d.commit()
			assertSameState(t, cur, model)
			for h, pos := range d.index.byHash.all() {
				if !cur.ids.holds(pos) {
					t.Fatalf("index: hash %x at %d, outside the window", h, pos)
				}
				if got := cur.ids.hashAt(pos); got != h {
					t.Fatalf("index: hash %x at %d, the window holds %x", h, pos, got)
				}
			}
			for id, pos := range d.index.extra {
				if got, _ := cur.ids.at(pos); !cur.ids.holds(pos) || got != id {
					t.Fatalf("index: %q at %d, the window holds %q", id, pos, got)
				}
			}
			if n := d.index.len(); n != cur.ids.len() {
				t.Fatalf("index holds %d ids, the window %d", n, cur.ids.len())
			}
			if err := cur.ids.each(func(id string, seq uint64) error {
				if got, ok := d.applied(id); !ok || got != seq {
					return fmt.Errorf("index: %q gives %d %v, want %d", id, got, ok, seq)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		assertSameState(t, replayRecords(t, NewStateWithIDWindow(g.window), log, 0), cur)
	})
}

// request draws a request against s: valid events (with ids and times or
// not), a duplicate of an earlier event, or valid events followed by one
// that must be refused (bad).
func (g *gen) request(s *State, now time.Time) (reqs []Event, bad bool) {
	tmp := s
	if len(g.sent) > 0 && rapid.IntRange(0, 4).Draw(g.t, "dup") == 0 {
		// Resent: a duplicate while the window holds its id, else applied
		// again (or refused) like any event.
		e := rapid.SampledFrom(g.sent).Draw(g.t, "sent")
		if p, err := prepare(tmp, tmp.Seq(), []Event{e}, now, false); err == nil {
			tmp, reqs = p.state, append(reqs, e)
		}
	}
	for range rapid.IntRange(0, 3).Draw(g.t, "size") {
		e, ok := g.valid(tmp)
		if !ok {
			continue
		}
		g.decorate(&e)
		p, err := prepare(tmp, tmp.Seq(), []Event{e}, now, false)
		if err != nil {
			g.t.Fatalf("valid event %+v refused: %v", e, err)
		}
		tmp, reqs = p.state, append(reqs, e)
	}
	if rapid.IntRange(0, 2).Draw(g.t, "refused") == 0 {
		if e, _, ok := g.invalid(tmp); ok {
			return append(reqs, e), true
		}
	}
	return reqs, false
}

// TestPropertyIDWindow pushes ids into windows grown from any earlier
// version (as pure Apply may), rolls some pushes back, and checks every
// version still holds exactly the last max ids it was given.
func TestPropertyIDWindow(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		max := rapid.IntRange(1, 2500).Draw(t, "max")
		type entry struct {
			id  string
			seq uint64
		}
		type version struct {
			w     idWindow
			model []entry
		}
		check := func(v version) {
			if v.w.len() != len(v.model) {
				t.Fatalf("window holds %d ids, want %d", v.w.len(), len(v.model))
			}
			i := 0
			_ = v.w.each(func(id string, seq uint64) error {
				if (entry{id, seq}) != v.model[i] {
					t.Fatalf("entry %d: %s %d, want %v", i, id, seq, v.model[i])
				}
				i++
				return nil
			})
			checkWindow(t, &v.w)
		}
		versions := []version{{w: newIDWindow(max)}}
		seq, fresh := uint64(0), 0
		for range rapid.IntRange(1, 30).Draw(t, "rounds") {
			from := len(versions) - 1
			if rapid.IntRange(0, 3).Draw(t, "fork") == 0 {
				from = rapid.IntRange(0, from).Draw(t, "from")
			}
			v := versions[from]
			v.model = slices.Clone(v.model)
			rollback := rapid.IntRange(0, 4).Draw(t, "rollback") == 0
			saved, savedModel := v.w, v.model
			var claims []claim
			for range rapid.IntRange(1, 400).Draw(t, "pushes") {
				fresh++
				seq++
				id := fmt.Sprintf("e%d", fresh)
				if fresh > 3 && rapid.IntRange(0, 3).Draw(t, "old id") == 0 {
					id = fmt.Sprintf("e%d", rapid.IntRange(1, fresh-1).Draw(t, "old"))
				}
				_, held := v.w.find(id)
				if held != slices.ContainsFunc(v.model, func(e entry) bool { return e.id == id }) {
					t.Fatalf("find(%q) = %v, the model disagrees", id, held)
				}
				if held {
					continue
				}
				v.w.push(id, hashID(id), seq, &claims)
				if v.model = append(v.model, entry{id, seq}); len(v.model) > max {
					v.model = v.model[1:]
				}
			}
			if rollback {
				for i := len(claims) - 1; i >= 0; i-- {
					claims[i].c.filled.Store(claims[i].slot)
				}
				v.w, v.model = saved, savedModel
			}
			versions = append(versions, v)
			check(versions[rapid.IntRange(0, len(versions)-1).Draw(t, "check")])
		}
		for _, v := range versions {
			check(v)
		}
	})
}

// TestApplyForksShareNothing applies different events with ids to one root
// twice: each result holds its own id, and the root holds neither.
func TestApplyForksShareNothing(t *testing.T) {
	s := NewStateWithIDWindow(3000)
	for i := range 1500 {
		e := Event{Type: TypeJobSubmitted, ID: fmt.Sprintf("e%d", i), Time: t0,
			JobID: fmt.Sprintf("j%d", i), Name: "n", Steps: []string{"a"}}
		s = Apply(s, &e, uint64(i+1))
	}
	a := Apply(s, &Event{Type: TypeJobStarted, ID: "x", Time: t0, JobID: "j1", Worker: "w"},
		s.Seq()+1)
	b := Apply(s, &Event{Type: TypeJobStarted, ID: "y", Time: t0, JobID: "j2", Worker: "w"},
		s.Seq()+1)
	for _, c := range []struct {
		s        *State
		x, y, j1 bool
	}{{s, false, false, false}, {a, true, false, true}, {b, false, true, false}} {
		_, x := c.s.Applied("x")
		_, y := c.s.Applied("y")
		j, _ := c.s.Job("j1")
		if x != c.x || y != c.y || (j.State == StateRunning) != c.j1 {
			t.Fatalf("state at %d: x %v y %v j1 %s", c.s.Seq(), x, y, j.State)
		}
		checkInvariants(t, c.s)
	}
}

// recoveryAtPrefix draws a prefix of log, decodes a Recovery from a
// snapshot of the state after it, and draws a record of the prefix to
// replay from (records the snapshot holds are skipped).
func recoveryAtPrefix(t *rapid.T, log [][]byte, window int) (*State, *Recovery, int) {
	k := rapid.IntRange(0, len(log)).Draw(t, "prefix")
	prefix := replayRecords(t, NewStateWithIDWindow(window), log[:k], 0)
	r, err := DecodeRecovery(bytes.NewReader(snapshotBytes(t, prefix)), prefix.Seq())
	if err != nil {
		t.Fatal(err)
	}
	return prefix, r, rapid.IntRange(0, k).Draw(t, "replay from")
}

// TestPropertyRecovery: a Recovery from a snapshot at any prefix, from the
// empty state, or from a state with jobs (committing every few records),
// replaying the log from any earlier point, ends at the live state.
func TestPropertyRecovery(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		live, log, window := stream(t)
		replay := func(r *Recovery, from int) *State {
			for i := from; i < len(log); i++ {
				if err := r.Replay(uint64(i+1), log[i]); err != nil {
					t.Fatal(err)
				}
			}
			return r.State()
		}
		prefix, r, from := recoveryAtPrefix(t, log, window)
		assertSameState(t, replay(r, from), live)
		assertSameState(t, replay(NewRecovery(NewStateWithIDWindow(window)), 0), live)

		r = NewRecovery(prefix)
		r.group = rapid.IntRange(1, 5).Draw(t, "group")
		got := replay(r, from)
		assertSameState(t, got, live)
		if r.Replay(got.Seq()+1, nil) == nil || r.State() != got {
			t.Fatal("a recovery went on after State")
		}
	})
}

// TestPropertyIDsColliding runs the id window's and the draft's property
// tests with a hash that gives every id one of three values, so that chunk
// indexes and the loop's index take their collision paths all the time.
func TestPropertyIDsColliding(t *testing.T) {
	saved := hashID
	hashID = func(id string) uint64 { return uint64(len(id) % 3) }
	defer func() { hashID = saved }()
	t.Run("window", TestPropertyIDWindow)
	t.Run("draft", TestPropertyDraftGroups)
	t.Run("recovery", TestPropertyRecovery)
}

// TestIDWindowLongIDs fills chunks with ids of every length up to
// MaxIDBytes, so their bytes cross many blocks, and forks a window in the
// middle of a chunk: each side reads back exactly its own ids.
func TestIDWindowLongIDs(t *testing.T) {
	mk := func(i int) string {
		id := fmt.Sprintf("%d-", i)
		return id + strings.Repeat("x", 1+i*7%(MaxIDBytes-len(id)))
	}
	w := newIDWindow(3000)
	for i := range 2500 {
		id := mk(i)
		w.push(id, hashID(id), uint64(i+1), nil)
	}
	a, b := w, w
	for i := 2500; i < 2700; i++ {
		ida, idb := mk(i), "b"+mk(i)[1:]
		a.push(ida, hashID(ida), uint64(i+1), nil)
		b.push(idb, hashID(idb), uint64(i+1), nil)
	}
	for _, v := range []struct {
		w      idWindow
		prefix string
	}{{a, ""}, {b, "b"}} {
		for i := range 2700 {
			want := mk(i)
			if i >= 2500 && v.prefix != "" {
				want = v.prefix + want[1:]
			}
			if got, seq := v.w.at(uint64(i)); got != want || seq != uint64(i+1) {
				t.Fatalf("at(%d) = %q %d, want %q %d", i, got, seq, want, i+1)
			}
			if seq, ok := v.w.find(want); !ok || seq != uint64(i+1) {
				t.Fatalf("find(%q) = %d %v", want, seq, ok)
			}
		}
	}
}
