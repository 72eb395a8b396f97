package pstate

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

type idModelEntry struct {
	id  string
	seq uint64
}

type idModel []idModelEntry

func (m idModel) find(id string) (uint64, bool) {
	for _, e := range m {
		if e.id == id {
			return e.seq, true
		}
	}
	return 0, false
}

func drawModelID(t *rapid.T, n int, long bool) string {
	id := fmt.Sprintf("i%d-", n)
	if long {
		l := rapid.IntRange(len(id), MaxIDBytes).Draw(t, "len")
		id += strings.Repeat("x", l-len(id))
	}
	return id
}

// TestPropertyIDIndexModel: one engine-like draft (index, record) with any
// window, rollbacks, forks by Apply-like drafts from earlier roots, long ids
// and (optionally) a colliding hash. Every answer is compared to a model.
func TestPropertyIDIndexModel(t *testing.T) {
	for _, name := range []string{"maphash", "len3", "const"} {
		t.Run(name, func(t *testing.T) {
			saved := hashID
			switch name {
			case "len3":
				hashID = func(id string) uint64 { return uint64(len(id) % 3) }
			case "const":
				hashID = func(id string) uint64 { return 7 }
			}
			defer func() { hashID = saved }()
			rapid.Check(t, idIndexModelCheck)
		})
	}
}

func idIndexModelCheck(t *rapid.T) {
	max := rapid.SampledFrom([]int{1, 2, 3, 5, 1023, 1025}).Draw(t, "max")
	long := rapid.Bool().Draw(t, "long")
	type root struct {
		s *State
		m idModel
	}
	cur := NewStateWithIDWindow(max)
	roots := []root{{cur, nil}}
	model := idModel(nil)
	d := newDraft(cur, cur.ids.indexIDs())
	d.record = true
	fresh := 0
	seq := uint64(0)
	all := map[string]bool{}
	pick := func(m idModel) (id string) {
		defer func() { all[id] = true }()
		if fresh > 0 && rapid.IntRange(0, 3).Draw(t, "old?") == 0 {
			if len(m) > 0 && rapid.Bool().Draw(t, "held?") {
				return m[rapid.IntRange(0, len(m)-1).Draw(t, "heldi")].id
			}
			return drawModelID(t, rapid.IntRange(0, fresh-1).Draw(t, "oldn"), long)
		}
		fresh++
		return drawModelID(t, fresh-1, long)
	}
	push := func(m idModel, id string, s uint64) idModel {
		m = append(m, idModelEntry{id, s})
		if len(m) > max {
			m = slices.Clone(m[1:])
		}
		return m
	}
	// add draws n ids for d, checks each duplicate answer against m, and
	// adds those not held at the next seqs; it returns the new model.
	add := func(what string, d *draft, m idModel, seq *uint64, n int) idModel {
		for range n {
			id := pick(m)
			got, ok := d.applied(id)
			want, wok := m.find(id)
			if ok != wok || got != want {
				t.Fatalf("%s applied(%q) = %d %v, model %d %v", what, id, got, ok, want, wok)
			}
			if ok {
				continue
			}
			*seq++
			d.seq = *seq
			d.addID(id, *seq)
			m = push(m, id, *seq)
		}
		return m
	}
	for range rapid.IntRange(1, 6).Draw(t, "groups") {
		d.reset(cur)
		d.seq = seq
		for range rapid.IntRange(1, 5).Draw(t, "requests") {
			mk := d.mark()
			saved, savedSeq := slices.Clone(model), seq
			n := rapid.SampledFrom([]int{1, 3, 50, 300}).Draw(t, "n")
			model = add("draft", d, model, &seq, n)
			if rapid.IntRange(0, 2).Draw(t, "rollback") == 0 {
				d.rollback(mk)
				model, seq = saved, savedSeq
			} else {
				d.accept()
			}
		}
		cur = d.commit()
		roots = append(roots, root{cur, slices.Clone(model)})
		// index consistency
		if n := d.index.len(); n != cur.ids.len() {
			t.Fatalf("index holds %d, window %d", n, cur.ids.len())
		}
		// A fork from an earlier root, as Apply does.
		if rapid.IntRange(0, 2).Draw(t, "fork") == 0 {
			r := roots[rapid.IntRange(0, len(roots)-1).Draw(t, "from")]
			fd := newDraft(r.s, nil)
			fs := r.s.seq
			fm := add("fork", fd, slices.Clone(r.m), &fs, rapid.IntRange(1, 300).Draw(t, "forkn"))
			roots = append(roots, root{fd.commit(), fm})
		}
		for _, r := range roots {
			if r.s.ids.len() != len(r.m) {
				t.Fatalf("root at %d holds %d ids, model %d", r.s.seq, r.s.ids.len(), len(r.m))
			}
			i := 0
			_ = r.s.ids.each(func(id string, s uint64) error {
				if (idModelEntry{id, s}) != r.m[i] {
					t.Fatalf("root at %d entry %d: %q %d, model %v", r.s.seq, i, id, s, r.m[i])
				}
				i++
				return nil
			})
			for id := range all {
				want, wok := r.m.find(id)
				if s, ok := r.s.Applied(id); ok != wok || s != want {
					t.Fatalf("root Applied(%q) = %d %v, want %d %v", id, s, ok, want, wok)
				}
			}
		}
	}
}

// TestIDWindowReadersWhileLoopWrites: readers of a published root while the loop
// draft pushes, rolls back and re-pushes into the same chunks (run -race).
func TestIDWindowReadersWhileLoopWrites(t *testing.T) {
	cur := NewStateWithIDWindow(1500)
	d := newDraft(cur, cur.ids.indexIDs())
	d.record = true
	seq := uint64(0)
	for g := range 40 {
		d.reset(cur)
		d.seq = seq
		root := cur
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					_ = root.ids.each(func(id string, s uint64) error {
						if _, ok := root.Applied(id); !ok {
							t.Errorf("root lost %q", id)
						}
						return nil
					})
					// An Apply-like fork from the same root.
					fd := newDraft(root, nil)
					fd.seq = root.seq + 1
					fd.addID(fmt.Sprintf("fork-%d", g), root.seq+1)
				}
			}()
		}
		for r := range 6 {
			m := d.mark()
			for i := range 100 {
				seq++
				d.seq = seq
				d.addID(fmt.Sprintf("g%d-r%d-%d-%s", g, r, i, strings.Repeat("y", i%120)), seq)
			}
			if r%2 == 1 {
				d.rollback(m)
				seq = m.seq
			} else {
				d.accept()
			}
		}
		cur = d.commit()
		close(stop)
		wg.Wait()
	}
}

// TestPropertyPosTable: a posTable answers as a Go map does through sets,
// replacements and removals, with hashes drawn from a few values that share
// their low bits (long runs, wrapping past the end of the slots), from any
// room reserved first.
func TestPropertyPosTable(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var tab posTable
		tab.reserve(rapid.IntRange(0, 40).Draw(t, "reserve"))
		model := map[uint64]uint64{}
		spread := rapid.SampledFrom([]uint64{1, 8, 1 << 32}).Draw(t, "spread")
		hash := rapid.Custom(func(t *rapid.T) uint64 {
			h := rapid.Uint64Range(0, 60).Draw(t, "h")*spread + 5
			if rapid.Bool().Draw(t, "high") {
				h = ^h // near the top: runs that wrap
			}
			return h
		})
		for range rapid.IntRange(0, 300).Draw(t, "ops") {
			h := hash.Draw(t, "hash")
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0, 1:
				pos := rapid.Uint64().Draw(t, "pos") >> 1
				tab.set(h, pos)
				model[h] = pos
			default:
				tab.del(h)
				delete(model, h)
			}
			if tab.n != len(model) || 2*tab.n > len(tab.slots) {
				t.Fatalf("%d entries in %d slots, want %d", tab.n, len(tab.slots), len(model))
			}
			for h, want := range model {
				if got, ok := tab.get(h); !ok || got != want {
					t.Fatalf("get(%x) = %d %v, want %d", h, got, ok, want)
				}
			}
			if _, held := model[h]; !held {
				if got, ok := tab.get(h); ok {
					t.Fatalf("get(%x) = %d after its removal", h, got)
				}
			}
			n := 0
			for h, pos := range tab.all() {
				if want, ok := model[h]; !ok || want != pos {
					t.Fatalf("all: %x at %d, the model has %d %v", h, pos, want, ok)
				}
				n++
			}
			if n != len(model) {
				t.Fatalf("all: %d entries, want %d", n, len(model))
			}
		}
	})
}
