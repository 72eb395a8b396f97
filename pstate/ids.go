package pstate

import (
	"slices"
	"sync/atomic"
)

// idChunkSize is how many (id, seq) entries one chunk of the id window holds.
const idChunkSize = 1024

// idChunk is a fixed run of the window's entries. Entries are written once,
// in apply order, by the one draft that claimed the slot (filled is the
// claim counter). A root records how far the window reaches; it reads only
// entries below that, which are never rewritten while it can see them, so
// writing the slots above is invisible to it.
//
// index maps each id to its slot; it is built when the last slot is
// written, before any root that holds the chunk full can be published, and
// only such roots read it.
type idChunk struct {
	filled atomic.Int32
	ids    [idChunkSize]string
	seqs   [idChunkSize]uint64
	index  map[string]uint16
}

// idWindow remembers the ids of the last max events that carried one, so a
// resent event is answered as a duplicate. Entries have positions counting
// every id ever remembered; the window holds positions [start, end), oldest
// first, in chunks: chunks[0] begins at position base. When a new id would
// make it hold more than max, the oldest is dropped (start moves up), and a
// chunk is dropped once start passes its end. Eviction follows the order
// events were applied, so replay evicts exactly as the live state did.
//
// The value is copied into each root; its chunks slice is never written in
// place (a new chunk or a replaced one gets a fresh slice), so roots
// sharing chunks never see each other's changes.
type idWindow struct {
	max        int
	base       uint64
	start, end uint64
	chunks     []*idChunk
}

func newIDWindow(max int) idWindow {
	if max < 1 {
		max = 1
	}
	return idWindow{max: max}
}

// len returns how many ids the window holds.
func (w *idWindow) len() int { return int(w.end - w.start) }

// at returns the entry at pos, which must lie in [start, end).
func (w *idWindow) at(pos uint64) (string, uint64) {
	off := pos - w.base
	c := w.chunks[off/idChunkSize]
	return c.ids[off%idChunkSize], c.seqs[off%idChunkSize]
}

// find looks id up without an index: each full chunk through its map, the
// last (open) one by a scan. O(window / idChunkSize); the engine and
// recovery keep a Go map beside the window instead (see draft.applied).
func (w *idWindow) find(id string) (uint64, bool) {
	for ci, c := range w.chunks {
		cbase := w.base + uint64(ci)*idChunkSize
		if cbase+idChunkSize <= w.end {
			if slot, ok := c.index[id]; ok && cbase+uint64(slot) >= w.start {
				return c.seqs[slot], true
			}
			continue
		}
		lo := 0
		if w.start > cbase {
			lo = int(w.start - cbase)
		}
		for i := lo; i < int(w.end-cbase); i++ {
			if c.ids[i] == id {
				return c.seqs[i], true
			}
		}
	}
	return 0, false
}

// claim is a slot a draft took in a chunk, so a rolled-back request can
// give it back.
type claim struct {
	c    *idChunk
	slot int32
}

// push remembers id at seq at position end and returns the id and position
// evicted, if the window was full. The caller has checked id is not held.
// claims, when not nil, collects the slots taken in shared chunks.
func (w *idWindow) push(id string, seq uint64, claims *[]claim,
) (evicted string, pos uint64, ok bool) {
	off := w.end - w.base
	ci, slot := int(off/idChunkSize), int32(off%idChunkSize)
	if ci == len(w.chunks) {
		w.chunks = append(w.chunks[:ci:ci], new(idChunk))
	}
	c := w.chunks[ci]
	if c.filled.CompareAndSwap(slot, slot+1) {
		if claims != nil {
			*claims = append(*claims, claim{c, slot})
		}
	} else {
		// Another state grown from the same root wrote this slot: copy
		// the prefix this window holds.
		nc := new(idChunk)
		copy(nc.ids[:slot], c.ids[:slot])
		copy(nc.seqs[:slot], c.seqs[:slot])
		nc.filled.Store(slot + 1)
		w.chunks = slices.Clone(w.chunks)
		w.chunks[ci], c = nc, nc
	}
	c.ids[slot], c.seqs[slot] = id, seq
	if slot == idChunkSize-1 {
		m := make(map[string]uint16, idChunkSize)
		for i, x := range c.ids {
			m[x] = uint16(i)
		}
		c.index = m
	}
	w.end++
	if w.len() <= w.max {
		return "", 0, false
	}
	evicted, _ = w.at(w.start)
	pos = w.start
	w.start++
	if w.start-w.base == idChunkSize {
		w.chunks = w.chunks[1:]
		w.base += idChunkSize
	}
	return evicted, pos, true
}

// each calls fn for the remembered ids, oldest first.
func (w *idWindow) each(fn func(id string, seq uint64) error) error {
	for pos := w.start; pos < w.end; pos++ {
		if err := fn(w.at(pos)); err != nil {
			return err
		}
	}
	return nil
}

// indexIDs returns a Go map from each id the window holds to its position.
func (w *idWindow) indexIDs() map[string]uint64 {
	m := make(map[string]uint64, w.len())
	for pos := w.start; pos < w.end; pos++ {
		id, _ := w.at(pos)
		m[id] = pos
	}
	return m
}
