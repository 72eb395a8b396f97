package pstate

import (
	"fmt"
	"hash/maphash"
	"iter"
	"slices"
	"sync/atomic"
	"unsafe"
)

// The id window holds up to a million ids. Kept as Go strings in Go maps it
// was most of the daemon's heap objects and pointers, and each garbage
// collection spent hundreds of milliseconds of CPU marking them. So an id's
// bytes live in blocks owned by its chunk, and every table of the window
// and its indexes is keyed by a hash of the id, with no pointers in it for
// the collector to follow.
const (
	// idChunkSize is how many (id, seq) entries one chunk holds.
	idChunkSize = 1024
	// idBlockSize is the size of a chunk's blocks of id bytes; an id never
	// straddles two blocks.
	idBlockSize = 8 << 10
	// maxIDBlocks is how many blocks a chunk of the longest ids takes.
	maxIDBlocks = idChunkSize*MaxIDBytes/(idBlockSize-MaxIDBytes) + 1
	// collided is a chunk index value: two of the chunk's ids share a
	// hash, look the id up by a scan.
	collided = 1<<16 - 1
)

// idSeed keys the hashes of ids. They are never stored on disk, so each
// process picks its own.
var idSeed = maphash.MakeSeed()

// hashID hashes an id; tests swap in a weak hash to make collisions.
var hashID = func(id string) uint64 { return maphash.String(idSeed, id) }

// idBlock holds the bytes of some of a chunk's ids.
type idBlock [idBlockSize]byte

// idChunk is a fixed run of the window's entries. Entries are written once,
// in apply order, by the one draft that claimed the slot (filled is the
// claim counter). A root records how far the window reaches; it reads only
// entries below that, which are never rewritten while it can see them, so
// writing the slots above (and the block bytes after theirs) is invisible
// to it.
//
// Slot i's id is loc[i] (block, offset, length) in blocks; the bytes of
// slot i+1 follow those of slot i, or start the next block. index maps each
// id's hash to its slot; it is built when the last slot is written, before
// any root that holds the chunk full can be published, and only such roots
// read it.
type idChunk struct {
	filled atomic.Int32
	seqs   [idChunkSize]uint64
	hashes [idChunkSize]uint64
	loc    [idChunkSize]uint32 // block<<21 | offset<<8 | length
	blocks [maxIDBlocks]*idBlock
	index  map[uint64]uint16
}

// id returns slot i's id; the string shares the block's bytes, which never
// change once written.
func (c *idChunk) id(i int) string {
	l := c.loc[i]
	b, off, n := l>>21, (l>>8)&(idBlockSize-1), l&0xff
	return unsafe.String(&c.blocks[b][off], n)
}

// write stores id's bytes after those of slot-1 and records where.
func (c *idChunk) write(slot int, id string) {
	if len(id) == 0 || len(id) > MaxIDBytes {
		panic(fmt.Sprintf("pstate: id window given an id of %d bytes", len(id)))
	}
	var b, off uint32
	if slot > 0 {
		l := c.loc[slot-1]
		b, off = l>>21, (l>>8)&(idBlockSize-1)+l&0xff
		if int(off)+len(id) > idBlockSize {
			b, off = b+1, 0
		}
	}
	if c.blocks[b] == nil {
		c.blocks[b] = new(idBlock)
	}
	copy(c.blocks[b][off:], id)
	c.loc[slot] = b<<21 | off<<8 | uint32(len(id))
}

// copyPrefix returns a new chunk holding c's first n slots, with blocks of
// its own: the blocks c shares are written past those slots by another
// state.
func (c *idChunk) copyPrefix(n int) *idChunk {
	nc := new(idChunk)
	for i := range n {
		nc.write(i, c.id(i))
	}
	copy(nc.seqs[:n], c.seqs[:n])
	copy(nc.hashes[:n], c.hashes[:n])
	nc.filled.Store(int32(n))
	return nc
}

// find returns id's slot among slots [lo, n), or -1. In a chunk full in
// the caller's view (n == idChunkSize) the index finds it; otherwise a scan
// of the hashes does (a chunk another state filled and then gave back
// slots of may hold an index of ids this one never had).
func (c *idChunk) find(id string, h uint64, lo, n int) int {
	if n == idChunkSize {
		slot, ok := c.index[h]
		switch {
		case !ok:
			return -1
		case slot != collided:
			if int(slot) >= lo && c.id(int(slot)) == id {
				return int(slot)
			}
			return -1
		}
	}
	for i := lo; i < n; i++ {
		if c.hashes[i] == h && c.id(i) == id {
			return i
		}
	}
	return -1
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

// holds reports whether pos lies in the window.
func (w *idWindow) holds(pos uint64) bool { return pos >= w.start && pos < w.end }

// at returns the entry at pos, which must lie in [start, end).
func (w *idWindow) at(pos uint64) (string, uint64) {
	off := pos - w.base
	c := w.chunks[off/idChunkSize]
	return c.id(int(off % idChunkSize)), c.seqs[off%idChunkSize]
}

// hashAt returns the hash of the id at pos, which must lie in [start, end).
func (w *idWindow) hashAt(pos uint64) uint64 {
	off := pos - w.base
	return w.chunks[off/idChunkSize].hashes[off%idChunkSize]
}

// find looks id up without an index: each full chunk through its map, the
// last (open) one by a scan. O(window / idChunkSize); the engine and
// recovery keep an idIndex beside the window instead (see draft.applied).
func (w *idWindow) find(id string) (uint64, bool) {
	h := hashID(id)
	for ci, c := range w.chunks {
		cbase := w.base + uint64(ci)*idChunkSize
		lo := int(max(w.start, cbase) - cbase)
		n := int(min(w.end-cbase, idChunkSize))
		if slot := c.find(id, h, lo, n); slot >= 0 {
			return c.seqs[slot], true
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

// push remembers id (whose hash is h) at seq at position end and returns the
// position evicted, if the window was full. The caller has checked id is
// not held. claims, when not nil, collects the slots taken in shared chunks.
func (w *idWindow) push(id string, h, seq uint64, claims *[]claim) (evicted uint64, ok bool) {
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
		nc := c.copyPrefix(int(slot))
		nc.filled.Store(slot + 1)
		w.chunks = slices.Clone(w.chunks)
		w.chunks[ci], c = nc, nc
	}
	c.write(int(slot), id)
	c.seqs[slot], c.hashes[slot] = seq, h
	if slot == idChunkSize-1 {
		m := make(map[uint64]uint16, idChunkSize)
		for i, x := range c.hashes {
			if _, dup := m[x]; dup {
				m[x] = collided
			} else {
				m[x] = uint16(i)
			}
		}
		c.index = m
	}
	w.end++
	if w.len() <= w.max {
		return 0, false
	}
	pos := w.start
	w.start++
	if w.start-w.base == idChunkSize {
		w.chunks = w.chunks[1:]
		w.base += idChunkSize
	}
	return pos, true
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

// indexIDs returns an index of the ids the window holds.
func (w *idWindow) indexIDs() *idIndex {
	x := newIDIndex(w.len())
	for pos := w.start; pos < w.end; pos++ {
		id, _ := w.at(pos)
		x.add(id, w.hashAt(pos), pos)
	}
	return x
}

// idIndex maps each id a window holds to its position, for the event loop
// and recovery. It is keyed by the ids' hashes, so the collector has
// nothing to follow in it; the rare id whose hash another held id already
// has goes in extra, keyed by the id itself. A hit is confirmed against the
// window (lookup).
type idIndex struct {
	byHash posTable
	extra  map[string]uint64
}

func newIDIndex(n int) *idIndex {
	x := &idIndex{}
	x.byHash.reserve(n)
	return x
}

// reserve makes room for n ids, so the index need not grow while they are
// added one by one.
func (x *idIndex) reserve(n int) { x.byHash.reserve(n) }

// lookup returns id's position in w, if w holds it.
func (x *idIndex) lookup(w *idWindow, id string, h uint64) (uint64, bool) {
	pos, held, _ := x.find(w, id, h)
	return pos, held
}

// find is lookup that also reports whether h is taken in byHash (by id or
// by another id), for add.
func (x *idIndex) find(w *idWindow, id string, h uint64) (pos uint64, held, taken bool) {
	if pos, taken = x.byHash.get(h); taken && w.holds(pos) {
		if got, _ := w.at(pos); got == id {
			return pos, true, true
		}
	}
	if len(x.extra) == 0 {
		return 0, false, taken
	}
	if p, ok := x.extra[id]; ok && w.holds(p) {
		return p, true, taken
	}
	return 0, false, taken
}

// add records that id (hash h) is at pos. id must not be in x already.
// It reports whether it went to extra.
func (x *idIndex) add(id string, h, pos uint64) (inExtra bool) {
	_, taken := x.byHash.get(h)
	return x.put(id, h, pos, taken)
}

// put is add for a caller that knows whether h is taken (find).
func (x *idIndex) put(id string, h, pos uint64, taken bool) (inExtra bool) {
	if !taken {
		x.byHash.set(h, pos)
		return false
	}
	if x.extra == nil {
		x.extra = make(map[string]uint64)
	}
	x.extra[id] = pos
	return true
}

// drop forgets id (hash h) if it is recorded at pos, and reports where it
// was: 0 nowhere, 1 by hash, 2 in extra.
func (x *idIndex) drop(id string, h, pos uint64) int {
	if p, ok := x.byHash.get(h); ok && p == pos {
		x.byHash.del(h)
		return 1
	}
	if p, ok := x.extra[id]; ok && p == pos {
		delete(x.extra, id)
		return 2
	}
	return 0
}

// len returns how many ids x records.
func (x *idIndex) len() int { return x.byHash.n + len(x.extra) }

// posTable is idIndex's table from a hash to a position: open addressing
// over one pointer-free slice, probing linearly from the hash's low bits
// (the hashes are uniform already, so they are not hashed again), at most
// half full. A removal moves the later entries of its run back instead of
// leaving a tombstone, so a miss stops at the first free slot however many
// ids came and went (a window that is full drops an id for each it adds).
type posTable struct {
	slots []posSlot // len a power of two, or 0
	n     int       // entries held
}

// posSlot is one entry of a posTable; pos1 is the position plus one, 0 in
// a free slot.
type posSlot struct{ h, pos1 uint64 }

// reserve makes room for n entries, so that setting them does not grow t.
func (t *posTable) reserve(n int) {
	size := 8
	for size < 2*n {
		size *= 2
	}
	if size <= len(t.slots) {
		return
	}
	old := t.slots
	t.slots = make([]posSlot, size)
	mask := uint64(size - 1)
	for _, s := range old {
		if s.pos1 != 0 {
			i := s.h & mask
			for t.slots[i].pos1 != 0 {
				i = (i + 1) & mask
			}
			t.slots[i] = s
		}
	}
}

// get returns the position under h.
func (t *posTable) get(h uint64) (uint64, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s := &t.slots[i]; {
		case s.pos1 == 0:
			return 0, false
		case s.h == h:
			return s.pos1 - 1, true
		}
	}
}

// set puts pos under h, replacing the position there, if any.
func (t *posTable) set(h, pos uint64) {
	if 2*(t.n+1) > len(t.slots) {
		t.reserve(t.n + 1)
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s := &t.slots[i]; {
		case s.pos1 == 0:
			*s = posSlot{h, pos + 1}
			t.n++
			return
		case s.h == h:
			s.pos1 = pos + 1
			return
		}
	}
}

// del removes h, if t holds it.
func (t *posTable) del(h uint64) {
	if len(t.slots) == 0 {
		return
	}
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for ; t.slots[i].h != h || t.slots[i].pos1 == 0; i = (i + 1) & mask {
		if t.slots[i].pos1 == 0 {
			return
		}
	}
	// Free slot i: an entry later in the run whose home slot is not after
	// i (cyclically, up to where it sits) moves into it, freeing its own.
	for j := (i + 1) & mask; t.slots[j].pos1 != 0; j = (j + 1) & mask {
		if home := t.slots[j].h & mask; (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = posSlot{}
	t.n--
}

// all yields each entry (hash, position), in no order.
func (t *posTable) all() iter.Seq2[uint64, uint64] {
	return func(yield func(h, pos uint64) bool) {
		for _, s := range t.slots {
			if s.pos1 != 0 && !yield(s.h, s.pos1-1) {
				return
			}
		}
	}
}
