package pstate

import "github.com/benbjohnson/immutable"

// idWindow remembers the ids of the last max events that carried one, so a
// resent event is answered as a duplicate. seqs maps id to seq; ring holds
// the ids in insertion order as a ring over a persistent list: while it
// grows, ids are appended; once it holds max, slot count%max holds the
// oldest id, which is dropped from seqs and overwritten. Eviction follows
// the order events were applied, so replay evicts exactly as the live state
// did.
type idWindow struct {
	max   int
	count uint64 // ids inserted since the list was built
	seqs  *immutable.Map[string, uint64]
	ring  *immutable.List[string]
}

func newIDWindow(max int) idWindow {
	if max < 1 {
		max = 1
	}
	return idWindow{
		max:  max,
		seqs: immutable.NewMap[string, uint64](strHasher{}),
		ring: immutable.NewList[string](),
	}
}

// add returns the window with id remembered at seq. An id already held keeps
// its first seq.
func (w idWindow) add(id string, seq uint64) idWindow {
	if _, ok := w.seqs.Get(id); ok {
		return w
	}
	if w.ring.Len() < w.max {
		w.ring = w.ring.Append(id)
	} else {
		slot := int(w.count % uint64(w.max))
		w.seqs = w.seqs.Delete(w.ring.Get(slot))
		w.ring = w.ring.Set(slot, id)
	}
	w.seqs = w.seqs.Set(id, seq)
	w.count++
	return w
}

// each calls fn for the remembered ids, oldest first.
func (w idWindow) each(fn func(id string, seq uint64) error) error {
	n := w.ring.Len()
	start := 0
	if n == w.max {
		start = int(w.count % uint64(w.max))
	}
	for i := range n {
		id := w.ring.Get((start + i) % n)
		seq, _ := w.seqs.Get(id)
		if err := fn(id, seq); err != nil {
			return err
		}
	}
	return nil
}
